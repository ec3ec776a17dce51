//! Signing tokens: claims in, a `v4.public` string out, signed by the key ring's signing key.
//!
//! The issuer stamps `iat`/`nbf` from its [`Clock`], writes the payload in a fixed order and
//! the footer `{"kid": "k4.pid..."}`, signs with `pasetors`, and refuses a token that would not
//! fit a gateway's header (4 KiB). It checks the permissions before signing, so no token with
//! invalid permissions is ever issued. It stores nothing: the token string exists only in the
//! value it returns.

use crate::cidr::CidrList;
use crate::claims::{Claims, SUBJECT_PREFIX};
use crate::clock::{Clock, SystemClock};
use crate::keys::{KeyId, KeyRing, LiveRing};
use crate::paseto;
use crate::permissions::{PermissionError, Permissions};
use crate::verifier::{DEFAULT_ISSUER, MAX_TOKEN_LEN};
use chrono::{DateTime, SubsecRound, Utc};
use pasetors::version4::PublicToken;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The key ring has no secret key.
    #[error(
        "no secret key is loaded, so nothing can sign; create one with `tessera keys generate`"
    )]
    NoSigningKey,
    /// The permissions are not valid.
    #[error("invalid permissions: {0}")]
    Permissions(#[from] PermissionError),
    /// The token would be larger than gateways accept.
    #[error("the token would be {size} bytes, more than the {limit}-byte limit; grant fewer or shorter patterns")]
    TooLarge {
        /// The size the token would have.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The expiry is not after the issue time.
    #[error("the expiry {0} is not in the future")]
    ExpiryNotInFuture(DateTime<Utc>),
    /// The version is 0 (versions start at 1).
    #[error("token versions start at 1")]
    ZeroVersion,
    /// Signing failed inside the crypto library.
    #[error("signing failed")]
    Sign,
}

/// What to put in a token. The issuer adds `iss`, `iat`, `nbf` and the key id.
#[derive(Debug, Clone, Copy)]
pub struct TokenSpec<'a> {
    /// Token id (`jti`).
    pub id: Uuid,
    /// Token version (`ver`), from 1.
    pub version: u32,
    /// Token name; the subject becomes `api-token:<name>`.
    pub name: &'a str,
    /// Expiry, or `None` for a token that never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Permissions (`perm`).
    pub permissions: &'a Permissions,
    /// The networks it may be used from (`cidr`); empty writes no claim: usable anywhere.
    pub allowed_cidrs: &'a CidrList,
}

/// A freshly signed token. The string is shown once to whoever asked for it; it prints as
/// `IssuedToken(..)` and is wiped from memory on drop.
pub struct IssuedToken {
    token: Zeroizing<String>,
    claims: Claims,
    key_id: KeyId,
}

impl IssuedToken {
    /// The token string, `v4.public....`. Hand it to its owner; never log or store it.
    pub fn expose(&self) -> &str {
        &self.token
    }

    /// The claims it carries.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The id of the key that signed it.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.claims.jti)
            .field("version", &self.claims.ver)
            .field("key_id", &self.key_id.as_str())
            .finish_non_exhaustive()
    }
}

/// Signs tokens with the signing key of a ring (see [`KeyRing::signing`]).
pub struct Issuer {
    ring: Arc<LiveRing>,
    clock: Arc<dyn Clock>,
    issuer: String,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field(
                "signing_key",
                &self
                    .ring
                    .guard()
                    .signing()
                    .map(|k| k.public.id().to_string()),
            )
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer signing with `ring`'s signing key, as `tessera`, on the system clock.
    pub fn new(ring: Arc<KeyRing>) -> Result<Self, IssueError> {
        Self::live(Arc::new(LiveRing::new(ring)))
    }

    /// [`Issuer::new`] on a ring that may be replaced (a reload of the key folder): each token
    /// is signed with the signing key of the ring of the moment.
    pub fn live(ring: Arc<LiveRing>) -> Result<Self, IssueError> {
        if ring.guard().signing().is_none() {
            return Err(IssueError::NoSigningKey);
        }
        Ok(Self {
            ring,
            clock: Arc::new(SystemClock),
            issuer: DEFAULT_ISSUER.to_owned(),
        })
    }

    /// Read the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Write `issuer` as `iss`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Sign a token.
    pub fn issue(&self, spec: &TokenSpec<'_>) -> Result<IssuedToken, IssueError> {
        let ring = self.ring.guard();
        let signer = ring.signing().ok_or(IssueError::NoSigningKey)?;
        let secret = signer.secret.as_ref().ok_or(IssueError::NoSigningKey)?;
        spec.permissions.validate()?;
        if spec.version == 0 {
            return Err(IssueError::ZeroVersion);
        }
        let now = self.clock.now().trunc_subsecs(0);
        let exp = spec.expires_at.map(|t| t.trunc_subsecs(0));
        if let Some(exp) = exp {
            if exp <= now {
                return Err(IssueError::ExpiryNotInFuture(exp));
            }
        }
        let claims = Claims {
            iss: self.issuer.clone(),
            jti: spec.id,
            ver: spec.version,
            sub: format!("{SUBJECT_PREFIX}{}", spec.name),
            iat: now,
            nbf: now,
            exp,
            perm: spec.permissions.clone(),
            cidr: (!spec.allowed_cidrs.is_empty()).then(|| spec.allowed_cidrs.clone()),
        };
        let footer = paseto::footer_for(signer.public.id().as_str());
        let token = PublicToken::sign(secret.as_pasetors(), &claims.to_json(), Some(&footer), None)
            .map_err(|_| IssueError::Sign)?;
        let token = Zeroizing::new(token);
        if token.len() > MAX_TOKEN_LEN {
            return Err(IssueError::TooLarge {
                size: token.len(),
                limit: MAX_TOKEN_LEN,
            });
        }
        Ok(IssuedToken {
            token,
            claims,
            key_id: signer.public.id().clone(),
        })
    }
}
