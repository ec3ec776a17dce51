//! The verification endpoints, for gateways and services: forward authentication
//! (`/v1/auth`), introspection (`/v1/verify`) and the public keys (`/v1/keys`). None of them
//! reads the token service; each only verifies.

use super::auth::{allowed_from, authenticate, client_address, ClientAddr};
use super::error::{ApiError, ADDRESS_NOT_ALLOWED};
use super::handlers::Body;
use super::openapi::{errors, forward_auth as doc};
use super::AppState;
use crate::cidr::CidrList;
use crate::claims::Claims;
use crate::lifecycle::AllowedCidrs;
use crate::permissions::{Access, PermissionQuestion, Permissions, QUESTION_SCOPE_KEYS};
use crate::VerifiedToken;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use utoipa::ToSchema;
use uuid::Uuid;

/// The fields of a permission question, as a gateway gives them (in the query or in
/// `X-Tessera-Require`), borrowed from the request unless they had to be unescaped. A key
/// given twice is refused: a client must not be able to add a second `resource` to the
/// gateway's question and hope one of them wins.
#[derive(Default)]
struct Fields<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Fields<'a> {
    fn from_query(query: &'a str) -> Result<Self, ApiError> {
        let mut fields = Self(Vec::with_capacity(2 + QUESTION_SCOPE_KEYS.len()));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.contains(['%', '+']) {
                // What gateways send: nothing to unescape, so nothing to copy.
                false => {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (key.into(), value.into())
                }
                true => match form_urlencoded::parse(pair.as_bytes()).next() {
                    Some((key, value)) => (key.into_owned().into(), value.into_owned().into()),
                    None => continue,
                },
            };
            fields.insert(key, value, "the query")?;
        }
        Ok(fields)
    }

    /// `/v1/verify`'s `require` object.
    fn from_map(map: &'a BTreeMap<String, String>) -> Result<Self, ApiError> {
        let mut fields = Self::default();
        for (key, value) in map {
            fields.insert(key.into(), value.into(), "require")?;
        }
        Ok(fields)
    }

    /// `X-Tessera-Require`: comma-separated `key=value` pairs, or [`ANY_VALID_TOKEN`].
    fn from_header(value: &'a HeaderValue) -> Result<Self, ApiError> {
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad_request("X-Tessera-Require is not visible ASCII text"))?;
        if text.trim() == ANY_VALID_TOKEN {
            return Ok(Self::default());
        }
        let mut fields = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                ApiError::bad_request(format!(
                    "X-Tessera-Require: {part:?} is not key=value, e.g. \
                     resource=devtron-app,role=trigger,project=p,environment=e,app=a"
                ))
            })?;
            fields.insert(key.trim().into(), value.trim().into(), "X-Tessera-Require")?;
        }
        if fields.0.is_empty() {
            return Err(ApiError::bad_request(format!(
                "X-Tessera-Require is empty: give resource=...,role=... and the scope, or \
                 {ANY_VALID_TOKEN:?} for no permission beyond a valid token"
            )));
        }
        Ok(fields)
    }

    fn insert(
        &mut self,
        key: Cow<'a, str>,
        value: Cow<'a, str>,
        source: &str,
    ) -> Result<(), ApiError> {
        // Unknown keys are refused as they come, so the list never outgrows the ten known ones
        // and the search for a duplicate stays short, however long the query.
        Self::known(&key)?;
        if self.get(&key).is_some() {
            return Err(ApiError::bad_request(format!(
                "{source} names {key:?} twice"
            )));
        }
        self.0.push((key, value));
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    fn known(key: &str) -> Result<(), ApiError> {
        if key == "resource" || key == "role" || QUESTION_SCOPE_KEYS.contains(&key) {
            return Ok(());
        }
        Err(ApiError::bad_request(format!(
            "unknown parameter {key:?}: a permission question takes resource, role and {}",
            QUESTION_SCOPE_KEYS.join(", ")
        )))
    }

    /// The question they ask (every key is a known one: `insert` saw to it); `Ok(None)` when
    /// they ask none.
    fn access(&self) -> Result<Option<Access<'_>>, ApiError> {
        let (Some(resource), Some(role)) = (self.get("resource"), self.get("role")) else {
            if self.0.is_empty() {
                return Ok(None);
            }
            return Err(ApiError::bad_request(
                "a permission question needs both resource and role",
            ));
        };
        Access::from_fields(resource, role, |key| self.get(key))
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// The role and scope asked, for a refusal's message.
    fn describe_role(&self) -> String {
        self.0
            .iter()
            .filter(|(k, _)| k != "resource")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `/v1/auth`, `/v1/auth/` and `/v1/auth/{*path}`, for every method: forward authentication
/// for gateways. 200 with identity headers when the token is valid (and allowed, when a question
/// is asked); 401 with a Bearer challenge when it is missing or refused; 403 when not allowed;
/// 400 for a malformed question, which is the gateway's configuration, not the client's. A stale
/// token state is a refusal (`stale_state`). Under a flood of forged tokens a token never seen
/// before may get 503 `overloaded` or 429 `too_many_bad_signatures` with `Retry-After`; a
/// cached one never does.
///
/// Nothing the client controls may weaken, widen or break the question: see [`question`]. The
/// method does not matter and the body is never read (gateways forward the client's method,
/// and some its body). 401 and 403 carry no body, the reason in headers: nginx's
/// `auth_request` never reads a denial's body, and closes a kept-alive connection that has one.
///
/// The three paths are three handlers only because each documented path needs its own; the
/// decision is one.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/v1/auth",
    operation_id = "forwardAuth",
    tag = "verify",
    summary = "Forward authentication for gateways.",
    description = doc::description(
        "when `X-Tessera-Require` (or, without it, the query) asks a permission"
    ),
    security(("bearer" = []), ("token" = [])),
    params(doc::Question, doc::RequireHeader),
    responses(doc::Decision)
)]
pub async fn forward_auth(State(state): State<AppState>, request: Request) -> Response {
    // The request's parts are read in place: a gateway's hot path has no use for a copy of
    // its headers.
    let (parts, _body) = request.into_parts();
    let decision = match question(&parts) {
        Ok(fields) => {
            let from = client_address(&parts, state.trusted_proxies());
            decide(&state, from, &parts.headers, &fields).await
        }
        Err(e) => Err(e),
    };
    decision.unwrap_or_else(ApiError::into_gateway_response)
}

