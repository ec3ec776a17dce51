//! `GET /openapi.json`: the OpenAPI 3.1 description of every route the router serves.
//!
//! The document is built here, in Rust, rather than derived with a schema macro: the wire
//! shapes come from hand-written serde impls (permissions, grants, patterns, with their own
//! validation) and from `json!` bodies in the handlers, so a derive would describe Rust types
//! rather than what goes over the wire. What can come from the code does: the resource kinds,
//! their role ladders and scope fields, the size limits, the name and description rules, the
//! expiry presets, the verify reason codes, the record, audit and key statuses. What cannot
//! (which routes exist, which fields a response has) is held to the code by `tests/openapi.rs`
//! (the document against the router's routes, both ways, and real responses validated against
//! it) and by schemathesis in CI (`.ci/schemathesis.sh`).
//!
//! OpenAPI 3.1 is used so that every schema is plain JSON Schema 2020-12 (`null` as a type,
//! `const`), which generic validators check as written.

use super::state_feed::MAX_WAIT_SECS;
use super::{AppState, MAX_BODY};
use crate::keys::KeyStatus;
use crate::lifecycle::{Status, DESCRIPTION_MAX, EXPIRY_DAYS, NAME_MAX, NAME_MIN};
use crate::model::Action;
use crate::permissions::{Resource, MAX_GRANTS, MAX_PATTERNS, MAX_PATTERN_LEN};
use crate::verifier::Reason;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// The most audit entries one page gives (as `handlers::audit` enforces).
const AUDIT_PAGE_MAX: u64 = 1000;

/// `GET /openapi.json`: the routes this instance serves (a verify-only instance has no
/// management API).
pub async fn document(State(state): State<AppState>) -> Response {
    static ISSUER: OnceLock<String> = OnceLock::new();
    static VERIFY_ONLY: OnceLock<String> = OnceLock::new();
    let text = if state.verify_only() {
        VERIFY_ONLY.get_or_init(|| build(false).to_string())
    } else {
        ISSUER.get_or_init(|| build(true).to_string())
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text.as_str(),
    )
        .into_response()
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// `value` or `null`.
fn nullable(mut schema: Value) -> Value {
    if let Some(Value::String(kind)) = schema.get("type").cloned() {
        schema["type"] = json!([kind, "null"]);
        schema
    } else {
        json!({ "anyOf": [schema, { "type": "null" }] })
    }
}

/// `DevtronApp` for `devtron-app`.
fn camel(text: &str) -> String {
    text.split(['-', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn serde_name<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Scope fields of a grant that hold one pattern rather than a list.
fn single_valued(resource: Resource, field: &str) -> bool {
    match resource {
        Resource::DevtronApp | Resource::HelmApp => field == "project",
        Resource::Kubernetes => field == "cluster",
        Resource::ChartGroup => false,
    }
}

/// The scope of a permission question about `resource` (`/v1/auth` query, `/v1/verify`
/// `require`), as `Access::from_fields` reads it: (field, required).
fn question_scope(resource: Resource) -> &'static [(&'static str, bool)] {
    match resource {
        Resource::DevtronApp | Resource::HelmApp => {
            &[("project", true), ("environment", true), ("app", true)]
        }
        // `group` defaults to the core API group, "".
        Resource::Kubernetes => &[
            ("cluster", true),
            ("namespace", true),
            ("group", false),
            ("kind", true),
            ("name", true),
        ],
        Resource::ChartGroup => &[("group", true)],
    }
}

/// Every key a permission question may carry: `resource`, `role` and each scope key.
fn question_keys() -> Vec<&'static str> {
    let mut keys = vec!["resource", "role"];
    for resource in Resource::ALL {
        for (field, _) in question_scope(resource) {
            if !keys.contains(field) {
                keys.push(field);
            }
        }
    }
    keys
}

fn all_role_names() -> Vec<&'static str> {
    let mut names = Vec::new();
    for resource in Resource::ALL {
        for role in resource.role_names() {
            if !names.contains(role) {
                names.push(*role);
            }
        }
    }
    names
}

fn key_statuses() -> Vec<String> {
    // The match fails to compile when a status is added, so the list below stays complete.
    match KeyStatus::Signing {
        KeyStatus::Signing | KeyStatus::Active | KeyStatus::VerifyOnly => {}
    }
    [KeyStatus::Signing, KeyStatus::Active, KeyStatus::VerifyOnly]
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn record_statuses() -> Vec<Value> {
    match Status::Active {
        Status::Active | Status::Expired => {}
    }
    vec![serde_name(Status::Active), serde_name(Status::Expired)]
}

fn audit_actions() -> Vec<Value> {
    match Action::Create {
        Action::Create | Action::Update | Action::Regenerate | Action::Delete => {}
    }
    [
        Action::Create,
        Action::Update,
        Action::Regenerate,
        Action::Delete,
    ]
    .into_iter()
    .map(serde_name)
    .collect()
}

/// A scope pattern: `*`, `prefix*` or an exact value, without control characters.
fn pattern_schema(allow_empty: bool) -> Value {
    let body = if allow_empty { "*" } else { "+" };
    json!({
        "type": "string",
        "minLength": if allow_empty { 0 } else { 1 },
        "maxLength": MAX_PATTERN_LEN,
        "pattern": format!("^(?:\\*|[^*\\u0000-\\u001F\\u007F-\\u009F]{body}\\*?)$"),
        "description": format!(
            "`*` for every value, `prefix*` for values starting with the prefix, or an exact \
             value (case-sensitive). At most {MAX_PATTERN_LEN} bytes; no control characters; \
             `*` only at the end.{}",
            if allow_empty { " The empty string is the Kubernetes core API group." } else { "" }
        ),
    })
}

fn pattern_list(item: &str) -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_PATTERNS,
        "items": schema_ref(item),
    })
}

