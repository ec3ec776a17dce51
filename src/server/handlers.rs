//! The management endpoints and health; the verification ones are in `verify`. Management
//! handlers take an [`Admin`], the only way to the token service. Request bodies are JSON with
//! unknown fields refused; every failure is an [`ApiError`]. Each handler's `#[utoipa::path]`
//! is its route and its part of `/openapi.json` (see `openapi`).

use super::auth::Admin;
use super::error::ApiError;
use super::openapi::{errors, schemas, IfMatch, TokenId};
use super::{AppState, MAX_BODY};
use crate::cidr::CidrList;
use crate::lifecycle::{
    AllowedCidrs, Description, Expires, Expiry, Minted, NewToken, RecordView, Status, TokenName,
    TokenUpdate,
};
use crate::model::{AuditRecord, TokenRecord};
use crate::permissions::Permissions;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::Limited;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
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

/// A new token, shown this once, and its record.
#[derive(Serialize, ToSchema)]
#[schema(as = MintedToken)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct MintedView<'a> {
    #[schema(pattern = r"^v4\.public\.")]
    token: &'a str,
    record: RecordView<'a>,
}

fn minted(admin: &Admin, minted: &Minted, status: StatusCode) -> Response {
    let now = admin.tokens().now();
    let body = MintedView {
        token: minted.token.expose(),
        record: minted.record.view(now),
    };
    (
        status,
        no_store(),
        [(header::ETAG, etag(minted.record.revision))],
        Json(body),
    )
        .into_response()
}

#[derive(Deserialize, ToSchema)]
#[schema(as = CreateToken)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[schema(value_type = TokenName)]
    name: String,
    #[serde(default)]
    #[schema(value_type = Description)]
    description: String,
    #[schema(value_type = Expires)]
    expires: String,
    permissions: Permissions,
    #[serde(default)]
    #[schema(value_type = AllowedCidrs)]
    allowed_cidrs: Vec<String>,
}

/// The networks of a request body, or a 422 naming the bad entry, as for any field that
/// breaks a rule.
fn parse_cidrs(entries: &[String]) -> Result<CidrList, ApiError> {
    CidrList::parse(entries).map_err(|e| {
        ApiError::from(crate::lifecycle::LifecycleError::Invalid {
            field: "allowed_cidrs",
            message: e.to_string(),
        })
    })
}

/// `POST /v1/tokens`
#[utoipa::path(
    post,
    path = "/v1/tokens",
    operation_id = "createToken",
    tag = "tokens",
    summary = "Create a token (super-admin).",
    security(("bearer" = []), ("token" = [])),
    request_body = CreateBody,
    responses(
        (status = CREATED, description = "Created: the token, shown this once, and its record.",
         body = MintedView,
         headers(
             ("ETag" = inline(schemas::ETag), description = "The record revision, for `If-Match`."),
             ("Cache-Control" = inline(schemas::NoStore), description = "The body holds a token: never cached.")
         ),
         links(
             ("getToken" = (operation_id = "getToken", parameters(("id" = "$response.body#/record/id")))),
             ("updateToken" = (operation_id = "updateToken", parameters(("id" = "$response.body#/record/id")))),
             ("regenerateToken" = (operation_id = "regenerateToken", parameters(("id" = "$response.body#/record/id")))),
             ("deleteToken" = (operation_id = "deleteToken", parameters(("id" = "$response.body#/record/id"))))
         )),
        errors::Management, errors::JsonBody, errors::Conflict
    )
)]
pub async fn create(admin: Admin, Body(body): Body<CreateBody>) -> Result<Response, ApiError> {
    let new = NewToken {
        name: body.name,
        description: body.description,
        expires: body.expires.parse::<Expiry>()?,
        permissions: body.permissions,
        allowed_cidrs: parse_cidrs(&body.allowed_cidrs)?,
    };
    let made = admin.tokens().create(admin.caller(), new).await?;
    Ok(minted(&admin, &made, StatusCode::CREATED))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[param(value_type = Option<Status>, inline)]
    status: Option<String>,
    /// Only tokens that expire within this duration from now (`7d`, `12h`, `30m`, `90s`).
    #[param(pattern = "^[0-9]{1,9}[dhms]$")]
    expiring_within: Option<String>,
}

