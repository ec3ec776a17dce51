//! The one error type of the HTTP layer and its mapping to status codes: every failure a client
//! can see goes through [`ApiError`], so the JSON shape (`{"error": {"code", "message"}}`) and
//! the status for each code are decided here and nowhere else. Messages for client mistakes say
//! what to fix; server-side failures say only that something failed, with the cause in the log.

use crate::lifecycle::LifecycleError;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For 401: the `WWW-Authenticate` challenge.
    challenge: Option<HeaderValue>,
    /// For 429 and 503: seconds before a retry may succeed (`Retry-After`).
    retry_after: Option<u64>,
}

/// The code of a valid token used from outside its networks.
pub const ADDRESS_NOT_ALLOWED: &str = "address_not_allowed";

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 with a Bearer challenge; `code` is the reason (`missing_token` or a verify code).
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        let challenge = if code == "missing_token" {
            HeaderValue::from_static("Bearer")
        } else {
            // The code is one of ours (ASCII, no quotes), so the header value is valid.
            HeaderValue::from_str(&format!(
                "Bearer error=\"invalid_token\", error_description=\"{code}\""
            ))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
        };
        Self {
            challenge: Some(challenge),
            ..Self::new(StatusCode::UNAUTHORIZED, code, message)
        }
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 `address_not_allowed`: a valid token used from outside its networks. Never a 401,
    /// so a gateway passes it through instead of asking for another token.
    pub fn address_not_allowed(from: Option<std::net::IpAddr>) -> Self {
        let message = match from {
            Some(ip) => format!("this token may not be used from {ip}"),
            None => "this token is bound to networks, and the client address is unknown".into(),
        };
        Self::new(StatusCode::FORBIDDEN, ADDRESS_NOT_ALLOWED, message)
    }

    /// 500/503 for a failure on our side: the detail goes to the log only.
    pub fn internal(
        code: &'static str,
        status: StatusCode,
        detail: &dyn std::fmt::Display,
    ) -> Self {
        tracing::error!(code, error = %detail, "request failed");
        Self::new(
            status,
            code,
            "the server could not complete the request; see its log",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl ApiError {
    /// The answer to a gateway's forward-auth request: 401 and 403 without a body, the reason
    /// code in `X-Tessera-Error` (and, for 401, in `WWW-Authenticate`); anything else as usual.
    /// nginx's `auth_request` never reads a denial's body, so a body would cost it the kept-alive
    /// connection on every denial.
    pub fn into_gateway_response(self) -> Response {
        let challenge = match self.status {
            StatusCode::UNAUTHORIZED => self.challenge,
            StatusCode::FORBIDDEN => Some(HeaderValue::from_static(
                "Bearer error=\"insufficient_scope\"",
            )),
            _ => return self.into_response(),
        };
        tracing::debug!(code = self.code, message = %self.message, "forward-auth denied");
        let mut response = self.status.into_response();
        let headers = response.headers_mut();
        headers.insert(ERROR_CODE, HeaderValue::from_static(self.code));
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl From<super::Rationed> for ApiError {
    fn from(rationed: super::Rationed) -> Self {
        let (status, message) = match rationed {
            super::Rationed::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many tokens are waiting for their signature check; try again shortly",
            ),
            super::Rationed::CoolingDown(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "this client sent too many tokens with bad signatures; its new tokens are not \
                 checked until Retry-After has passed",
            ),
        };
        Self {
            retry_after: Some(rationed.retry_after()),
            ..Self::new(status, rationed.code(), message)
        }
    }
}

/// The reason code of a forward-auth denial, which has no body to carry it.
const ERROR_CODE: HeaderName = HeaderName::from_static("x-tessera-error");

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        let message = e.to_string();
        match e {
            LifecycleError::Invalid { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), message)
            }
            LifecycleError::TooLarge(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), message)
            }
            LifecycleError::NameTaken(_) | LifecycleError::LastSuperAdmin(_) => {
                Self::new(StatusCode::CONFLICT, e.code(), message)
            }
            LifecycleError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e.code(), message),
            LifecycleError::Conflict { .. } => {
                Self::new(StatusCode::PRECONDITION_FAILED, e.code(), message)
            }
            LifecycleError::NoSigningKey => {
                Self::internal(e.code(), StatusCode::SERVICE_UNAVAILABLE, &message)
            }
            LifecycleError::Store(_) if e.is_internal() => {
                Self::internal(e.code(), StatusCode::INTERNAL_SERVER_ERROR, &message)
            }
            LifecycleError::Store(_) => {
                Self::internal(e.code(), StatusCode::SERVICE_UNAVAILABLE, &message)
            }
        }
    }
}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct ErrorBody<'a> {
    #[schema(inline)]
    error: ErrorDetail<'a>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ErrorDetail<'a> {
    /// A stable, machine-readable code.
    code: &'a str,
    /// What went wrong, for a person.
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        });
        let mut response = (self.status, body).into_response();
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