fn grant_schema(resource: Resource) -> Value {
    let mut properties = Map::new();
    properties.insert("resource".into(), json!({ "const": resource.as_str() }));
    properties.insert(
        "role".into(),
        json!({
            "enum": resource.role_names(),
            "description": "The highest role granted; each role includes every one before it \
                            in this list.",
        }),
    );
    let mut required = vec!["resource", "role"];
    for field in resource.scope_fields() {
        let item = if resource == Resource::Kubernetes && *field == "groups" {
            "ApiGroupPattern"
        } else {
            "Pattern"
        };
        let schema = if single_valued(resource, field) {
            schema_ref(item)
        } else {
            pattern_list(item)
        };
        properties.insert((*field).to_owned(), schema);
        required.push(field);
    }
    json!({
        "type": "object",
        "description": format!("A grant on {} resources.", resource.as_str()),
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    })
}

fn question_schema(resource: Resource) -> Value {
    let mut properties = Map::new();
    properties.insert("resource".into(), json!({ "const": resource.as_str() }));
    properties.insert("role".into(), json!({ "enum": resource.role_names() }));
    let mut required = vec!["resource", "role"];
    for (field, needed) in question_scope(resource) {
        properties.insert((*field).to_owned(), json!({ "type": "string" }));
        if *needed {
            required.push(field);
        }
    }
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
    })
}

fn expires_schema() -> Value {
    let mut presets: Vec<String> = EXPIRY_DAYS.iter().map(|d| format!("{d}d")).collect();
    presets.push("never".to_owned());
    json!({
        "description": "A preset lifetime, `never`, or a future RFC 3339 time.",
        "anyOf": [
            { "type": "string", "enum": presets },
            { "type": "string", "format": "date-time" },
        ],
        "examples": ["30d"],
    })
}

