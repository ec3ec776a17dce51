//! The verification hot path: untrusted string in, [`VerifiedToken`] out.
//!
//! Order of checks (each refuses with a stable [`Reason`]): size and exact `v4.public.` prefix,
//! before any parsing; the untrusted footer, bounded, and the key it names, failing closed on an
//! unknown id; the Ed25519 signature; the payload, parsed strictly; the issuer. A token that
//! passes these is remembered in a bounded cache keyed by its whole string (at once while there
//! is room, then from its second sighting), so a hot token skips the signature. Then, on every
//! call, cached or not: the time claims against the injected [`Clock`] with a leeway, and the
//! token state (deleted, superseded, new permissions).
//!
//! What is *not* checked here: whether the token may do a particular thing. That is the
//! separate step [`VerifiedToken::allows`].
//!
//! The keys are a [`LiveRing`], which a reload replaces while tokens are being verified. A
//! cached token remembers the ring generation it was checked under; when the ring has changed
//! since, its key is looked up again (once per change), so a token whose key was retired is
//! refused even from the cache. On the cached path this costs one atomic load.

use crate::cache::SigCache;
use crate::cidr::CidrList;
use crate::claims::Claims;
use crate::clock::{Clock, SystemClock};
use crate::keys::{KeyId, KeyRing, LiveRing};
use crate::paseto::{self, Body, WireError};
use crate::permissions::{Access, Permissions};
use crate::state::{NoState, StateError, TokenState};
use chrono::{DateTime, Utc};
use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// The largest token accepted or issued, in bytes: what ordinary gateways pass in a header.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The default leeway for time claims, in seconds: tolerates clock skew between machines.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;

/// The default issuer (`iss`).
pub const DEFAULT_ISSUER: &str = "tessera";

/// The default number of verified tokens remembered: room for a gateway's working set of
/// tens of thousands of tokens (an entry is its token string and its parsed claims).
pub const DEFAULT_CACHE_CAPACITY: usize = 32_768;

/// Why a token was refused: a stable code that clients may see and match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Not a well-formed Tessera token (size, header, encoding, footer, payload).
    Malformed,
    /// Signed with a key this verifier does not hold.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// Past its expiry.
    Expired,
    /// Not valid yet (`nbf` or `iat` in the future).
    NotYetValid,
    /// Issued by someone else (`iss`).
    WrongIssuer,
    /// Deleted.
    Revoked,
    /// Replaced by a regenerated version.
    Superseded,
    /// The token state is too old to trust.
    StaleState,
}

impl Reason {
    /// Every reason, for tables and documentation.
    pub const ALL: [Reason; 9] = [
        Reason::Malformed,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::WrongIssuer,
        Reason::Revoked,
        Reason::Superseded,
        Reason::StaleState,
    ];

    /// The stable code, e.g. `bad_signature`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::Revoked => "revoked",
            Reason::Superseded => "superseded",
            Reason::StaleState => "stale_state",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refused token: the [`Reason`] for clients, and a detail for logs. The detail never holds
/// the token or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct VerifyError {
    reason: Reason,
    detail: Cow<'static, str>,
}

impl VerifyError {
    fn new(reason: Reason, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// The stable reason.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The stable reason code, e.g. `expired`.
    pub fn code(&self) -> &'static str {
        self.reason.code()
    }

    /// What exactly failed, for logs.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<WireError> for VerifyError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Malformed(why) => Self::new(Reason::Malformed, why),
            WireError::BadSignature => Self::new(Reason::BadSignature, "signature does not verify"),
        }
    }
}

/// What the cache remembers of a token that passed every static check.
struct Checked {
    claims: Claims,
    kid: KeyId,
    // Times as Unix seconds: compared on every call, so kept cheap to compare.
    iat: i64,
    nbf: i64,
    exp: Option<i64>,
    // See `VerifiedToken::memo`.
    memo: OnceLock<Box<dyn Any + Send + Sync>>,
    /// The ring generation under which `kid` was last found in the ring.
    generation: AtomicU64,
}

