//! The endpoints. Management handlers take an [`Admin`], the only way to the token service;
//! `/v1/auth` and `/v1/verify` only verify. Request bodies are JSON with unknown fields
//! refused; every failure is an [`ApiError`].

use super::auth::{authenticate, client_address, Admin, ClientAddr};
use super::error::ApiError;
use super::{store_answers, AppState, MAX_BODY};
use crate::claims::Claims;
use crate::lifecycle::{Expiry, Minted, NewToken, Status, TokenUpdate};
use crate::model::TokenRecord;
use crate::permissions::{Access, Permissions};
use crate::VerifiedToken;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::Limited;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use uuid::Uuid;

/// JSON in, with serde's message (which names the field) in our error shape.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // The size limit lives where bodies are read, rather than in a layer that every request
        // (a gateway's `GET /v1/auth` among them) would pass through.
        let req = req.map(|body| axum::body::Body::new(Limited::new(body, MAX_BODY)));
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_request",
    };
    // serde's own words (which name the field), without axum's preamble around them.
    let cause = |e: &dyn std::error::Error| e.source().map(ToString::to_string);
    let message = match &rejection {
        JsonRejection::JsonDataError(e) => cause(e),
        JsonRejection::JsonSyntaxError(e) => {
            cause(e).map(|c| format!("the body is not valid JSON: {c}"))
        }
        _ => None,
    };
    ApiError::new(
        status,
        code,
        message.unwrap_or_else(|| rejection.body_text()),
    )
}

/// Query parameters, with the same error shape.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// A token id from the path; anything that is not one names no token.
fn token_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no token has id {raw:?}")))
}

/// The record revision an `If-Match` header names: `3`, `"3"` or `W/"3"`; `*` or no header
/// means any.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "If-Match must name a record revision, e.g. `If-Match: \"3\"`; got {text:?}"
        ))
    })
}

fn etag(revision: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn no_store() -> [(HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

fn minted(admin: &Admin, minted: &Minted, status: StatusCode) -> Response {
    let now = admin.tokens().now();
    let body = json!({
        "token": minted.token.expose(),
        "record": minted.record.view(now),
    });
    (
        status,
        no_store(),
        [(header::ETAG, etag(minted.record.revision))],
        Json(body),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    #[serde(default)]
    description: String,
    expires: String,
    permissions: Permissions,
}

/// `POST /v1/tokens`
pub async fn create(admin: Admin, Body(body): Body<CreateBody>) -> Result<Response, ApiError> {
    let new = NewToken {
        name: body.name,
        description: body.description,
        expires: body.expires.parse::<Expiry>()?,
        permissions: body.permissions,
    };
    let made = admin.tokens().create(admin.caller(), new).await?;
    Ok(minted(&admin, &made, StatusCode::CREATED))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    expiring_within: Option<String>,
}

/// A duration like `7d`, `12h`, `30m` or `90s`.
fn parse_duration(text: &str) -> Option<chrono::Duration> {
    // The unit is the last byte; a multi-byte last character is no unit (and no place to split).
    let at = text
        .len()
        .checked_sub(1)
        .filter(|&at| text.is_char_boundary(at))?;
    let (number, unit) = text.split_at(at);
    let n: i64 = number
        .parse()
        .ok()
        .filter(|n| *n >= 0 && *n <= 36_500 * 86_400)?;
    Some(match unit {
        "d" => chrono::Duration::days(n.min(36_500)),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        "s" => chrono::Duration::seconds(n),
        _ => return None,
    })
}

/// `GET /v1/tokens?status=active|expired&expiring_within=7d`
pub async fn list(admin: Admin, Params(query): Params<ListQuery>) -> Result<Response, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some("active") => Some(Status::Active),
        Some("expired") => Some(Status::Expired),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status must be active or expired, not {other:?}"
            )))
        }
    };
    let within = query
        .expiring_within
        .as_deref()
        .map(|text| {
            parse_duration(text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "expiring_within must be a duration such as 7d, 12h, 30m or 90s, not {text:?}"
                ))
            })
        })
        .transpose()?;
    let tokens = admin.tokens();
    let now = tokens.now();
    let records = tokens.list().await?;
    let views: Vec<_> = records
        .iter()
        .filter(|r| status.is_none_or(|s| r.status(now) == s))
        .filter(|r| match within {
            None => true,
            // A window past the end of representable time has no end.
            Some(d) => r.expires_at.is_some_and(|at| {
                at > now && now.checked_add_signed(d).is_none_or(|end| at <= end)
            }),
        })
        .map(|r| r.view(now))
        .collect();
    Ok(Json(json!({ "tokens": views })).into_response())
}

/// `GET /v1/tokens/{id}`
pub async fn show(admin: Admin, Path(id): Path<String>) -> Result<Response, ApiError> {
    let record = admin.tokens().get(token_id(&id)?).await?;
    Ok(record_response(&admin, &record))
}

/// A record as the API shows it, with its revision as the `ETag`.
fn record_response(admin: &Admin, record: &TokenRecord) -> Response {
    let now = admin.tokens().now();
    (
        [(header::ETAG, etag(record.revision))],
        Json(record.view(now)),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    permissions: Option<Permissions>,
}

/// A field that may be left out but not given as `null`: one value, one spelling.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `PATCH /v1/tokens/{id}`
pub async fn update(
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<UpdateBody>,
) -> Result<Response, ApiError> {
    let id = token_id(&id)?;
    let expect = if_match(&headers)?;
    if body.description.is_none() && body.permissions.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "nothing to update: give description, permissions or both",
        ));
    }
    let update = TokenUpdate {
        description: body.description,
        permissions: body.permissions,
    };
    let record = admin
        .tokens()
        .update(admin.caller(), id, update, expect)
        .await?;
    Ok(record_response(&admin, &record))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegenerateBody {
    expires: String,
}