fn schemas() -> Value {
    let mut schemas = Map::new();
    let mut add = |name: &str, schema: Value| {
        schemas.insert(name.to_owned(), schema);
    };

    add(
        "Error",
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string", "description": "A stable, machine-readable code." },
                        "message": { "type": "string", "description": "What went wrong, for a person." },
                    },
                    "additionalProperties": false,
                },
            },
            "additionalProperties": false,
        }),
    );

    add("Pattern", pattern_schema(false));
    add("ApiGroupPattern", pattern_schema(true));
    let mut mapping = Map::new();
    let mut variants = Vec::new();
    for resource in Resource::ALL {
        let name = format!("{}Grant", camel(resource.as_str()));
        add(&name, grant_schema(resource));
        mapping.insert(
            resource.as_str().to_owned(),
            json!(format!("#/components/schemas/{name}")),
        );
        variants.push(schema_ref(&name));
    }
    add(
        "Grant",
        json!({
            "oneOf": variants,
            "discriminator": { "propertyName": "resource", "mapping": mapping },
        }),
    );
    add(
        "Permissions",
        json!({
            "description": "What a token may do: everything (`{\"super_admin\": true}`), or what \
                            any one of its grants allows.",
            "oneOf": [
                {
                    "title": "SuperAdmin",
                    "type": "object",
                    "required": ["super_admin"],
                    "properties": { "super_admin": { "const": true } },
                    "additionalProperties": false,
                },
                {
                    "title": "Grants",
                    "type": "object",
                    "required": ["grants"],
                    "properties": {
                        "grants": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_GRANTS,
                            "items": schema_ref("Grant"),
                        },
                    },
                    "additionalProperties": false,
                },
            ],
        }),
    );

    add(
        "TokenName",
        json!({
            "type": "string",
            "minLength": NAME_MIN,
            "maxLength": NAME_MAX,
            "pattern": "^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$",
            "description": format!(
                "{NAME_MIN} to {NAME_MAX} lowercase letters, digits, `-` and `_`, starting and \
                 ending with a letter or digit; unique among live tokens."
            ),
        }),
    );
    add(
        "Description",
        json!({
            "type": "string",
            "maxLength": DESCRIPTION_MAX,
            "pattern": "^[^\\u0000-\\u0009\\u000B-\\u001F\\u007F-\\u009F]*$",
            "description": format!(
                "At most {DESCRIPTION_MAX} characters; no control characters but new lines."
            ),
        }),
    );
    add("Expires", expires_schema());
    let time = json!({ "type": "string", "format": "date-time" });
    add(
        "Record",
        json!({
            "type": "object",
            "description": "A token record. The token string itself is never stored.",
            "required": [
                "id", "name", "description", "permissions", "version", "revision",
                "created_at", "created_by", "updated_at", "updated_by", "expires_at",
                "status", "last_used_at", "last_used_from",
            ],
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "name": schema_ref("TokenName"),
                "description": { "type": "string" },
                "permissions": schema_ref("Permissions"),
                "version": {
                    "type": "integer", "minimum": 1,
                    "description": "The token version, bumped by regenerate.",
                },
                "revision": {
                    "type": "integer", "minimum": 1,
                    "description": "The record revision, bumped by every change; `If-Match` \
                                    takes it.",
                },
                "created_at": time,
                "created_by": { "type": "string" },
                "updated_at": time,
                "updated_by": { "type": "string" },
                "expires_at": nullable(time.clone()),
                "status": { "enum": record_statuses() },
                "last_used_at": nullable(time.clone()),
                "last_used_from": { "type": ["string", "null"] },
            },
            "additionalProperties": false,
        }),
    );
    add(
        "MintedToken",
        json!({
            "type": "object",
            "description": "A new token, shown this once, and its record.",
            "required": ["token", "record"],
            "properties": {
                "token": { "type": "string", "pattern": "^v4\\.public\\." },
                "record": schema_ref("Record"),
            },
            "additionalProperties": false,
        }),
    );
    add(
        "TokenList",
        json!({
            "type": "object",
            "required": ["tokens"],
            "properties": { "tokens": { "type": "array", "items": schema_ref("Record") } },
            "additionalProperties": false,
        }),
    );
    add(
        "CreateToken",
        json!({
            "type": "object",
            "required": ["name", "expires", "permissions"],
            "properties": {
                "name": schema_ref("TokenName"),
                "description": schema_ref("Description"),
                "expires": schema_ref("Expires"),
                "permissions": schema_ref("Permissions"),
            },
            "additionalProperties": false,
        }),
    );
    add(
        "UpdateToken",
        json!({
            "type": "object",
            "description": "Give description, permissions or both.",
            "minProperties": 1,
            "properties": {
                "description": schema_ref("Description"),
                "permissions": schema_ref("Permissions"),
            },
            "additionalProperties": false,
        }),
    );
    add(
        "RegenerateToken",
        json!({
            "type": "object",
            "required": ["expires"],
            "properties": { "expires": schema_ref("Expires") },
            "additionalProperties": false,
        }),
    );
    add(
        "AuditPage",
        json!({
            "type": "object",
            "required": ["entries", "next_after"],
            "properties": {
                "entries": { "type": "array", "items": schema_ref("AuditEntry") },
                "next_after": {
                    "type": ["integer", "null"], "minimum": 1,
                    "description": "Pass as `after` for the next page; `null` on the last.",
                },
            },
            "additionalProperties": false,
        }),
    );
    add(
        "AuditEntry",
        json!({
            "type": "object",
            "required": ["seq", "at", "actor", "action", "target", "target_name", "outcome", "from"],
            "properties": {
                "seq": { "type": "integer", "minimum": 1 },
                "at": time,
                "actor": {
                    "type": "string",
                    "description": "`token:<id>` for a token holder, `local:<user>` for an \
                                    operator on the store's machine.",
                },
                "action": { "enum": audit_actions() },
                "target": { "type": ["string", "null"], "format": "uuid" },
                "target_name": { "type": ["string", "null"] },
                "outcome": { "type": "string", "description": "`ok` or the refusal's code." },
                "from": { "type": ["string", "null"] },
            },
            "additionalProperties": false,
        }),
    );

    let mut question_variants = vec![json!({
        "type": "object", "maxProperties": 0, "description": "Asks nothing.",
    })];
    question_variants.extend(Resource::ALL.into_iter().map(question_schema));
    add(
        "PermissionQuestion",
        json!({
            "description": "A required permission: a resource kind, the least role needed, \
                            and the scope as single values.",
            "type": "object",
            "propertyNames": { "enum": question_keys() },
            "additionalProperties": { "type": "string" },
            "oneOf": question_variants,
        }),
    );
    add(
        "VerifyRequest",
        json!({
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": { "type": "string" },
                "require": {
                    "anyOf": [schema_ref("PermissionQuestion"), { "type": "null" }],
                },
            },
            "additionalProperties": false,
        }),
    );
    let reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    add(
        "VerifyResult",
        json!({
            "oneOf": [
                {
                    "title": "Refused",
                    "type": "object",
                    "required": ["valid", "code"],
                    "properties": {
                        "valid": { "const": false },
                        "code": { "enum": reasons },
                    },
                    "additionalProperties": false,
                },
                {
                    "title": "Valid",
                    "type": "object",
                    "required": ["valid", "code", "token"],
                    "properties": {
                        "valid": { "const": true },
                        "code": {
                            "enum": ["ok", "forbidden"],
                            "description": "`forbidden` when the required permission is not \
                                            allowed.",
                        },
                        "token": schema_ref("VerifiedToken"),
                        "allowed": {
                            "type": "boolean",
                            "description": "Present when a permission was required.",
                        },
                    },
                    "additionalProperties": false,
                },
            ],
        }),
    );
    add(
        "VerifiedToken",
        json!({
            "type": "object",
            "required": ["id", "name", "version", "expires_at", "permissions", "permissions_updated"],
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "name": { "type": "string" },
                "version": { "type": "integer", "minimum": 1 },
                "expires_at": nullable(time.clone()),
                "permissions": schema_ref("Permissions"),
                "permissions_updated": {
                    "type": "boolean",
                    "description": "Whether the permissions were updated after the token was \
                                    signed (so differ from its `perm` claim).",
                },
            },
            "additionalProperties": false,
        }),
    );
    add(
        "KeySet",
        json!({
            "type": "object",
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kid", "status", "created_at", "public_key"],
                        "properties": {
                            "kid": { "type": "string", "pattern": "^k4\\.pid\\." },
                            "status": { "enum": key_statuses() },
                            "created_at": time,
                            "public_key": { "type": "string", "pattern": "^k4\\.public\\." },
                        },
                        "additionalProperties": false,
                    },
                },
            },
            "additionalProperties": false,
        }),
    );
    add(
        "StateEntry",
        json!({
            "type": "object",
            "description": "Why a token's signed claims are no longer the whole truth.",
            "required": ["drop_after"],
            "properties": {
                "deleted": {
                    "const": true,
                    "description": "Every version is rejected (absent when not deleted).",
                },
                "min_ver": {
                    "type": "integer", "minimum": 1,
                    "description": "Versions below this are rejected (absent when none are).",
                },
                "perm": {
                    "$ref": "#/components/schemas/Permissions",
                    "description": "Permissions that replace the signed ones (absent when \
                                    none do).",
                },
                "drop_after": nullable(json!({
                    "type": "string", "format": "date-time",
                    "description": "When the entry may be dropped; `null`: never.",
                })),
            },
            "additionalProperties": false,
        }),
    );
    add(
        "StateSnapshot",
        json!({
            "type": "object",
            "required": ["revision", "entries"],
            "properties": {
                "revision": { "type": "integer", "minimum": 0 },
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "entry"],
                        "properties": {
                            "id": { "type": "string", "format": "uuid" },
                            "entry": schema_ref("StateEntry"),
                        },
                        "additionalProperties": false,
                    },
                },
            },
            "additionalProperties": false,
        }),
    );
    add(
        "StateChanges",
        json!({
            "oneOf": [
                {
                    "title": "Changes",
                    "type": "object",
                    "required": ["changes"],
                    "properties": {
                        "changes": {
                            "type": "array",
                            "description": "The changes after `since`, in revision order, \
                                            without gaps; empty when none came in the wait.",
                            "items": {
                                "type": "object",
                                "required": ["revision", "id", "entry"],
                                "properties": {
                                    "revision": { "type": "integer", "minimum": 1 },
                                    "id": { "type": "string", "format": "uuid" },
                                    "entry": {
                                        "anyOf": [schema_ref("StateEntry"), { "type": "null" }],
                                        "description": "`null`: the entry was dropped.",
                                    },
                                },
                                "additionalProperties": false,
                            },
                        },
                    },
                    "additionalProperties": false,
                },
                {
                    "title": "Reload",
                    "type": "object",
                    "required": ["reload"],
                    "properties": { "reload": { "const": true } },
                    "additionalProperties": false,
                },
            ],
        }),
    );
    add(
        "Health",
        json!({
            "type": "object",
            "required": ["status"],
            "properties": { "status": { "const": "ok" } },
            "additionalProperties": false,
        }),
    );
    add(
        "Ready",
        json!({
            "type": "object",
            "required": ["status", "state_revision", "state_age_secs"],
            "properties": {
                "status": { "const": "ready" },
                "state_revision": { "type": "integer", "minimum": 0 },
                "state_age_secs": { "type": "integer", "minimum": 0 },
            },
            "additionalProperties": false,
        }),
    );
    Value::Object(schemas)
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema_ref("Error") } },
    })
}