/// A token whose signature, claims, times and state all checked out, with the permissions in
/// force now. Only [`Verifier::verify`] makes one.
#[derive(Clone)]
pub struct VerifiedToken {
    checked: Arc<Checked>,
    // Set when the token state replaced the signed permissions.
    perm: Option<Arc<Permissions>>,
    // Set when the token state replaced the signed networks.
    cidr: Option<CidrList>,
    at: DateTime<Utc>,
}

impl VerifiedToken {
    /// The verifier's clock when it accepted the token: the time of this use.
    pub fn verified_at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The token id (`jti`).
    pub fn id(&self) -> Uuid {
        self.checked.claims.jti
    }

    /// The token version (`ver`).
    pub fn version(&self) -> u32 {
        self.checked.claims.ver
    }

    /// The token name (from `sub`).
    pub fn name(&self) -> &str {
        self.checked.claims.name()
    }

    /// The signed claims, as issued.
    pub fn claims(&self) -> &Claims {
        &self.checked.claims
    }

    /// The id of the key that signed the token.
    pub fn key_id(&self) -> &str {
        self.checked.kid.as_str()
    }

    /// Expiry; `None` for a token that never expires.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.checked.claims.exp
    }

    /// The permissions in force: the token state's, when an update replaced the signed ones.
    pub fn permissions(&self) -> &Permissions {
        self.perm.as_deref().unwrap_or(&self.checked.claims.perm)
    }

    /// Whether the permissions were replaced by an update after signing.
    pub fn permissions_updated(&self) -> bool {
        self.perm.is_some()
    }

    /// Whether the token is a super-admin token.
    pub fn is_super_admin(&self) -> bool {
        self.permissions().is_super_admin()
    }

    /// The authorization decision: may this token do `access`?
    pub fn allows(&self, access: &Access<'_>) -> bool {
        self.permissions().allows(access)
    }

    /// The networks the token may be used from, in force now: the token state's, when an
    /// update replaced the signed `cidr` claim, else the claim. `None` (or an empty list):
    /// anywhere.
    pub fn allowed_cidrs(&self) -> Option<&CidrList> {
        self.cidr
            .as_ref()
            .or(self.checked.claims.cidr.as_ref())
            .filter(|list| !list.is_empty())
    }

    /// Whether a client at `ip` may use the token: it names no networks, or one holds `ip` (an
    /// IPv4-mapped IPv6 address counts as its IPv4 address). Which address is the client's is
    /// the caller's to decide: behind a proxy, only one it trusts may say.
    pub fn allows_from(&self, ip: IpAddr) -> bool {
        self.allowed_cidrs().is_none_or(|list| list.allows(ip))
    }

    /// A value derived from the signed claims alone, made once per token for as long as the
    /// token stays in the signature cache: what a layer above would otherwise rebuild on every
    /// request (the server's identity headers). Never anything that depends on the token
    /// state, which `make` cannot see. One type per verifier: a value of another type is made
    /// afresh on every call.
    pub fn memo<T: Any + Clone + Send + Sync>(
        &self,
        make: impl FnOnce(&Claims) -> T,
    ) -> Cow<'_, T> {
        let claims = &self.checked.claims;
        match self.checked.memo.get() {
            Some(kept) => match kept.downcast_ref::<T>() {
                Some(value) => Cow::Borrowed(value),
                None => Cow::Owned(make(claims)),
            },
            None => {
                let value = make(claims);
                // Two threads may both make it; one is kept, and each returns its own.
                let _ = self.checked.memo.set(Box::new(value.clone()));
                Cow::Owned(value)
            }
        }
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("id", &self.id())
            .field("version", &self.version())
            .field("name", &self.name())
            .field("permissions", self.permissions())
            .field("allowed_cidrs", &self.allowed_cidrs())
            .finish_non_exhaustive()
    }
}

