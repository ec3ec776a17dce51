//! `GET /openapi.json`: the OpenAPI 3.1 description of every route the router serves.
//!
//! The routes and the document are one list: `server::api` adds each handler with
//! utoipa-axum's `routes!`, which routes the handler for the methods and path of its
//! `#[utoipa::path]` and adds that operation to the document, so a route cannot be served
//! undocumented or documented unserved. Request and response bodies are the types the handlers
//! read and write (derived `ToSchema`); where a derive cannot describe the JSON, the type's
//! schema is written by hand from the same tables the code uses (`permissions::schema`,
//! `lifecycle::schema`, [`schemas`], [`forward_auth`]). `tests/api/openapi/` validates real
//! responses against the document and calls every documented operation; schemathesis runs
//! against it in CI (`.ci/schemathesis.sh`).
//!
//! OpenAPI 3.1 is used so that every schema is plain JSON Schema 2020-12 (`null` as a type),
//! which generic validators check as written. Unsigned fields name their format (`uint32`,
//! `uint64`): utoipa's default for `u32` and `u64` is the signed `int32` and `int64`, whose
//! ranges are narrower.

pub mod errors;
pub mod forward_auth;
pub mod schemas;

use super::error::ErrorBody;
use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::Response as ApiResponse;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, RefOr, Required, Tag,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// `GET /openapi.json`: the routes this instance serves (a verify-only instance has no
/// management API).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document.",
    security(),
    responses(
        (status = OK, description = "The OpenAPI 3.1 document.",
         body = inline(schemas::OpenApiDocument))
    )
)]
pub async fn document(State(state): State<AppState>) -> Response {
    static ISSUER: OnceLock<String> = OnceLock::new();
    static VERIFY_ONLY: OnceLock<String> = OnceLock::new();
    let verify_only = state.verify_only();
    let cell = if verify_only { &VERIFY_ONLY } else { &ISSUER };
    let text = cell.get_or_init(|| {
        serde_json::to_string(&super::api_document(verify_only)).unwrap_or_default()
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text.as_str(),
    )
        .into_response()
}

/// What the routes' operations do not say: the API's description, its tags, security schemes
/// and error responses.
pub fn base() -> OpenApi {
    let info = InfoBuilder::new()
        .title("Tessera")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "API tokens as PASETO v4.public: the management API (super-admin tokens only), \
             forward-auth for gateways, introspection, the public keys, health and metrics. \
             Errors are JSON `{\"error\": {\"code\", \"message\"}}`. Request bodies are JSON, at \
             most 64 KiB, and unknown fields are refused.",
        ))
        .license(Some(
            LicenseBuilder::new().name("MIT OR Apache-2.0").build(),
        ));
    let tag = |name: &str, description: &str| {
        let mut tag = Tag::new(name);
        tag.description = Some(description.to_owned());
        tag
    };
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("PASETO v4.public")
        .description(Some("`Authorization: Bearer <token>`."))
        .build();
    let token = ApiKey::Header(ApiKeyValue::with_description(
        "token",
        "The `token: <token>` header Devtron clients send.",
    ));
    let components = ComponentsBuilder::new()
        .schema(ErrorBody::name(), ErrorBody::schema())
        .responses_from_iter(errors::components())
        .security_scheme("bearer", SecurityScheme::Http(bearer))
        .security_scheme("token", SecurityScheme::ApiKey(token));
    OpenApiBuilder::new()
        .info(info)
        .tags(Some([
            tag("tokens", "Token management: super-admin tokens only."),
            tag(
                "state",
                "The token state feed: tessera read-state or super-admin tokens.",
            ),
            tag(
                "oauth",
                "OAuth 2: revocation (RFC 7009), introspection (RFC 7662), metadata (RFC 8414), \
                 and leak reports.",
            ),
            tag("verify", "Verification, for gateways and services."),
            tag("operations", "Health, metrics and this document."),
        ]))
        .components(Some(components.build()))
        .build()
}