fn responses() -> Value {
    let mut unauthorized = error_response(
        "No token, or the token was refused; `error.code` is `missing_token` or the refusal \
         reason.",
    );
    unauthorized["headers"] = json!({
        "WWW-Authenticate": {
            "required": true,
            "description": "`Bearer`, with `error=\"invalid_token\"` when a token was refused.",
            "schema": { "type": "string", "pattern": "^Bearer" },
        },
    });
    json!({
        "BadRequest": error_response(
            "The request is malformed: bad JSON, a bad query parameter or `If-Match` header."),
        "Unauthorized": unauthorized,
        "Forbidden": error_response(
            "The token is valid but not allowed: not a super-admin token, or without the \
             required permission."),
        "NotFound": error_response("No token has that id."),
        "Conflict": error_response("A live token already has that name (`name_taken`)."),
        "PreconditionFailed": error_response(
            "The record is not at the revision `If-Match` names (`conflict`)."),
        "PayloadTooLarge": error_response(
            &format!("The body is larger than {MAX_BODY} bytes.")),
        "UnsupportedMediaType": error_response("The body is not `application/json`."),
        "UnprocessableEntity": error_response(
            "The body is well-formed JSON but breaks a rule: a missing or unknown field, a bad \
             name, description, expiry or permission set, nothing to update, or a token that \
             would be larger than 4 KiB."),
        "InternalError": error_response("The store is corrupt or misconfigured; see the log."),
        "Unavailable": error_response(
            "The store does not answer, or the server cannot sign; see the log."),
    })
}