/// `POST /v1/tokens/{id}/regenerate`
pub async fn regenerate(
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<RegenerateBody>,
) -> Result<Response, ApiError> {
    let id = token_id(&id)?;
    let expect = if_match(&headers)?;
    let expires = body.expires.parse::<Expiry>()?;
    let made = admin
        .tokens()
        .regenerate(admin.caller(), id, expires, expect)
        .await?;
    Ok(minted(&admin, &made, StatusCode::OK))
}

/// `DELETE /v1/tokens/{id}`
pub async fn delete(
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = token_id(&id)?;
    let expect = if_match(&headers)?;
    admin.tokens().delete(admin.caller(), id, expect).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// The most audit entries one page gives.
const AUDIT_PAGE_MAX: usize = 1000;

/// `GET /v1/audit?after=SEQ&limit=N`
pub async fn audit(admin: Admin, Params(query): Params<AuditQuery>) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {AUDIT_PAGE_MAX}"
        )));
    }
    let entries = admin
        .tokens()
        .audit(query.after.unwrap_or(0), limit)
        .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(json!({ "entries": entries, "next_after": next })).into_response())
}

/// The scope keys a permission question may carry, besides `resource` and `role`.
const SCOPE_KEYS: [&str; 8] = [
    "project",
    "environment",
    "app",
    "cluster",
    "namespace",
    "group",
    "kind",
    "name",
];

/// The fields of a permission question, as a gateway gives them (in the query or in
/// `X-Tessera-Require`), borrowed from the request unless they had to be unescaped. A key
/// given twice is refused: a client must not be able to add a second `resource` to the
/// gateway's question and hope one of them wins.
#[derive(Default)]
struct Fields<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Fields<'a> {
    fn from_query(query: &'a str) -> Result<Self, ApiError> {
        let mut fields = Self(Vec::with_capacity(2 + SCOPE_KEYS.len()));
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
        if key == "resource" || key == "role" || SCOPE_KEYS.contains(&key) {
            return Ok(());
        }
        Err(ApiError::bad_request(format!(
            "unknown parameter {key:?}: a permission question takes resource, role and {}",
            SCOPE_KEYS.join(", ")
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
/// 400 for a malformed question, which is the gateway's configuration, not the client's. Never
/// a 5xx for a decision: a stale token state is a refusal (`stale_state`).
///
/// Nothing the client controls may weaken, widen or break the question: see [`question`]. The
/// method does not matter and the body is never read (gateways forward the client's method,
/// and some its body). 401 and 403 carry no body, the reason in headers: nginx's
/// `auth_request` never reads a denial's body, and closes a kept-alive connection that has one.
pub async fn forward_auth(State(state): State<AppState>, request: Request) -> Response {
    // The request's parts are read in place: a gateway's hot path has no use for a copy of
    // its headers.
    let (parts, _body) = request.into_parts();
    let decision = question(&parts).and_then(|fields| {
        let from = client_address(&parts, state.trusted_proxies());
        decide(&state, from, &parts.headers, &fields)
    });
    decision.unwrap_or_else(ApiError::into_gateway_response)
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

fn decide(
    state: &AppState,
    from: Option<IpAddr>,
    headers: &HeaderMap,
    fields: &Fields<'_>,
) -> Result<Response, ApiError> {
    let access = fields.access()?;
    let verified = authenticate(state, headers, from)?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    token: String,
    #[serde(default)]
    require: Option<BTreeMap<String, String>>,
}

fn token_json(token: &VerifiedToken) -> Value {
    json!({
        "id": token.id(),
        "name": token.name(),
        "version": token.version(),
        "expires_at": token.expires_at().as_ref().map(crate::claims::format_time),
        "permissions": token.permissions(),
        "permissions_updated": token.permissions_updated(),
    })
}

/// `POST /v1/verify`: introspection. Always 200 for a well-formed request.
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
    let answer = match state.verify_from(&body.token, from) {
        Err(e) => json!({"valid": false, "code": e.code()}),
        Ok(token) => {
            let allowed = access.as_ref().map(|a| token.allows(a));
            let code = if allowed == Some(false) {
                state.count_forbidden();
                "forbidden"
            } else {
                "ok"
            };
            let mut answer = json!({"valid": true, "code": code, "token": token_json(&token)});
            if let Some(allowed) = allowed {
                answer["allowed"] = Value::from(allowed);
            }
            answer
        }
    };
    Ok(Json(answer).into_response())
}

/// `GET /v1/keys`: the public key set.
pub async fn keys(State(state): State<AppState>) -> Response {
    let keys: Vec<Value> = state
        .keys()
        .iter()
        .map(|(key, status)| {
            json!({
                "kid": key.public.id().as_str(),
                "status": status.to_string(),
                "created_at": crate::claims::format_time(&key.created),
                "public_key": key.public.to_paserk(),
            })
        })
        .collect();
    Json(json!({ "keys": keys })).into_response()
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: the store answers and the token state is fresh.
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Err(e) = store_answers(state.store()).await {
        tracing::warn!(error = %e, "not ready: the store does not answer");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the token store does not answer",
        ));
    }
    let mirror = state.mirror().state();
    if mirror.is_stale() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stale_state",
            format!("the token state was last heard {} s ago", mirror.age_secs()),
        ));
    }
    Ok(Json(json!({
        "status": "ready",
        "state_revision": mirror.revision(),
        "state_age_secs": mirror.age_secs(),
    }))
    .into_response())
}

/// Any other path.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// A known path with the wrong method.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}