/// What [`Verifier::look_up`] found.
#[derive(Debug)]
pub enum Lookup<'t> {
    /// The verdict, reached without a signature check.
    Answered(Result<VerifiedToken, VerifyError>),
    /// The token needs its signature checked.
    NeedsSignature(Unchecked<'t>),
}

/// A token that needs its signature checked: see [`Verifier::verify_signature`].
pub struct Unchecked<'t> {
    token: std::borrow::Cow<'t, str>,
    miss: crate::cache::Miss,
}

impl Unchecked<'_> {
    /// The same, owning its token, to be checked on another thread.
    pub fn into_owned(self) -> Unchecked<'static> {
        Unchecked {
            token: std::borrow::Cow::Owned(self.token.into_owned()),
            miss: self.miss,
        }
    }
}

impl fmt::Debug for Unchecked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unchecked").finish_non_exhaustive()
    }
}

/// Verifies tokens against a key ring, a clock and a token state. Cheap to share: wrap it in an
/// `Arc` and call [`Verifier::verify`] from any thread.
pub struct Verifier {
    ring: Arc<LiveRing>,
    clock: Arc<dyn Clock>,
    state: Arc<dyn TokenState>,
    issuer: String,
    leeway_secs: i64,
    cache: SigCache<Arc<Checked>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.ring.guard().len())
            .field("issuer", &self.issuer)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for tokens signed by any key of `ring`, with the defaults: system clock,
    /// 30 s leeway, issuer `tessera`, a cache of [`DEFAULT_CACHE_CAPACITY`] tokens, and **no
    /// token state**: a deleted or regenerated token is then accepted until it expires. Give it
    /// a state with [`Verifier::with_state`].
    pub fn new(ring: Arc<KeyRing>) -> Self {
        Self::live(Arc::new(LiveRing::new(ring)))
    }

    /// [`Verifier::new`] on a ring that may be replaced while it verifies (a reload of the key
    /// folder): tokens are checked against the ring of the moment.
    pub fn live(ring: Arc<LiveRing>) -> Self {
        Self {
            ring,
            clock: Arc::new(SystemClock),
            state: Arc::new(NoState),
            issuer: DEFAULT_ISSUER.to_owned(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            cache: SigCache::new(DEFAULT_CACHE_CAPACITY),
        }
    }

    /// Read the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Consult `state` after the signature check.
    pub fn with_state(mut self, state: Arc<dyn TokenState>) -> Self {
        self.state = state;
        self
    }

    /// Accept only tokens whose `iss` is `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Tolerate this much clock skew on `exp`, `nbf` and `iat`.
    pub fn with_leeway(mut self, leeway: chrono::Duration) -> Self {
        self.leeway_secs = leeway.num_seconds().max(0);
        self
    }

    /// Remember up to `capacity` verified tokens (0 turns the cache off). A token enters the
    /// cache at once while there is room, and once it is full only the second time it is
    /// verified, so one-off tokens never evict hot ones.
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = SigCache::new(capacity);
        self
    }

    /// The key ring this verifier trusts now.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.ring.load()
    }

    /// Signature-cache lookups so far: `(hits, misses)`. A hit skipped the Ed25519 check.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }

    /// Verify an untrusted token string. See the module docs for the order of checks.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        match self.look_up(token) {
            Lookup::Answered(answer) => answer,
            Lookup::NeedsSignature(unchecked) => self.verify_signature(unchecked),
        }
    }

    /// [`Verifier::verify`] in two steps, for a server that rations signature checks: the
    /// answer when it needs no signature check (the token is cached, or refused before any
    /// parsing), otherwise the token to give to [`Verifier::verify_signature`] when there is
    /// room.
    pub fn look_up<'t>(&self, token: &'t str) -> Lookup<'t> {
        if let Err(e) = Self::check_size(token) {
            return Lookup::Answered(Err(e));
        }
        match self.cache.get(token) {
            Ok(checked) => Lookup::Answered(self.check_dynamic(checked)),
            Err(miss) => Lookup::NeedsSignature(Unchecked {
                token: token.into(),
                miss,
            }),
        }
    }

    /// The rest of [`Verifier::verify`] for a token [`Verifier::look_up`] could not answer.
    pub fn verify_signature(&self, unchecked: Unchecked<'_>) -> Result<VerifiedToken, VerifyError> {
        let Unchecked { token, miss } = unchecked;
        let checked = Arc::new(self.check_static(&token)?);
        self.cache.offer(miss, &token, checked.clone());
        self.check_dynamic(checked)
    }

    fn check_size(token: &str) -> Result<(), VerifyError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::new(
                Reason::Malformed,
                "token is empty or longer than 4096 bytes",
            ));
        }
        if !token.starts_with(paseto::HEADER) {
            return Err(VerifyError::new(Reason::Malformed, "not a v4.public token"));
        }
        Ok(())
    }

    /// The checks that run on every call, cached or not.
    fn check_dynamic(&self, checked: Arc<Checked>) -> Result<VerifiedToken, VerifyError> {
        let generation = self.ring.generation();
        if checked.generation.load(Ordering::Relaxed) != generation {
            self.check_key_still_trusted(&checked, generation)?;
        }
        let now = self.clock.now();
        self.check_time(&checked, now.timestamp())?;
        self.check_state(checked, now)
    }

    /// A token checked under an older ring: its key must still be in the ring of now (a
    /// reload may have retired it).
    #[cold]
    fn check_key_still_trusted(
        &self,
        checked: &Checked,
        generation: u64,
    ) -> Result<(), VerifyError> {
        let ring = self.ring.guard();
        if ring.get(checked.kid.as_str()).is_none() {
            return Err(unknown_key(&ring, checked.kid.as_str()));
        }
        checked.generation.store(generation, Ordering::Relaxed);
        Ok(())
    }

    /// Everything about a token that cannot change with time or state.
    fn check_static(&self, token: &str) -> Result<Checked, VerifyError> {
        // Read before the ring: the ring loaded next is of this generation or newer.
        let generation = self.ring.generation();
        let ring = self.ring.guard();
        let parts = paseto::split(token)?;
        let footer = paseto::decode_b64(parts.footer)?;
        // Our issuer's footer naming a key of the ring needs no more checks: the ring's ids are
        // well-formed. Anything else gets the bounded parse, which names what is wrong.
        let key = match paseto::issued_kid(&footer).and_then(|kid| ring.get_bytes(kid)) {
            Some(key) => key,
            None => {
                let kid = paseto::footer_kid(&footer)?;
                ring.get(kid).ok_or_else(|| unknown_key(&ring, kid))?
            }
        };
        let mut body = Body::decode(parts.body)?;
        body.verify(key, &footer, &[])?;
        let claims = Claims::from_json(body.payload())
            .map_err(|e| VerifyError::new(Reason::Malformed, format!("payload: {e}")))?;
        if claims.iss != self.issuer {
            return Err(VerifyError::new(
                Reason::WrongIssuer,
                format!("issuer {:?}, expected {:?}", claims.iss, self.issuer),
            ));
        }
        Ok(Checked {
            iat: claims.iat.timestamp(),
            nbf: claims.nbf.timestamp(),
            exp: claims.exp.map(|t| t.timestamp()),
            kid: key.id().clone(),
            claims,
            memo: OnceLock::new(),
            generation: AtomicU64::new(generation),
        })
    }

    fn check_time(&self, checked: &Checked, now: i64) -> Result<(), VerifyError> {
        if let Some(exp) = checked.exp {
            if now > exp.saturating_add(self.leeway_secs) {
                return Err(VerifyError::new(Reason::Expired, "past exp"));
            }
        }
        let earliest = now.saturating_add(self.leeway_secs);
        if checked.nbf > earliest || checked.iat > earliest {
            return Err(VerifyError::new(
                Reason::NotYetValid,
                "nbf or iat in the future",
            ));
        }
        Ok(())
    }

    fn check_state(
        &self,
        checked: Arc<Checked>,
        at: DateTime<Utc>,
    ) -> Result<VerifiedToken, VerifyError> {
        let entry = self
            .state
            .lookup(&checked.claims.jti)
            .map_err(|e: StateError| VerifyError::new(Reason::StaleState, e.to_string()))?;
        let (perm, cidr) = match entry {
            None => (None, None),
            Some(entry) if entry.deleted => {
                return Err(VerifyError::new(Reason::Revoked, "token deleted"))
            }
            Some(entry) if checked.claims.ver < entry.min_ver => {
                return Err(VerifyError::new(
                    Reason::Superseded,
                    format!("version {} < {}", checked.claims.ver, entry.min_ver),
                ))
            }
            Some(entry) => (entry.perm, entry.cidr),
        };
        Ok(VerifiedToken {
            checked,
            perm,
            cidr,
            at,
        })
    }
}