fn responses_for(success: (&str, Value), errors: &[(&str, &str)]) -> Value {
    let mut map = Map::new();
    map.insert(success.0.to_owned(), success.1);
    for (status, name) in errors {
        map.insert((*status).to_owned(), response_ref(name));
    }
    Value::Object(map)
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn id_param() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "The token id. Anything that is not one names no token (404).",
        "schema": { "type": "string", "format": "uuid" },
    })
}

fn if_match_param() -> Value {
    json!({
        "name": "If-Match", "in": "header", "required": false,
        "description": "The record revision the change expects (`3`, `\"3\"` or `W/\"3\"`; \
                        `*` for any): 412 when the record has moved on.",
        "schema": { "type": "string", "pattern": "^\\s*(?:\\*|[0-9]{1,19}|\"[0-9]{1,19}\"|W/\"[0-9]{1,19}\")\\s*$" },
    })
}

fn etag_header() -> Value {
    json!({
        "ETag": {
            "required": true,
            "description": "The record revision, for `If-Match`.",
            "schema": { "type": "string", "pattern": "^\"[0-9]+\"$" },
        },
    })
}

fn minted_response(description: &str) -> Value {
    let mut headers = etag_header();
    headers["Cache-Control"] = json!({
        "required": true,
        "description": "The body holds a token: never cached.",
        "schema": { "const": "no-store" },
    });
    json!({
        "description": description,
        "headers": headers,
        "content": json_content(schema_ref("MintedToken")),
    })
}

fn record_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": etag_header(),
        "content": json_content(schema_ref("Record")),
    })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": json_content(schema_ref(name)) })
}

/// Errors every management operation can give.
const ADMIN: [(&str, &str); 4] = [
    ("401", "Unauthorized"),
    ("403", "Forbidden"),
    ("500", "InternalError"),
    ("503", "Unavailable"),
];

/// And those with a JSON body.
const WITH_BODY: [(&str, &str); 4] = [
    ("400", "BadRequest"),
    ("413", "PayloadTooLarge"),
    ("415", "UnsupportedMediaType"),
    ("422", "UnprocessableEntity"),
];

fn errors(lists: &[&[(&'static str, &'static str)]]) -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Links from a minted token's record to the operations on it (schemathesis follows them).
fn record_links(from_minted: bool) -> Value {
    let id = if from_minted {
        "$response.body#/record/id"
    } else {
        "$response.body#/id"
    };
    let mut links = Map::new();
    for operation in ["getToken", "updateToken", "regenerateToken", "deleteToken"] {
        links.insert(
            operation.to_owned(),
            json!({ "operationId": operation, "parameters": { "id": id } }),
        );
    }
    Value::Object(links)
}