/// The records.
#[derive(Serialize, ToSchema)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct TokenList<'a> {
    tokens: Vec<RecordView<'a>>,
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
#[utoipa::path(
    get,
    path = "/v1/tokens",
    operation_id = "listTokens",
    tag = "tokens",
    summary = "List token records (super-admin).",
    security(("bearer" = []), ("token" = [])),
    params(ListQuery),
    responses(
        (status = OK, description = "The records.", body = TokenList),
        errors::Management, errors::BadRequest
    )
)]
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
    let tokens = records
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
    Ok(Json(TokenList { tokens }).into_response())
}

/// `GET /v1/tokens/{id}`
#[utoipa::path(
    get,
    path = "/v1/tokens/{id}",
    operation_id = "getToken",
    tag = "tokens",
    summary = "A token record (super-admin).",
    security(("bearer" = []), ("token" = [])),
    params(TokenId),
    responses(
        (status = OK, description = "The record.", body = RecordView,
         headers(("ETag" = inline(schemas::ETag), description = "The record revision, for `If-Match`."))),
        errors::Management, errors::NotFound
    )
)]
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

/// Give description, permissions or both.
#[derive(Deserialize, ToSchema)]
#[schema(as = UpdateToken, min_properties = 1)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Description)]
    description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Permissions)]
    permissions: Option<Permissions>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = AllowedCidrs)]
    allowed_cidrs: Option<Vec<String>>,
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
#[utoipa::path(
    patch,
    path = "/v1/tokens/{id}",
    operation_id = "updateToken",
    tag = "tokens",
    summary = "Change a token's description, permissions or networks (super-admin); the token \
               string stays valid and carries the new permissions and networks.",
    security(("bearer" = []), ("token" = [])),
    params(TokenId, IfMatch),
    request_body = UpdateBody,
    responses(
        (status = OK, description = "The changed record.", body = RecordView,
         headers(("ETag" = inline(schemas::ETag), description = "The record revision, for `If-Match`."))),
        errors::Management, errors::JsonBody, errors::NotFound, errors::PreconditionFailed,
        errors::Conflict
    )
)]
pub async fn update(
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<UpdateBody>,
) -> Result<Response, ApiError> {
    let id = token_id(&id)?;
    let expect = if_match(&headers)?;
    if body.description.is_none() && body.permissions.is_none() && body.allowed_cidrs.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "nothing to update: give description, permissions, allowed_cidrs or several",
        ));
    }
    let update = TokenUpdate {
        description: body.description,
        permissions: body.permissions,
        allowed_cidrs: body.allowed_cidrs.as_deref().map(parse_cidrs).transpose()?,
    };
    let record = admin
        .tokens()
        .update(admin.caller(), id, update, expect)
        .await?;
    Ok(record_response(&admin, &record))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = RegenerateToken)]
#[serde(deny_unknown_fields)]
pub struct RegenerateBody {
    #[schema(value_type = Expires)]
    expires: String,
    /// New networks for the new version; left out, it keeps the token's current ones.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = AllowedCidrs)]
    allowed_cidrs: Option<Vec<String>>,
}

