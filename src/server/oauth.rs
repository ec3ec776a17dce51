//! What OAuth 2 resource servers and gateways speak: revocation by the holder (RFC 7009), token
//! introspection (RFC 7662), the server's metadata (RFC 8414), and leak reports.
//!
//! Revocation and leak reports answer the same whatever the tokens were (valid, unknown, already
//! dead), so neither tells a caller anything about a token it sends.

use super::auth::{allowed_from, ClientAddr, Introspector, Revoker};
use super::error::ApiError;
use super::handlers::Body;
use super::openapi::errors;
use super::verify::parse_client_ip;
use super::{AppState, MAX_BODY};
use crate::cidr::CidrList;
use crate::lifecycle::AllowedCidrs;
use crate::model::Action;
use crate::VerifiedToken;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;

/// The most tokens one leak report may hold.
pub const MAX_LEAKED: usize = 100;
/// The longest `source` of a leak report, in characters.
pub const MAX_SOURCE: usize = 200;
/// `token_type` of an active token in an introspection answer.
pub const TOKEN_TYPE: &str = "tessera-api-token";

/// The form RFC 7009 and RFC 7662 send: `token=…`, optionally `token_type_hint=…`.
#[derive(ToSchema)]
#[allow(dead_code)] // The schema of the form; the handlers parse it by hand (see `token_form`).
struct TokenForm {
    /// The token.
    token: String,
    /// A hint about the token's type; Tessera has one type and ignores it.
    token_type_hint: Option<String>,
}

/// `/v1/introspect`'s form: [`TokenForm`] and Tessera's `client_ip`.
#[derive(ToSchema)]
#[allow(dead_code)] // The schema of the form; the handler parses it by hand (see `token_form`).
struct IntrospectForm {
    /// The token.
    token: String,
    /// A hint about the token's type; Tessera has one type and ignores it.
    token_type_hint: Option<String>,
    /// Not in RFC 7662, Tessera's own: the address of the client that presented the token,
    /// checked against the token's networks (a token used from outside them is inactive). Left
    /// out: the address of this request's own client (its peer, or what a trusted proxy
    /// forwarded), so a token bound to networks fails closed.
    #[schema(max_length = 64, example = "203.0.113.7")]
    client_ip: Option<String>,
}

/// What a form body holds.
struct FormValues {
    token: String,
    client_ip: Option<String>,
}

/// The `token` (and `client_ip`) of a form body, each parameter at most once (RFC 6749 §3.1).
fn token_form(content_type: Option<&HeaderValue>, body: &[u8]) -> Result<FormValues, ApiError> {
    let form = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the form as application/x-www-form-urlencoded: token=...",
        ));
    }
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {MAX_BODY} bytes"),
        ));
    }
    let (mut token, mut hint, mut client_ip) = (None, None, None);
    for (key, value) in form_urlencoded::parse(body) {
        let slot = match key.as_ref() {
            "token" => &mut token,
            "token_type_hint" => &mut hint,
            "client_ip" => &mut client_ip,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::bad_request(format!("{key} is given twice")));
        }
    }
    let token = token.ok_or_else(|| ApiError::bad_request("the form has no token"))?;
    Ok(FormValues { token, client_ip })
}

/// `POST /v1/revoke`: RFC 7009 revocation by the token's holder.
#[utoipa::path(
    post,
    path = "/v1/revoke",
    operation_id = "revokeToken",
    tag = "oauth",
    summary = "Revoke a token you hold (RFC 7009): 200 whether or not it was valid.",
    description = "Holding a valid token is the authority to revoke it: no other credential. \
                   The token dies everywhere, as on delete, and the audit trail records \
                   `revoked` by `token:<id>`. The answer is the same for any token, valid or \
                   not, so it tells nothing about one.",
    security(),
    request_body(content = inline(TokenForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = OK, description = "Done, or nothing to do."),
        errors::FormBody, errors::Unavailable, errors::BadSignatures
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    revoker: Revoker,
    ClientAddr(from): ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let body = read(request).await?;
    let token = token_form(content_type.as_ref(), &body)?.token;
    if let Ok(verified) = state.check_token(&token, from).await? {
        revoker
            .revoke(&verified, Action::Revoked, None)
            .await
            .map_err(ApiError::from)?;
    }
    Ok(StatusCode::OK.into_response())
}

/// A leak report: tokens found where they should not be.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakReport {
    /// The tokens found, at most 100.
    #[schema(max_items = 100)]
    tokens: Vec<String>,
    /// Where they were found, e.g. a URL; at most 200 characters.
    #[schema(max_length = 200)]
    source: String,
}

/// How many tokens a leak report held: all it says back.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakReceipt {
    #[schema(minimum = 0, maximum = 100)]
    received: usize,
}

/// `POST /v1/leaks`: revoke every valid token a leak report holds.
#[utoipa::path(
    post,
    path = "/v1/leaks",
    operation_id = "reportLeaks",
    tag = "oauth",
    summary = "Report leaked tokens: every valid one is revoked. No credential needed.",
    description = "Each valid Tessera token in the report dies everywhere, and the audit trail \
                   records `leaked` with the source. The answer says only how many tokens were \
                   received, so it tells nothing about any of them.",
    security(),
    request_body = LeakReport,
    responses(
        (status = OK, description = "Received.", body = LeakReceipt),
        errors::JsonBody, errors::Unavailable, errors::BadSignatures
    )
)]
pub async fn leaks(
    State(state): State<AppState>,
    revoker: Revoker,
    ClientAddr(from): ClientAddr,
    Body(report): Body<LeakReport>,
) -> Result<Response, ApiError> {
    if report.tokens.len() > MAX_LEAKED {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!(
                "tokens: at most {MAX_LEAKED} in one report, not {}",
                report.tokens.len()
            ),
        ));
    }
    if report.source.chars().count() > MAX_SOURCE {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("source: at most {MAX_SOURCE} characters"),
        ));
    }
    for token in &report.tokens {
        if let Ok(verified) = state.check_token(token, from).await? {
            let source = Some(report.source.clone());
            revoker.revoke(&verified, Action::Leaked, source).await?;
            tracing::warn!(id = %verified.id(), source = %report.source, "revoked a leaked token");
        }
    }
    let receipt = LeakReceipt {
        received: report.tokens.len(),
    };
    Ok(Json(receipt).into_response())
}