/// `/v1/auth/`: [`forward_auth`], the question in `X-Tessera-Require` only.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/v1/auth/",
    operation_id = "forwardAuthSlash",
    tag = "verify",
    summary = "Forward authentication for gateways, with a trailing slash.",
    description = doc::description("when `X-Tessera-Require` asks a permission"),
    security(("bearer" = []), ("token" = [])),
    params(doc::RequireHeader),
    responses(doc::Decision)
)]
pub async fn forward_auth_slash(state: State<AppState>, request: Request) -> Response {
    forward_auth(state, request).await
}

/// `/v1/auth/{*path}`: [`forward_auth`] for gateways that append the client's path; the
/// question in `X-Tessera-Require` only.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/v1/auth/{*path}",
    operation_id = "forwardAuthPrefixed",
    tag = "verify",
    summary = "Forward authentication for gateways that append the client's path.",
    description = doc::description("when `X-Tessera-Require` asks a permission"),
    security(("bearer" = []), ("token" = [])),
    params(doc::ClientPath, doc::RequireHeader),
    responses(doc::Decision)
)]
pub async fn forward_auth_prefixed(state: State<AppState>, request: Request) -> Response {
    forward_auth(state, request).await
}

/// The permission question of a forward-auth request.
///
/// - One `X-Tessera-Require` header, which the gateway sets: the question, and the path and
///   query are ignored (a gateway may pass the client's own, as Caddy does with `uri /v1/auth`
///   and Envoy with `path_prefix`). Two of them are refused: with the weaker one first, a
///   client that adds its own would otherwise choose.
/// - Otherwise, on exactly `/v1/auth`, the query: for gateways that fix it in the
///   authorization URL (nginx's `proxy_pass`, Traefik's `address`).
/// - Otherwise (`/v1/auth/...`, the client's path appended), no question: any valid token.
fn question(parts: &Parts) -> Result<Fields<'_>, ApiError> {
    let mut given = parts.headers.get_all(&REQUIRE).iter();
    match (given.next(), given.next()) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "X-Tessera-Require is given more than once; the gateway must set it (replacing \
             any the client sent), not add to it",
        )),
        (Some(value), None) => Fields::from_header(value),
        (None, _) if parts.uri.path() == "/v1/auth" => match parts.uri.query() {
            Some(query) if !query.is_empty() => Fields::from_query(query),
            _ => Ok(Fields::default()),
        },
        (None, _) => Ok(Fields::default()),
    }
}

