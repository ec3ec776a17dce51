//! The management endpoints and health; the verification ones are in `verify`. Management
//! handlers take an [`Admin`], the only way to the token service. Request bodies are JSON with
//! unknown fields refused; every failure is an [`ApiError`].

use super::auth::Admin;
use super::error::ApiError;
use super::{store_answers, AppState, MAX_BODY};
use crate::lifecycle::{Expiry, Minted, NewToken, Status, TokenUpdate};
use crate::model::TokenRecord;
use crate::permissions::Permissions;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::Limited;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
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