/// What utoipa leaves to do once the routes are in: axum's catch-all `{*name}` is OpenAPI's
/// `{name}`; an operation routed for several methods gets an id per method
/// (`forwardAuthGet`); and every response header documented here is always sent, so it is
/// `required` (utoipa's `Header` has no such field: it goes in as an extension).
pub fn finish(mut api: OpenApi) -> OpenApi {
    let paths = std::mem::take(&mut api.paths.paths);
    for (path, mut item) in paths {
        let mut operations = [
            (&mut item.get, "Get"),
            (&mut item.put, "Put"),
            (&mut item.post, "Post"),
            (&mut item.delete, "Delete"),
            (&mut item.options, "Options"),
            (&mut item.head, "Head"),
            (&mut item.patch, "Patch"),
            (&mut item.trace, "Trace"),
        ];
        let ids: Vec<Option<String>> = operations
            .iter()
            .filter_map(|(operation, _)| operation.as_ref().map(|o| o.operation_id.clone()))
            .collect();
        for (operation, method) in &mut operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let shared = ids
                .iter()
                .filter(|id| **id == operation.operation_id)
                .count()
                > 1;
            if let (true, Some(id)) = (shared, &mut operation.operation_id) {
                id.push_str(method);
            }
            require_headers(operation.responses.responses.values_mut());
        }
        api.paths.paths.insert(path.replace("{*", "{"), item);
    }
    if let Some(components) = &mut api.components {
        require_headers(components.responses.values_mut());
    }
    api
}

fn require_headers<'a>(responses: impl Iterator<Item = &'a mut RefOr<ApiResponse>>) {
    for response in responses {
        let RefOr::T(response) = response else {
            continue;
        };
        for header in response.headers.values_mut() {
            if let RefOr::T(header) = header {
                header
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert("required".to_owned(), true.into());
            }
        }
    }
}

/// `{id}`: a token id.
pub struct TokenId;

impl IntoParams for TokenId {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(
                "The token id. Anything that is not one names no token (404).",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            ))
            .build()]
    }
}

/// `If-Match`: the record revision a change expects.
pub struct IfMatch;

impl IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("If-Match")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "The record revision the change expects (`3`, `\"3\"` or `W/\"3\"`; `*` for \
                 any): 412 when the record has moved on.",
            ))
            .schema(Some(
                ObjectBuilder::new().schema_type(Type::String).pattern(Some(
                    "^\\s*(?:\\*|[0-9]{1,19}|\"[0-9]{1,19}\"|W/\"[0-9]{1,19}\")\\s*$",
                )),
            ))
            .build()]
    }
}

#[cfg(test)]
mod tests {
    use super::super::api_document;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn document(verify_only: bool) -> Value {
        serde_json::to_value(api_document(verify_only)).unwrap()
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

    /// Schemas a route does not collect (error bodies, hand-written references) are registered
    /// by hand: every reference must still resolve, on both kinds of instance.
    #[test]
    fn every_reference_resolves() {
        for verify_only in [false, true] {
            let doc = document(verify_only);
            let mut refs = Vec::new();
            collect_refs(&doc, &mut refs);
            assert!(refs.len() > 20);
            for target in refs {
                let pointer = target.strip_prefix('#').expect("local reference");
                assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
            }
        }
    }

    #[test]
    fn a_verify_only_instance_documents_no_management_route() {
        let paths = |doc: &Value| -> Vec<String> {
            doc["paths"].as_object().unwrap().keys().cloned().collect()
        };
        let edge: BTreeSet<_> = paths(&document(true)).into_iter().collect();
        let expected = [
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/readyz",
            "/v1/auth",
            "/v1/auth/",
            "/v1/auth/{path}",
            "/v1/introspect",
            "/v1/keys",
            "/v1/verify",
        ];
        assert_eq!(edge, expected.into_iter().map(str::to_owned).collect());
        let full = paths(&document(false));
        assert!(full.len() > edge.len());
        assert!(full.iter().any(|p| p == "/v1/state"));
    }

    #[test]
    fn operation_ids_are_unique_and_one_per_method() {
        let doc = document(false);
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(!path.contains('*'), "{path}: axum's syntax");
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "{method} {path}: {id} twice");
            }
        }
        let forward: Vec<_> = ids
            .iter()
            .filter(|id| id.starts_with("forwardAuth"))
            .collect();
        assert_eq!(forward.len(), 3 * 7, "{forward:?}");
        assert!(ids.contains("forwardAuthPrefixedOptions"));
    }

    #[test]
    fn every_response_header_is_required() {
        let doc = document(false);
        let text = doc.to_string();
        let mut headers = 0;
        let mut stack = vec![&doc];
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(map) => {
                    if let Some(Value::Object(found)) = map.get("headers") {
                        for (name, header) in found {
                            assert_eq!(header["required"], true, "{name}");
                            headers += 1;
                        }
                    }
                    stack.extend(map.values());
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        assert!(headers > 20, "{headers} headers in {}", text.len());
    }
}
