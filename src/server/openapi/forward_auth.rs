//! The parameters and responses of forward authentication (`/v1/auth`, `/v1/auth/` and
//! `/v1/auth/{path}`), built from the permission tables: which keys a question takes, their
//! roles, and which scope each resource kind needs.

use crate::permissions::{all_role_names, question_keys, question_scope, Resource};
use std::collections::BTreeMap;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Header, Ref, RefOr, Required};
use utoipa::{IntoParams, IntoResponses};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The operation's description; `asked` says when a permission is asked.
pub fn description(asked: &str) -> String {
    let kinds: Vec<String> = Resource::ALL
        .iter()
        .map(|&resource| {
            let scope: Vec<String> = question_scope(resource)
                .iter()
                .map(|&(field, needed)| match needed {
                    true => field.to_owned(),
                    false => format!("{field} (optional)"),
                })
                .collect();
            format!(
                "`{}` (roles {}): {}",
                resource.as_str(),
                resource.role_names().join(", "),
                scope.join(", ")
            )
        })
        .collect();
    format!(
        "Every method gets the same decision, and no body is read. 200 with identity headers \
         when the token is valid and, {asked}, allowed; 401 when the token is missing or \
         refused; 403 when not allowed, or when the token is bound to networks that do not \
         hold the client address (`address_not_allowed`; the client address is the peer, or \
         what a trusted proxy forwarded in `X-Forwarded-For`): both without a body, the \
         reason in headers. A \
         permission question needs both `resource` and `role`, and the scope of the resource \
         kind: {}.",
        kinds.join("; ")
    )
}

/// The question in `/v1/auth`'s query: `resource`, `role` and the scope, as single values.
pub struct Question;

impl IntoParams for Question {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        question_keys()
            .into_iter()
            .map(|key| {
                let schema = match key {
                    "resource" => {
                        string().enum_values(Some(Resource::ALL.iter().map(|r| r.as_str())))
                    }
                    "role" => string().enum_values(Some(all_role_names())),
                    _ => string(),
                };
                ParameterBuilder::new()
                    .name(key)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .schema(Some(schema))
                    .build()
            })
            .collect()
    }
}

/// `X-Tessera-Require`, the question as the gateway sets it.
pub struct RequireHeader;

impl IntoParams for RequireHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("X-Tessera-Require")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "The permission question, set by the gateway: comma-separated `key=value` \
                 pairs, e.g. `resource=devtron-app,role=trigger,project=p,environment=e,app=a` \
                 (no key twice), or `any-valid-token`. When present, the path and query are \
                 ignored. Given twice: 400.",
            ))
            .schema(Some(string()))
            .build()]
    }
}

/// The client's own path, appended by the gateway.
pub struct ClientPath;

impl IntoParams for ClientPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("path")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(
                "The client's own path (and query), as a gateway such as Envoy's `ext_authz` \
                 appends it: ignored, it may hold `/`.",
            ))
            .schema(Some(string().min_length(Some(1))))
            .build()]
    }
}

/// The decision: 200 with identity headers, or 401/403 without a body, the reason in
/// headers; 400 (with a body) for a malformed question.
pub struct Decision;

impl IntoResponses for Decision {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let header = |schema: ObjectBuilder, description: Option<&str>| {
            Header::builder()
                .schema(Some(schema))
                .description(description)
                .build()
        };
        let allowed = ResponseBuilder::new()
            .description("The token is valid (and allowed). No body.")
            .header(
                "X-Tessera-Token-Id",
                header(
                    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                    None,
                ),
            )
            .header("X-Tessera-Token-Name", header(string(), None))
            .header(
                "X-Tessera-Super-Admin",
                header(string().enum_values(Some(["true", "false"])), None),
            );
        let denied = |description: &str, challenge: &str| {
            ResponseBuilder::new()
                .description(description)
                .header(
                    "WWW-Authenticate",
                    header(string().pattern(Some("^Bearer")), Some(challenge)),
                )
                .header(
                    "X-Tessera-Error",
                    header(
                        string(),
                        Some(
                            "The reason code: `missing_token`, a refusal reason, `forbidden`, \
                             or `address_not_allowed`.",
                        ),
                    ),
                )
                .build()
        };
        BTreeMap::from([
            ("200".to_owned(), allowed.build().into()),
            (
                "400".to_owned(),
                Ref::from_response_name("BadRequest").into(),
            ),
            (
                "429".to_owned(),
                Ref::from_response_name("TooManyBadSignatures").into(),
            ),
            (
                "503".to_owned(),
                Ref::from_response_name("Overloaded").into(),
            ),
            (
                "401".to_owned(),
                denied(
                    "No token, or the token was refused. No body.",
                    "`Bearer`, with `error=\"invalid_token\"` and the reason when a token was \
                     refused.",
                )
                .into(),
            ),
            (
                "403".to_owned(),
                denied(
                    "The token is valid but not allowed (`forbidden`), or used from outside \
                     its networks (`address_not_allowed`). No body.",
                    "`Bearer error=\"insufficient_scope\"`.",
                )
                .into(),
            ),
        ])
    }
}