fn paths() -> Value {
    let token_security = json!([{ "bearer": [] }, { "token": [] }]);
    let public = json!([]);
    let admin = &ADMIN[..];
    let with_body = &WITH_BODY[..];
    let bad_request = &[("400", "BadRequest")][..];
    let not_found = &[("404", "NotFound")][..];
    let precondition = &[("412", "PreconditionFailed")][..];

    let mut create_ok = minted_response("Created: the token, shown this once, and its record.");
    create_ok["links"] = record_links(true);
    let mut regenerate_ok =
        minted_response("The new token (version + 1), shown this once; the old one stops working.");
    regenerate_ok["links"] = record_links(true);

    let question_params: Vec<Value> = question_keys()
        .into_iter()
        .map(|key| {
            let schema = match key {
                "resource" => json!({
                    "type": "string",
                    "enum": Resource::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                }),
                "role" => json!({ "type": "string", "enum": all_role_names() }),
                _ => json!({ "type": "string" }),
            };
            json!({ "name": key, "in": "query", "required": false, "schema": schema })
        })
        .collect();
    let question_help: Vec<String> = Resource::ALL
        .iter()
        .map(|&r| {
            let scope: Vec<String> = question_scope(r)
                .iter()
                .map(|(f, needed)| {
                    if *needed {
                        (*f).to_owned()
                    } else {
                        format!("{f} (optional)")
                    }
                })
                .collect();
            format!(
                "`{}` (roles {}): {}",
                r.as_str(),
                r.role_names().join(", "),
                scope.join(", ")
            )
        })
        .collect();

    json!({
        "/v1/tokens": {
            "post": {
                "operationId": "createToken",
                "tags": ["tokens"],
                "summary": "Create a token (super-admin).",
                "security": token_security,
                "requestBody": body("CreateToken"),
                "responses": responses_for(
                    ("201", create_ok),
                    &errors(&[admin, with_body, &[("409", "Conflict")]]),
                ),
            },
            "get": {
                "operationId": "listTokens",
                "tags": ["tokens"],
                "summary": "List token records (super-admin).",
                "security": token_security,
                "parameters": [
                    {
                        "name": "status", "in": "query", "required": false,
                        "schema": { "type": "string", "enum": record_statuses() },
                    },
                    {
                        "name": "expiring_within", "in": "query", "required": false,
                        "description": "Only tokens that expire within this duration from now \
                                        (`7d`, `12h`, `30m`, `90s`).",
                        "schema": { "type": "string", "pattern": "^[0-9]{1,9}[dhms]$" },
                    },
                ],
                "responses": responses_for(
                    ("200", json!({
                        "description": "The records.",
                        "content": json_content(schema_ref("TokenList")),
                    })),
                    &errors(&[admin, bad_request]),
                ),
            },
        },
        "/v1/tokens/{id}": {
            "parameters": [id_param()],
            "get": {
                "operationId": "getToken",
                "tags": ["tokens"],
                "summary": "A token record (super-admin).",
                "security": token_security,
                "responses": responses_for(
                    ("200", record_response("The record.")),
                    &errors(&[admin, not_found]),
                ),
            },
            "patch": {
                "operationId": "updateToken",
                "tags": ["tokens"],
                "summary": "Change a token's description or permissions (super-admin); the \
                            token string stays valid and carries the new permissions.",
                "security": token_security,
                "parameters": [if_match_param()],
                "requestBody": body("UpdateToken"),
                "responses": responses_for(
                    ("200", record_response("The changed record.")),
                    &errors(&[admin, with_body, not_found, precondition]),
                ),
            },
            "delete": {
                "operationId": "deleteToken",
                "tags": ["tokens"],
                "summary": "Delete a token (super-admin): it stops working everywhere.",
                "security": token_security,
                "parameters": [if_match_param()],
                "responses": responses_for(
                    ("204", json!({ "description": "Deleted." })),
                    &errors(&[admin, bad_request, not_found, precondition]),
                ),
            },
        },
        "/v1/tokens/{id}/regenerate": {
            "parameters": [id_param()],
            "post": {
                "operationId": "regenerateToken",
                "tags": ["tokens"],
                "summary": "A new token string with a new expiry (super-admin).",
                "security": token_security,
                "parameters": [if_match_param()],
                "requestBody": body("RegenerateToken"),
                "responses": responses_for(
                    ("200", regenerate_ok),
                    &errors(&[admin, with_body, not_found, precondition]),
                ),
            },
        },
        "/v1/audit": {
            "get": {
                "operationId": "listAudit",
                "tags": ["tokens"],
                "summary": "The audit trail, oldest first, a page at a time (super-admin).",
                "security": token_security,
                "parameters": [
                    {
                        "name": "after", "in": "query", "required": false,
                        "description": "Entries after this `seq` (default 0: from the start).",
                        "schema": { "type": "integer", "minimum": 0, "maximum": u64::MAX },
                    },
                    {
                        "name": "limit", "in": "query", "required": false,
                        "description": "Entries per page (default 100).",
                        "schema": { "type": "integer", "minimum": 1, "maximum": AUDIT_PAGE_MAX },
                    },
                ],
                "responses": responses_for(
                    ("200", json!({
                        "description": "A page of entries.",
                        "content": json_content(schema_ref("AuditPage")),
                    })),
                    &errors(&[admin, bad_request]),
                ),
            },
        },
        "/v1/state": {
            "get": {
                "operationId": "tokenState",
                "tags": ["state"],
                "summary": "The token state, for verifiers that should not hold store \
                            credentials (super-admin).",
                "description": format!(
                    "Without `since`: the snapshot of the state map. With `since`: the \
                     changes after that revision, waiting up to `wait` seconds (at most \
                     {MAX_WAIT_SECS}) for one, or `{{\"reload\": true}}` when the follower \
                     must load the snapshot again."
                ),
                "security": token_security,
                "parameters": [
                    {
                        "name": "since", "in": "query", "required": false,
                        "schema": { "type": "integer", "minimum": 0, "maximum": u64::MAX },
                    },
                    {
                        "name": "wait", "in": "query", "required": false,
                        "description": "Seconds to wait for a change (with `since`); default 0.",
                        "schema": { "type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECS },
                    },
                ],
                "responses": responses_for(
                    ("200", json!({
                        "description": "The snapshot (without `since`) or the changes.",
                        "content": json_content(json!({
                            "anyOf": [schema_ref("StateSnapshot"), schema_ref("StateChanges")],
                        })),
                    })),
                    &errors(&[admin, bad_request]),
                ),
            },
        },
        "/v1/auth": forward_auth(Form::Plain, &question_params, &question_help, &token_security),
        "/v1/auth/": forward_auth(Form::Slash, &question_params, &question_help, &token_security),
        "/v1/auth/{path}":
            forward_auth(Form::Prefixed, &question_params, &question_help, &token_security),
        "/v1/verify": {
            "post": {
                "operationId": "verifyToken",
                "tags": ["verify"],
                "summary": "Introspection: always 200 for a well-formed request, with the \
                            verdict, the reason code and the effective claims.",
                "security": public,
                "requestBody": body("VerifyRequest"),
                "responses": responses_for(
                    ("200", json!({
                        "description": "The verdict.",
                        "content": json_content(schema_ref("VerifyResult")),
                    })),
                    &errors(&[with_body]),
                ),
            },
        },
        "/v1/keys": {
            "get": {
                "operationId": "listKeys",
                "tags": ["verify"],
                "summary": "The public keys that verify tokens.",
                "security": public,
                "responses": {
                    "200": {
                        "description": "The key set.",
                        "content": json_content(schema_ref("KeySet")),
                    },
                },
            },
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["operations"],
                "summary": "The process answers.",
                "security": public,
                "responses": {
                    "200": {
                        "description": "Alive.",
                        "content": json_content(schema_ref("Health")),
                    },
                },
            },
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["operations"],
                "summary": "The store answers and the token state is fresh.",
                "security": public,
                "responses": {
                    "200": {
                        "description": "Ready.",
                        "content": json_content(schema_ref("Ready")),
                    },
                    "503": error_response(
                        "Not ready: `store_unavailable` or `stale_state`."),
                },
            },
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Prometheus metrics.",
                "security": public,
                "responses": {
                    "200": {
                        "description": "The Prometheus text exposition format 0.0.4.",
                        "content": { "text/plain": { "schema": { "type": "string" } } },
                    },
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["operations"],
                "summary": "This document.",
                "security": public,
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": json_content(json!({ "type": "object" })),
                    },
                },
            },
        },
    })
}