/// `POST /v1/tokens/{id}/regenerate`
#[utoipa::path(
    post,
    path = "/v1/tokens/{id}/regenerate",
    operation_id = "regenerateToken",
    tag = "tokens",
    summary = "A new token string with a new expiry (super-admin).",
    security(("bearer" = []), ("token" = [])),
    params(TokenId, IfMatch),
    request_body = RegenerateBody,
    responses(
        (status = OK,
         description = "The new token (version + 1), shown this once; the old one stops working.",
         body = MintedView,
         headers(
             ("ETag" = inline(schemas::ETag), description = "The record revision, for `If-Match`."),
             ("Cache-Control" = inline(schemas::NoStore), description = "The body holds a token: never cached.")
         ),
         links(
             ("getToken" = (operation_id = "getToken", parameters(("id" = "$response.body#/record/id")))),
             ("updateToken" = (operation_id = "updateToken", parameters(("id" = "$response.body#/record/id")))),
             ("regenerateToken" = (operation_id = "regenerateToken", parameters(("id" = "$response.body#/record/id")))),
             ("deleteToken" = (operation_id = "deleteToken", parameters(("id" = "$response.body#/record/id"))))
         )),
        errors::Management, errors::JsonBody, errors::NotFound, errors::PreconditionFailed
    )
)]
pub async fn regenerate(
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<RegenerateBody>,
) -> Result<Response, ApiError> {
    let id = token_id(&id)?;
    let expect = if_match(&headers)?;
    let expires = body.expires.parse::<Expiry>()?;
    let cidrs = body.allowed_cidrs.as_deref().map(parse_cidrs).transpose()?;
    let made = admin
        .tokens()
        .regenerate_with(admin.caller(), id, expires, cidrs, expect)
        .await?;
    Ok(minted(&admin, &made, StatusCode::OK))
}

/// `DELETE /v1/tokens/{id}`
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    operation_id = "deleteToken",
    tag = "tokens",
    summary = "Delete a token (super-admin): it stops working everywhere.",
    security(("bearer" = []), ("token" = [])),
    params(TokenId, IfMatch),
    responses(
        (status = NO_CONTENT, description = "Deleted."),
        errors::Management, errors::BadRequest, errors::NotFound, errors::PreconditionFailed,
        errors::Conflict
    )
)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries after this `seq` (default 0: from the start).
    #[param(format = "uint64", minimum = 0, maximum = 18446744073709551615_u64)]
    after: Option<u64>,
    /// Entries per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The most audit entries one page gives.
const AUDIT_PAGE_MAX: usize = 1000;

// `#[param]` takes literals only: `limit`'s `maximum` above must be the constant.
const _: () = assert!(AUDIT_PAGE_MAX == 1000);

/// A page of the audit trail.
#[derive(Serialize, ToSchema)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct AuditPage<'a> {
    entries: &'a [AuditRecord],
    /// Pass as `after` for the next page; `null` on the last.
    #[schema(format = "uint64", minimum = 1, required = true)]
    next_after: Option<u64>,
}

/// `GET /v1/audit?after=SEQ&limit=N`
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "listAudit",
    tag = "tokens",
    summary = "The audit trail, oldest first, a page at a time (super-admin).",
    security(("bearer" = []), ("token" = [])),
    params(AuditQuery),
    responses(
        (status = OK, description = "A page of entries.", body = AuditPage),
        errors::Management, errors::BadRequest
    )
)]
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
    let page = AuditPage {
        entries: &entries,
        next_after: next,
    };
    Ok(Json(page).into_response())
}

/// The process answers.
#[derive(Serialize, ToSchema)]
#[schema(as = Health)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct Alive {
    #[schema(schema_with = schemas::status_ok)]
    status: &'static str,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "The process answers.",
    security(),
    responses((status = OK, description = "Alive.", body = Alive))
)]
pub async fn healthz() -> Response {
    Json(Alive { status: "ok" }).into_response()
}

/// The store answers and the token state is fresh.
#[derive(Serialize, ToSchema)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct Ready {
    #[schema(schema_with = schemas::status_ready)]
    status: &'static str,
    #[schema(format = "uint64")]
    state_revision: u64,
    #[schema(minimum = 0)]
    state_age_secs: i64,
}

/// `GET /readyz`: the store answers and the token state is fresh.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "The store answers and the token state is fresh.",
    security(),
    responses(
        (status = OK, description = "Ready.", body = Ready),
        errors::NotReady
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Err(e) = state.store_answers().await {
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
    let ready = Ready {
        status: "ready",
        state_revision: mirror.revision(),
        state_age_secs: mirror.age_secs(),
    };
    Ok(Json(ready).into_response())
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
