//! The error responses: each a component (`#/components/responses/...`) with the [`ErrorBody`]
//! schema, and the sets of them an operation lists in its `responses(...)`.

use super::super::error::ErrorBody;
use super::super::MAX_BODY;
use std::collections::BTreeMap;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Header, Ref, RefOr};
use utoipa::{IntoResponses, ToSchema};

/// A response with the error body.
pub(super) fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
    )
}

/// The components, by name.
pub(super) fn components() -> Vec<(String, RefOr<Response>)> {
    let challenge = Header::builder()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^Bearer")),
        ))
        .description(Some(
            "`Bearer`, with `error=\"invalid_token\"` when a token was refused.",
        ))
        .build();
    let retry_after = Header::builder()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        ))
        .description(Some("Seconds to wait before retrying."))
        .build();
    let responses = [
        (
            "BadRequest",
            error_response(
                "The request is malformed: bad JSON, a bad query parameter or `If-Match` header.",
            ),
        ),
        (
            "Unauthorized",
            error_response(
                "No token, or the token was refused; `error.code` is `missing_token` or the \
                 refusal reason.",
            )
            .header("WWW-Authenticate", challenge),
        ),
        (
            "Forbidden",
            error_response(
                "The token is valid but not allowed: not a super-admin token, or without the \
                 required permission (`forbidden`), or bound to networks that do not hold the \
                 client address (`address_not_allowed`).",
            ),
        ),
        ("NotFound", error_response("No token has that id.")),
        (
            "Conflict",
            error_response(
                "A live token already has that name (`name_taken`), or the change would leave \
                 no live super-admin (`last_super_admin`).",
            ),
        ),
        (
            "PreconditionFailed",
            error_response("The record is not at the revision `If-Match` names (`conflict`)."),
        ),
        (
            "PayloadTooLarge",
            error_response(&format!("The body is larger than {MAX_BODY} bytes.")),
        ),
        (
            "UnsupportedMediaType",
            error_response("The body is not `application/json`."),
        ),
        (
            "UnprocessableEntity",
            error_response(
                "The body is well-formed JSON but breaks a rule: a missing or unknown field, a \
                 bad name, description, expiry or permission set, nothing to update, or a token \
                 that would be larger than 4 KiB.",
            ),
        ),
        (
            "InternalError",
            error_response("The store is corrupt or misconfigured; see the log."),
        ),
        (
            "Unavailable",
            error_response(
                "The store does not answer, or the server cannot sign (see the log), or too \
                 many tokens wait for their signature check (`overloaded`, with `Retry-After`).",
            ),
        ),
        (
            "Overloaded",
            error_response(
                "Too many tokens wait for their signature check (`overloaded`): retry after \
                 `Retry-After`. A token checked before is never refused so.",
            )
            .header("Retry-After", retry_after.clone()),
        ),
        (
            "TooManyBadSignatures",
            error_response(
                "This client sent more tokens with bad signatures than its budget allows \
                 (`too_many_bad_signatures`): its new tokens are not checked until \
                 `Retry-After` has passed. Tokens checked before still pass.",
            )
            .header("Retry-After", retry_after),
        ),
    ];
    responses
        .into_iter()
        .map(|(name, response)| (name.to_owned(), response.build().into()))
        .collect()
}

/// A set of error responses, each a reference to its component.
macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($status:literal => $component:literal),+) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(($status, $component)),+]
                    .into_iter()
                    .map(|(status, name)| {
                        (status.to_owned(), Ref::from_response_name(name).into())
                    })
                    .collect()
            }
        }
    };
}

error_set! {
    /// What every management operation can answer.
    Management: "401" => "Unauthorized", "403" => "Forbidden", "429" => "TooManyBadSignatures",
    "500" => "InternalError", "503" => "Unavailable"
}

error_set! {
    /// What an operation with a JSON body can answer besides.
    JsonBody: "400" => "BadRequest", "413" => "PayloadTooLarge", "415" => "UnsupportedMediaType",
    "422" => "UnprocessableEntity"
}

error_set! {
    /// What an operation with a form body can answer besides.
    FormBody: "400" => "BadRequest", "413" => "PayloadTooLarge", "415" => "UnsupportedMediaType"
}

error_set! {
    /// A caller without a valid token, or short of the operation's need.
    Caller: "401" => "Unauthorized", "403" => "Forbidden", "429" => "TooManyBadSignatures",
    "503" => "Unavailable"
}

error_set! {
    /// A token's signature check refused: the queue was full, or the client's budget spent.
    Rationed: "429" => "TooManyBadSignatures", "503" => "Overloaded"
}

error_set! {
    /// The client's budget of bad signatures spent.
    BadSignatures: "429" => "TooManyBadSignatures"
}

error_set! {
    /// The store did not answer.
    Unavailable: "503" => "Unavailable"
}

error_set! {
    /// A malformed query or header.
    BadRequest: "400" => "BadRequest"
}

error_set! {
    /// No token has the id.
    NotFound: "404" => "NotFound"
}

error_set! {
    /// The name is taken, or the last live super-admin would go.
    Conflict: "409" => "Conflict"
}

error_set! {
    /// `If-Match` names another revision.
    PreconditionFailed: "412" => "PreconditionFailed"
}

/// `/readyz`'s refusal.
pub struct NotReady;

impl IntoResponses for NotReady {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let response = error_response("Not ready: `store_unavailable` or `stale_state`.");
        BTreeMap::from([("503".to_owned(), response.build().into())])
    }
}