/// The three paths of forward authentication.
#[derive(Clone, Copy)]
enum Form {
    /// `/v1/auth`: the question in `X-Tessera-Require`, or else in the query.
    Plain,
    /// `/v1/auth/`: the question in `X-Tessera-Require` only.
    Slash,
    /// `/v1/auth/{path}`: the client's path appended; the question in the header only.
    Prefixed,
}

/// The methods forward authentication answers alike, with their operation id suffixes.
const FORWARD_AUTH_METHODS: [(&str, &str); 7] = [
    ("get", "Get"),
    ("head", "Head"),
    ("post", "Post"),
    ("put", "Put"),
    ("patch", "Patch"),
    ("delete", "Delete"),
    ("options", "Options"),
];

/// A forward-auth path item: every method of [`FORWARD_AUTH_METHODS`] with the same decision.
fn forward_auth(
    form: Form,
    question_params: &[Value],
    question_help: &[String],
    security: &Value,
) -> Value {
    let require_header = json!({
        "name": "X-Tessera-Require", "in": "header", "required": false,
        "description": "The permission question, set by the gateway: comma-separated \
                        `key=value` pairs, e.g. \
                        `resource=devtron-app,role=trigger,project=p,environment=e,app=a` (no \
                        key twice), or `any-valid-token`. When present, the path and query are \
                        ignored. Given twice: 400.",
        "schema": { "type": "string" },
    });
    let (id, summary, mut parameters, asked) = match form {
        Form::Plain => (
            "forwardAuth",
            "Forward authentication for gateways.",
            question_params.to_vec(),
            "when `X-Tessera-Require` (or, without it, the query) asks a permission",
        ),
        Form::Slash => (
            "forwardAuthSlash",
            "Forward authentication for gateways, with a trailing slash.",
            Vec::new(),
            "when `X-Tessera-Require` asks a permission",
        ),
        Form::Prefixed => (
            "forwardAuthPrefixed",
            "Forward authentication for gateways that append the client's path.",
            vec![json!({
                "name": "path", "in": "path", "required": true,
                "description": "The client's own path (and query), as a gateway such as \
                                Envoy's `ext_authz` appends it: ignored, it may hold `/`.",
                "schema": { "type": "string", "minLength": 1 },
            })],
            "when `X-Tessera-Require` asks a permission",
        ),
    };
    parameters.push(require_header);
    let denial_headers = |challenge: &str| {
        json!({
            "WWW-Authenticate": {
                "required": true,
                "description": challenge,
                "schema": { "type": "string", "pattern": "^Bearer" },
            },
            "X-Tessera-Error": {
                "required": true,
                "description": "The reason code: `missing_token`, a refusal reason, or \
                                `forbidden`.",
                "schema": { "type": "string" },
            },
        })
    };
    let mut item = Map::new();
    for (method, suffix) in FORWARD_AUTH_METHODS {
        let operation = json!({
            "operationId": format!("{id}{suffix}"),
            "tags": ["verify"],
            "summary": summary,
            "description": format!(
                "Every method gets the same decision, and no body is read. 200 with identity \
                 headers when the token is valid and, {asked}, allowed; 401 when the token is \
                 missing or refused; 403 when not allowed: both without a body, the reason in \
                 headers. A permission question needs both `resource` and `role`, and the \
                 scope of the resource kind: {}.",
                question_help.join("; ")
            ),
            "security": security,
            "parameters": parameters,
            "responses": {
                "200": {
                    "description": "The token is valid (and allowed). No body.",
                    "headers": {
                        "X-Tessera-Token-Id": {
                            "required": true,
                            "schema": { "type": "string", "format": "uuid" },
                        },
                        "X-Tessera-Token-Name": {
                            "required": true,
                            "schema": { "type": "string" },
                        },
                        "X-Tessera-Super-Admin": {
                            "required": true,
                            "schema": { "type": "string", "enum": ["true", "false"] },
                        },
                    },
                },
                "400": response_ref("BadRequest"),
                "401": {
                    "description": "No token, or the token was refused. No body.",
                    "headers": denial_headers(
                        "`Bearer`, with `error=\"invalid_token\"` and the reason when a \
                         token was refused."),
                },
                "403": {
                    "description": "The token is valid but not allowed. No body.",
                    "headers": denial_headers("`Bearer error=\"insufficient_scope\"`."),
                },
            },
        });
        item.insert(method.to_owned(), operation);
    }
    Value::Object(item)
}