/// An introspection answer (RFC 7662): `{"active": false}` alone, or the token's claims.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Introspection {
    active: bool,
    /// `tessera-api-token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// The token's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    /// Absent for a token that never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    /// `super-admin`, or `resource:role` for each grant, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// The permissions in force (the token state's, after an update).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    tessera_permissions: Option<serde_json::Value>,
    /// The token's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    tessera_version: Option<u32>,
    /// The networks the token may be used from, in force now; absent: anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AllowedCidrs>)]
    tessera_allowed_cidrs: Option<CidrList>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            token_type: None,
            sub: None,
            jti: None,
            iss: None,
            username: None,
            iat: None,
            nbf: None,
            exp: None,
            scope: None,
            tessera_permissions: None,
            tessera_version: None,
            tessera_allowed_cidrs: None,
        }
    }

    fn of(token: &VerifiedToken) -> Self {
        let claims = token.claims();
        Self {
            active: true,
            token_type: Some(TOKEN_TYPE),
            sub: Some(claims.sub.clone()),
            jti: Some(token.id().to_string()),
            iss: Some(claims.iss.clone()),
            username: Some(token.name().to_owned()),
            iat: Some(claims.iat.timestamp()),
            nbf: Some(claims.nbf.timestamp()),
            exp: claims.exp.map(|at| at.timestamp()),
            scope: Some(scope(token)),
            tessera_permissions: serde_json::to_value(token.permissions()).ok(),
            tessera_version: Some(token.version()),
            tessera_allowed_cidrs: token.allowed_cidrs().cloned(),
        }
    }
}

/// `super-admin`, or each grant's `resource:role` once, space-separated: scope tokens hold no
/// spaces, and patterns may.
fn scope(token: &VerifiedToken) -> String {
    match token.permissions() {
        crate::Permissions::SuperAdmin => "super-admin".to_owned(),
        crate::Permissions::Grants(grants) => {
            let mut scopes: Vec<String> = Vec::new();
            for grant in grants {
                let text = grant.to_string();
                let head = text.split(' ').next().unwrap_or_default().to_owned();
                if !scopes.contains(&head) {
                    scopes.push(head);
                }
            }
            scopes.join(" ")
        }
    }
}

/// `POST /v1/introspect`: RFC 7662 token introspection.
#[utoipa::path(
    post,
    path = "/v1/introspect",
    operation_id = "introspectToken",
    tag = "oauth",
    summary = "Token introspection (RFC 7662), for a caller with tessera introspect or \
               super-admin.",
    description = "An inactive token (invalid, expired, deleted, superseded, unknown, or bound \
                   to networks that do not hold the client address) gets exactly \
                   `{\"active\": false}`. The client address is `client_ip` (a Tessera \
                   extension), else this request's own client address.",
    security(("bearer" = []), ("token" = [])),
    request_body(content = inline(IntrospectForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = OK, description = "The answer.", body = Introspection),
        errors::FormBody, errors::Caller
    )
)]
pub async fn introspect(
    State(state): State<AppState>,
    _: Introspector,
    ClientAddr(from): ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let body = read(request).await?;
    let form = token_form(content_type.as_ref(), &body)?;
    let client = match &form.client_ip {
        Some(ip) => Some(parse_client_ip(ip)?),
        None => from,
    };
    let answer = match state.check_token(&form.token, from).await? {
        Ok(verified) if allowed_from(&state, &verified, client) => Introspection::of(&verified),
        _ => Introspection::inactive(),
    };
    let mut response = Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The server's metadata (RFC 8414).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    issuer: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint_auth_methods_supported: [&'static str; 1],
    revocation_endpoint_auth_methods_supported: [&'static str; 1],
}

/// `GET /.well-known/oauth-authorization-server`
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    operation_id = "oauthMetadata",
    tag = "oauth",
    summary = "Where to introspect and revoke tokens (RFC 8414).",
    description = "The URLs are built from the request's `Host` (and, from a trusted proxy, \
                   `X-Forwarded-Proto`). Introspection takes a bearer token; revocation none.",
    security(),
    responses((status = OK, description = "The metadata.", body = Metadata))
)]
pub async fn metadata(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/'))
        .unwrap_or("localhost");
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let from_proxy = peer.is_some_and(|ip| state.trusted_proxies().contains(&ip));
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| from_proxy && matches!(*p, "http" | "https"))
        .unwrap_or("http");
    let base = format!("{scheme}://{host}");
    let metadata = Metadata {
        introspection_endpoint: format!("{base}/v1/introspect"),
        revocation_endpoint: format!("{base}/v1/revoke"),
        issuer: base,
        introspection_endpoint_auth_methods_supported: ["bearer"],
        revocation_endpoint_auth_methods_supported: ["none"],
    };
    Json(metadata).into_response()
}

/// The body, at most [`MAX_BODY`] bytes.
async fn read(request: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is over {MAX_BODY} bytes, or could not be read"),
            )
        })
}