async fn decide(
    state: &AppState,
    from: Option<IpAddr>,
    headers: &HeaderMap,
    fields: &Fields<'_>,
) -> Result<Response, ApiError> {
    let access = fields.access()?;
    let verified = authenticate(state, headers, from).await?;
    if let Some(access) = &access {
        if !verified.allows(access) {
            state.count_forbidden();
            return Err(ApiError::forbidden(format!(
                "token {:?} does not allow {} {}",
                verified.name(),
                access.resource(),
                fields.describe_role()
            )));
        }
    }
    let identity = verified.memo(Identity::of);
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(TOKEN_ID, identity.id.clone());
    headers.insert(TOKEN_NAME, identity.name.clone());
    let super_admin = if verified.is_super_admin() {
        "true"
    } else {
        "false"
    };
    headers.insert(SUPER_ADMIN, HeaderValue::from_static(super_admin));
    Ok(response)
}

const REQUIRE: HeaderName = HeaderName::from_static("x-tessera-require");
/// `X-Tessera-Require`'s value for a route that needs a valid token and no permission.
const ANY_VALID_TOKEN: &str = "any-valid-token";
const TOKEN_ID: HeaderName = HeaderName::from_static("x-tessera-token-id");
const TOKEN_NAME: HeaderName = HeaderName::from_static("x-tessera-token-name");
const SUPER_ADMIN: HeaderName = HeaderName::from_static("x-tessera-super-admin");

/// The identity headers of an accepted token: made once per token while it stays in the
/// signature cache, not on every request. Super-admin is not here: the token state can change
/// it.
#[derive(Clone)]
struct Identity {
    id: HeaderValue,
    name: HeaderValue,
}

impl Identity {
    fn of(claims: &Claims) -> Self {
        Self {
            id: header_value(
                claims
                    .jti
                    .hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer()),
            ),
            name: header_value(claims.name()),
        }
    }
}

fn header_value(text: &str) -> HeaderValue {
    // Token names are [a-z0-9_-] and ids are UUIDs, so this never falls back.
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = VerifyRequest)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    token: String,
    #[serde(default)]
    #[schema(value_type = Option<PermissionQuestion>)]
    require: Option<BTreeMap<String, String>>,
    /// The address of the client that presented the token, checked against the token's
    /// networks. Left out: the address of this request's own client (its peer, or what a
    /// trusted proxy forwarded), so a token bound to networks fails closed.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 64, example = "203.0.113.7")]
    client_ip: Option<String>,
}

/// `/v1/verify`'s answer: a refusal's code, or the token's effective claims (and whether the
/// required permission is allowed). Its schema is `VerifyResult` (`openapi::schemas`).
#[derive(Serialize)]
pub struct VerifyAnswer<'a> {
    valid: bool,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed: Option<bool>,
}