/// The refusal of a token whose key the ring does not trust; the detail says when the key
/// was retired, for the log.
fn unknown_key(ring: &KeyRing, kid: &str) -> VerifyError {
    if ring.is_retired(kid) {
        VerifyError::new(Reason::UnknownKey, format!("key {kid} is retired"))
    } else {
        VerifyError::new(Reason::UnknownKey, format!("no key {kid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LiveRing, RingKey, SecretKey};
    use crate::{Issuer, TokenSpec};

    /// A verifier with one signing key, and a super-admin token it signed.
    fn verifier_and_token() -> (Verifier, crate::issuer::IssuedToken) {
        verifier_and_bound_token(&CidrList::default())
    }

    fn verifier_and_bound_token(cidrs: &CidrList) -> (Verifier, crate::issuer::IssuedToken) {
        let ring = Arc::new(KeyRing::new([RingKey::with_secret(
            SecretKey::generate().unwrap(),
            Utc::now(),
        )]));
        let token = Issuer::new(ring.clone())
            .unwrap()
            .issue(&TokenSpec {
                id: Uuid::new_v4(),
                version: 1,
                name: "test",
                expires_at: None,
                permissions: &Permissions::SuperAdmin,
                allowed_cidrs: cidrs,
            })
            .unwrap();
        (Verifier::new(ring), token)
    }

    #[test]
    fn a_cached_token_is_refused_once_a_swap_drops_its_key_and_accepted_when_it_returns() {
        let old = RingKey::with_secret(SecretKey::generate().unwrap(), Utc::now());
        let new = SecretKey::generate().unwrap();
        let old_secret = SecretKey::from_paserk(&old.secret.as_ref().unwrap().to_paserk()).unwrap();
        let both = || {
            Arc::new(KeyRing::new([
                RingKey::with_secret(
                    SecretKey::from_paserk(&old_secret.to_paserk()).unwrap(),
                    Utc::now(),
                ),
                RingKey::with_secret(
                    SecretKey::from_paserk(&new.to_paserk()).unwrap(),
                    Utc::now(),
                ),
            ]))
        };
        let live = Arc::new(LiveRing::new(Arc::new(KeyRing::new([old]))));
        let token = Issuer::live(live.clone())
            .unwrap()
            .issue(&TokenSpec {
                id: Uuid::new_v4(),
                version: 1,
                name: "test",
                expires_at: None,
                permissions: &Permissions::SuperAdmin,
                allowed_cidrs: &Default::default(),
            })
            .unwrap();
        let verifier = Verifier::live(live.clone());
        verifier.verify(token.expose()).unwrap();
        assert_eq!(verifier.cache.len(), 1);

        // A ring with the other key only: the cached token's key is gone.
        let without = KeyRing::new([RingKey::with_secret(
            SecretKey::from_paserk(&new.to_paserk()).unwrap(),
            Utc::now(),
        )]);
        live.replace(Arc::new(without));
        let refused = verifier.verify(token.expose()).unwrap_err();
        assert_eq!(refused.reason(), Reason::UnknownKey);
        assert_eq!(verifier.cache_stats().0, 1, "refused from the cache");

        // Back in a later ring: accepted again, still from the cache.
        let generation = live.replace(both());
        verifier.verify(token.expose()).unwrap();
        let hits = verifier.cache_stats().0;
        verifier.verify(token.expose()).unwrap();
        assert_eq!(verifier.cache_stats().0, hits + 1);
        assert_eq!(live.generation(), generation);
    }

    #[test]
    fn only_a_valid_token_enters_the_cache() {
        let (verifier, token) = verifier_and_token();
        let mut tampered = token.expose().to_owned();
        tampered.insert(20, 'A');
        for _ in 0..3 {
            assert!(verifier.verify(&tampered).is_err());
        }
        assert_eq!(verifier.cache.len(), 0);
        verifier.verify(token.expose()).unwrap();
        assert_eq!(verifier.cache.len(), 1, "admitted: the cache has room");
        verifier.verify(token.expose()).unwrap();
        assert_eq!(verifier.cache.len(), 1);
        assert_eq!(
            verifier.cache_stats(),
            (1, 4),
            "one hit; three tampered, one first sight"
        );
    }

    #[test]
    fn only_a_cached_or_malformed_token_is_answered_without_a_signature_check() {
        let (verifier, token) = verifier_and_token();
        let mut forged = token.expose().to_owned();
        forged.insert(20, 'A');
        let answered = |token| match verifier.look_up(token) {
            Lookup::Answered(answer) => Some(answer),
            Lookup::NeedsSignature(_) => None,
        };
        assert!(answered(&forged).is_none());
        let Lookup::NeedsSignature(unchecked) = verifier.look_up(token.expose()) else {
            panic!("a token never seen needs its signature checked");
        };
        assert_eq!(verifier.verify_signature(unchecked).unwrap().name(), "test");
        let malformed = answered("v3.public.x").unwrap();
        assert_eq!(malformed.unwrap_err().reason(), Reason::Malformed);
        let hit = answered(token.expose()).unwrap();
        assert_eq!(hit.unwrap().name(), "test");
        assert_eq!(
            verifier.cache_stats(),
            (1, 2),
            "one lookup a call: the forged token and the first sight missed, then a hit"
        );
    }

    #[test]
    fn allows_from_reads_the_signed_networks_unless_the_state_replaced_them() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let signed = CidrList::parse(&["10.0.0.0/8"]).unwrap();
        let (verifier, token) = verifier_and_bound_token(&signed);
        assert_eq!(token.claims().cidr.as_ref(), Some(&signed));
        let state = Arc::new(crate::MemoryState::new());
        let verifier = verifier.with_state(state.clone());
        let verified = verifier.verify(token.expose()).unwrap();
        assert_eq!(verified.allowed_cidrs(), Some(&signed));
        assert!(verified.allows_from(ip("10.9.8.7")));
        assert!(verified.allows_from(ip("::ffff:10.9.8.7")));
        assert!(!verified.allows_from(ip("192.0.2.1")));

        let narrowed = CidrList::parse(&["192.0.2.0/24"]).unwrap();
        let entry = |cidr| crate::StateEntry {
            cidr: Some(cidr),
            ..Default::default()
        };
        state
            .apply(1, token.claims().jti, Some(entry(narrowed.clone())))
            .unwrap();
        let verified = verifier.verify(token.expose()).unwrap();
        assert_eq!(verified.allowed_cidrs(), Some(&narrowed));
        assert!(!verified.allows_from(ip("10.9.8.7")));
        assert!(verified.allows_from(ip("192.0.2.1")));

        state
            .apply(2, token.claims().jti, Some(entry(CidrList::default())))
            .unwrap();
        let verified = verifier.verify(token.expose()).unwrap();
        assert_eq!(
            verified.allowed_cidrs(),
            None,
            "an empty override lifts the restriction"
        );
        assert!(verified.allows_from(ip("203.0.113.1")));

        let (_, unbound) = verifier_and_token();
        assert!(unbound.claims().cidr.is_none());
    }
}
