//! Who is asking: the token a request carries, verified, and the permission gates.
//!
//! The token service lives inside [`Tokens`], whose field only this module can open. The only
//! ways to it are the extractors here, each of which verifies the caller's token and checks
//! one permission of the route table ([`super::routes`]) first: [`Admin`] (super-admin) gives
//! the whole service, [`StateReader`] (`tessera` `read-state`) only the state map. So a handler
//! cannot reach the tokens without the check: without the extractor it has no way to them.

use super::error::ApiError;
use super::routes::Need;
use super::AppState;
use crate::lifecycle::{Caller, LifecycleError, Service};
use crate::model::{Action, Actor};
use crate::model::{FeedPage, FeedPosition, StateSnapshot};
use crate::permissions::{Access, TesseraRole};
use crate::VerifiedToken;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName};
use std::net::{IpAddr, SocketAddr};

const TOKEN: HeaderName = HeaderName::from_static("token");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The token service, sealed: see the module docs.
pub struct Tokens(Service);

impl Tokens {
    /// Seal a service.
    pub fn new(service: Service) -> Self {
        Self(service)
    }

    /// For the server's own housekeeping (pruning, expiry warnings), never for a request.
    pub(super) fn housekeeping(&self) -> &Service {
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
        let token = authenticate(state, &parts.headers, from).await?;
        Ok(Self { token, from })
    }
}

/// The token the request presents, verified (and its use noted) for the client at `from`: 401
/// when it is missing or refused, 403 `address_not_allowed` when it is bound to networks that
/// do not hold `from`, 503 or 429 when its signature check was rationed. The one path from
/// headers to a verified token, for this extractor and for `/v1/auth`, which reads its request
/// in place.
pub async fn authenticate(
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
    let verified = state.verify_from(token, from).await?.map_err(|e| {
        ApiError::unauthorized(e.code(), format!("the token was refused: {}", e.code()))
    })?;
    check_address(state, &verified, from)?;
    Ok(verified)
}

/// Whether a client at `from` may use `token`: not when the token is bound to networks that
/// do not hold it, or when the address is unknown (fail closed). A refusal is counted
/// (`address_not_allowed` in `tessera_verifications_total`): a bound token used from elsewhere
/// is likely a leaked one.
pub(super) fn allowed_from(state: &AppState, token: &VerifiedToken, from: Option<IpAddr>) -> bool {
    let allowed = match from {
        Some(ip) => token.allows_from(ip),
        None => token.allowed_cidrs().is_none(),
    };
    if !allowed {
        state
            .metrics()
            .verification(super::error::ADDRESS_NOT_ALLOWED);
    }
    allowed
}

fn check_address(
    state: &AppState,
    token: &VerifiedToken,
    from: Option<IpAddr>,
) -> Result<(), ApiError> {
    if allowed_from(state, token, from) {
        return Ok(());
    }
    tracing::info!(token = %token.id(), from = ?from, "token used from outside its networks");
    Err(ApiError::address_not_allowed(from))
}

/// Whether `token` meets `need`: 403 when it is valid but not enough.
pub(super) fn check(token: &VerifiedToken, need: Need) -> Result<(), ApiError> {
    let met = match need {
        Need::Nothing | Need::ValidToken => true,
        Need::Tessera(role) => token.permissions().allows(&Access::Tessera { role }),
        Need::SuperAdmin => token.is_super_admin(),
    };
    if met {
        return Ok(());
    }
    Err(ApiError::forbidden(match need {
        Need::SuperAdmin => "managing tokens needs a super-admin token".to_owned(),
        need => format!("this needs {need}"),
    }))
}

/// The token service of an issuer, for a caller that met `need`.
async fn gate(
    parts: &mut Parts,
    state: &AppState,
    need: Need,
) -> Result<(std::sync::Arc<Tokens>, Caller), ApiError> {
    let Authenticated { token, from } = Authenticated::from_request_parts(parts, state).await?;
    check(&token, need)?;
    let tokens = state
        .tokens()
        .cloned()
        .ok_or_else(|| ApiError::not_found("this instance only verifies tokens"))?;
    let caller = Caller {
        actor: Actor::token(token.id()),
        from: from.map(|ip| ip.to_string()),
    };
    Ok((tokens, caller))
}

/// A request by a super-admin, and with it the only way to the token service.
pub struct Admin {
    tokens: std::sync::Arc<Tokens>,
    caller: Caller,
}

impl Admin {
    /// The token service.
    pub fn tokens(&self) -> &Service {
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
        let (tokens, caller) = gate(parts, state, Need::SuperAdmin).await?;
        Ok(Self { tokens, caller })
    }
}

/// A request by a token that may read the token state (`tessera` `read-state`, or a
/// super-admin), and with it the state map and its feed, nothing else.
pub struct StateReader {
    tokens: std::sync::Arc<Tokens>,
}

impl StateReader {
    /// The state map as of its revision.
    pub async fn snapshot(&self) -> Result<StateSnapshot, LifecycleError> {
        self.tokens.0.state_snapshot().await
    }

    /// The changes after `after`, waiting up to `wait` for one.
    pub async fn changes(
        &self,
        after: FeedPosition,
        wait: std::time::Duration,
    ) -> Result<FeedPage, LifecycleError> {
        self.tokens.0.state_changes(after, wait).await
    }
}

impl FromRequestParts<AppState> for StateReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let need = Need::Tessera(TesseraRole::ReadState);
        let (tokens, _) = gate(parts, state, need).await?;
        Ok(Self { tokens })
    }
}

/// A request that may ask about other tokens (`tessera` `introspect`, or a super-admin).
pub struct Introspector;

impl FromRequestParts<AppState> for Introspector {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated { token, .. } = Authenticated::from_request_parts(parts, state).await?;
        check(&token, Need::Tessera(TesseraRole::Introspect))?;
        Ok(Self)
    }
}

/// The power to revoke a token, which takes the token itself, verified: holding a valid token
/// is the authority to revoke it (RFC 7009), and only the verifier makes a [`VerifiedToken`].
pub struct Revoker {
    tokens: std::sync::Arc<Tokens>,
    from: Option<String>,
}

impl Revoker {
    /// Revoke `token`, as its holder asks (`Action::Revoked`) or a leak report does
    /// (`Action::Leaked`, with where it was found). `false` when it was not the live version.
    pub async fn revoke(
        &self,
        token: &VerifiedToken,
        action: Action,
        note: Option<String>,
    ) -> Result<bool, LifecycleError> {
        let actor = match action {
            Action::Leaked => Actor::leak_report(),
            _ => Actor::token(token.id()),
        };
        let caller = Caller {
            actor,
            from: self.from.clone(),
        };
        self.tokens
            .0
            .revoke(&caller, token.id(), token.version(), action, note)
            .await
    }
}

impl FromRequestParts<AppState> for Revoker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let from = client_address(parts, state.trusted_proxies()).map(|ip| ip.to_string());
        let tokens = state
            .tokens()
            .cloned()
            .ok_or_else(|| ApiError::not_found("this instance only verifies tokens"))?;
        Ok(Self { tokens, from })
    }
}