/// A verified token's effective claims.
#[derive(Serialize, ToSchema)]
#[schema(as = VerifiedToken)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct TokenView<'a> {
    id: Uuid,
    name: &'a str,
    #[schema(format = "uint32", minimum = 1)]
    version: u32,
    #[schema(format = DateTime, required = true)]
    expires_at: Option<String>,
    permissions: &'a Permissions,
    /// Whether the permissions were updated after the token was signed (so differ from its
    /// `perm` claim).
    permissions_updated: bool,
    /// The networks the token may be used from, in force now; absent: anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AllowedCidrs>)]
    allowed_cidrs: Option<&'a CidrList>,
}

impl<'a> TokenView<'a> {
    fn of(token: &'a VerifiedToken) -> Self {
        Self {
            id: token.id(),
            name: token.name(),
            version: token.version(),
            expires_at: token.expires_at().as_ref().map(crate::claims::format_time),
            permissions: token.permissions(),
            permissions_updated: token.permissions_updated(),
            allowed_cidrs: token.allowed_cidrs(),
        }
    }
}

/// `POST /v1/verify`: introspection. Always 200 for a well-formed request.
#[utoipa::path(
    post,
    path = "/v1/verify",
    operation_id = "verifyToken",
    tag = "verify",
    summary = "Introspection: 200 for a well-formed request, with the verdict, the reason \
               code and the effective claims; 503 or 429 when the token's signature check was \
               refused under load.",
    security(),
    request_body = VerifyBody,
    responses(
        (status = OK, description = "The verdict.", body = VerifyAnswer),
        errors::JsonBody, errors::Rationed
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    ClientAddr(from): ClientAddr,
    Body(body): Body<VerifyBody>,
) -> Result<Response, ApiError> {
    let fields = body
        .require
        .as_ref()
        .map(Fields::from_map)
        .transpose()?
        .unwrap_or_default();
    let access = fields.access()?;
    let client = match &body.client_ip {
        Some(ip) => Some(parse_client_ip(ip)?),
        None => from,
    };
    let verified = state.verify_from(&body.token, from).await?;
    let answer = match &verified {
        Err(e) => VerifyAnswer {
            valid: false,
            code: e.code(),
            token: None,
            allowed: None,
        },
        Ok(token) if !allowed_from(&state, token, client) => VerifyAnswer {
            valid: false,
            code: ADDRESS_NOT_ALLOWED,
            token: None,
            allowed: None,
        },
        Ok(token) => {
            let allowed = access.as_ref().map(|a| token.allows(a));
            let code = if allowed == Some(false) {
                state.count_forbidden();
                "forbidden"
            } else {
                "ok"
            };
            VerifyAnswer {
                valid: true,
                code,
                token: Some(TokenView::of(token)),
                allowed,
            }
        }
    };
    Ok(Json(answer).into_response())
}

/// A `client_ip` field: an IPv4 or IPv6 address, or a 400.
pub(super) fn parse_client_ip(text: &str) -> Result<IpAddr, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "client_ip: {:?} is not an IP address",
            crate::permissions::shorten(text)
        ))
    })
}

/// The public key set.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySet<'a> {
    #[schema(inline)]
    keys: Vec<KeyView<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyView<'a> {
    #[schema(pattern = r"^k4\.pid\.")]
    kid: &'a str,
    #[schema(schema_with = super::openapi::schemas::key_status)]
    status: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(pattern = r"^k4\.public\.")]
    public_key: String,
}

/// `GET /v1/keys`: the public key set.
#[utoipa::path(
    get,
    path = "/v1/keys",
    operation_id = "listKeys",
    tag = "verify",
    summary = "The public keys that verify tokens.",
    security(),
    responses((status = OK, description = "The key set.", body = KeySet))
)]
pub async fn keys(State(state): State<AppState>) -> Response {
    let ring = state.keys();
    let keys = ring
        .iter()
        .map(|(key, status)| KeyView {
            kid: key.public.id().as_str(),
            status: status.to_string(),
            created_at: crate::claims::format_time(&key.created),
            public_key: key.public.to_paserk(),
        })
        .collect();
    Json(KeySet { keys }).into_response()
}