/// Tags of the operations only an issuer serves.
const MANAGEMENT_TAGS: [&str; 2] = ["tokens", "state"];

/// The document; without `management`, for a verify-only instance.
pub fn build(management: bool) -> Value {
    let mut paths = paths();
    if !management {
        if let Value::Object(paths) = &mut paths {
            paths.retain(|_, item| {
                !item.as_object().into_iter().flatten().any(|(_, op)| {
                    op["tags"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|tag| MANAGEMENT_TAGS.iter().any(|t| tag == t))
                })
            });
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tessera",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "API tokens as PASETO v4.public: the management API (super-admin \
                            tokens only), forward-auth for gateways, introspection, the public \
                            keys, health and metrics. Errors are JSON \
                            `{\"error\": {\"code\", \"message\"}}`. Request bodies are JSON, at \
                            most 64 KiB, and unknown fields are refused.",
            "license": { "name": "MIT OR Apache-2.0" },
        },
        "tags": [
            { "name": "tokens", "description": "Token management: super-admin tokens only." },
            { "name": "state", "description": "The token state feed: super-admin tokens only." },
            { "name": "verify", "description": "Verification, for gateways and services." },
            { "name": "operations", "description": "Health, metrics and this document." },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "responses": responses(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "PASETO v4.public",
                    "description": "`Authorization: Bearer <token>`.",
                },
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "token",
                    "description": "The `token: <token>` header Devtron clients send.",
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = build(true);
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for target in refs {
            let pointer = target.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => out.push(target.clone()),
                        ("mapping", Value::Object(mapping)) => out.extend(
                            mapping
                                .values()
                                .filter_map(|v| v.as_str().map(str::to_owned)),
                        ),
                        _ => collect_refs(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn grant_kinds_come_from_the_resource_table() {
        let doc = build(true);
        for resource in Resource::ALL {
            let name = format!("{}Grant", camel(resource.as_str()));
            let grant = &doc["components"]["schemas"][&name];
            assert_eq!(grant["properties"]["resource"]["const"], resource.as_str());
            assert_eq!(
                grant["properties"]["role"]["enum"],
                json!(resource.role_names())
            );
            for field in resource.scope_fields() {
                assert!(grant["properties"].get(*field).is_some(), "{name}.{field}");
            }
        }
        assert_eq!(camel("chart-group"), "ChartGroup");
    }
}

#[cfg(test)]
mod verify_only_tests {
    use super::*;

    #[test]
    fn a_verify_only_instance_documents_no_management_route() {
        let full = build(true);
        let edge = build(false);
        let paths = |doc: &Value| -> Vec<String> {
            doc["paths"].as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(
            paths(&edge),
            [
                "/healthz",
                "/metrics",
                "/openapi.json",
                "/readyz",
                "/v1/auth",
                "/v1/auth/",
                "/v1/auth/{path}",
                "/v1/keys",
                "/v1/verify"
            ]
        );
        assert!(paths(&full).len() > paths(&edge).len());
        assert!(paths(&full).iter().any(|p| p == "/v1/state"));
    }
}
