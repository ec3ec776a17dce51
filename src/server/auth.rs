//! Who is asking: the token a request carries, verified, and the super-admin gate.
//!
//! The token service lives inside [`Tokens`], whose field only this module can open, and the
//! only way to it is the [`Admin`] extractor, which verifies the caller's token and refuses
//! anything but a super-admin. So a management handler cannot be written without the check:
//! without an `Admin` it has no way to reach the tokens.

use super::error::ApiError;
use super::AppState;
use crate::lifecycle::{Caller, TokenService};
use crate::model::Actor;
use crate::store::AnyStore;
use crate::VerifiedToken;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName};
use std::net::{IpAddr, SocketAddr};

const TOKEN: HeaderName = HeaderName::from_static("token");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The token service, sealed: see the module docs.
pub struct Tokens(TokenService<AnyStore>);

impl Tokens {
    /// Seal a service.
    pub fn new(service: TokenService<AnyStore>) -> Self {
        Self(service)
    }

    /// For the server's own housekeeping (pruning, the first token), never for a request.
    pub(super) fn housekeeping(&self) -> &TokenService<AnyStore> {
        &self.0
    }
}

/// The token a request carries: `Authorization: Bearer <token>`, or the `token: <token>` header
/// Devtron clients send. `Ok(None)` when there is neither.
pub fn presented(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        // UTF-8 rather than `to_str`'s visible ASCII, checked a word at a time: a token is
        // hundreds of bytes, and the verifier refuses anything that is not base64url anyway.
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
            ApiError::unauthorized("malformed", "the Authorization header is not text")
        })?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized(
                "missing_token",
                "use `Authorization: Bearer <token>`",
            ));
        }
        return Ok(Some(token.trim()));
    }
    match headers.get(&TOKEN) {
        Some(value) => std::str::from_utf8(value.as_bytes())
            .map(|t| Some(t.trim()))
            .map_err(|_| ApiError::unauthorized("malformed", "the token header is not text")),
        None => Ok(None),
    }
}

/// The client's address: the peer of the connection, or, when the peer is a trusted proxy,
/// the nearest address in `X-Forwarded-For` that is not one (a client can write anything into
/// that header, so only what trusted proxies appended counts).
pub fn client_address(parts: &Parts, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    // Nearest hop first: the last address of the last header.
    let hops = parts
        .headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("").rsplit(','))
        .map(str::trim);
    for hop in hops {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(peer)
}

/// The client's address, as an extractor.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(parts, state.trusted_proxies())))
    }
}

/// A request whose token verified.
#[derive(Debug)]
pub struct Authenticated {
    /// The verified token.
    pub token: VerifiedToken,
    /// The client's address.
    pub from: Option<IpAddr>,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let from = client_address(parts, state.trusted_proxies());
        let token = authenticate(state, &parts.headers, from)?;
        Ok(Self { token, from })
    }
}

/// The token the request presents, verified (and its use noted) for the client at `from`: 401
/// when it is missing or refused. The one path from headers to a verified token, for this
/// extractor and for `/v1/auth`, which reads its request in place.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    from: Option<IpAddr>,
) -> Result<VerifiedToken, ApiError> {
    let token = presented(headers)?.ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "send a token as `Authorization: Bearer <token>`",
        )
    })?;
    state.verify_from(token, from).map_err(|e| {
        ApiError::unauthorized(e.code(), format!("the token was refused: {}", e.code()))
    })
}

/// A request by a super-admin, and with it the only way to the token service.
pub struct Admin {
    tokens: std::sync::Arc<Tokens>,
    caller: Caller,
}

impl Admin {
    /// The token service.
    pub fn tokens(&self) -> &TokenService<AnyStore> {
        // The extractor only makes an `Admin` where there is a service.
        &self.tokens.0
    }

    /// Who asks, for the audit trail.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated { token, from } = Authenticated::from_request_parts(parts, state).await?;
        if !token.is_super_admin() {
            return Err(ApiError::forbidden(
                "managing tokens needs a super-admin token",
            ));
        }
        let tokens = state
            .tokens()
            .cloned()
            .ok_or_else(|| ApiError::not_found("this instance only verifies tokens"))?;
        Ok(Self {
            tokens,
            caller: Caller {
                actor: Actor::token(token.id()),
                from: from.map(|ip| ip.to_string()),
            },
        })
    }
}
