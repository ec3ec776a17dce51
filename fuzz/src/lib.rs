//! Shared fixtures for Tessera's fuzz targets: fixed keys, the tokens the library issues with
//! them, a lenient token decoder (to see through base64 tricks), the input formats of the
//! `verify` and `differential` targets with encoders for seeds, and a raw Ed25519 signer for the
//! signatures no honest signer makes (torsion in `R`, mixed-order keys, weak-key forgeries).
//!
//! Every input format here is read through `arbitrary::Unstructured` byte by byte, in a layout
//! simple enough to write back, so that `examples/make_seeds.rs` can emit exact seeds.

use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};
use std::sync::{Arc, OnceLock};
use tessera::keys::RingKey;
use tessera::{
    Issuer, KeyRing, ManualClock, MemoryState, Permissions, Reason, SecretKey, StateEntry,
    TokenSpec, Verifier, VerifyError,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// K1: seed 0x31 * 32. In the verify ring with its secret; signs the library's tokens.
pub const K1_SECRET: &str = "k4.secret.MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTFIB1pZfnIaFW4uB5neXMDFMk3G5-rxzdRiUIaOxTIV3Q";
/// K2: seed 0x32 * 32. In the verify ring as a verify-only (public) key.
pub const K2_SECRET: &str = "k4.secret.MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjJeISwJgOSzn8CXIRNKoCEJN07f0mDA09A8tQHI1lRXqQ";
/// K3: seed 0x33 * 32. Not in the verify ring: its tokens must fail with `unknown_key`.
pub const K3_SECRET: &str = "k4.secret.MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMXy3n7K0Eg8rHsZeQZjW4Iso6BP-sB5KQAg5uF4YCAzg";
/// The official PASETO v4.public test-vector key pair (4-S-1..3): seed, then public key.
pub const VECTOR_SEED_HEX: &str =
    "b4cbfb43df4ce210727d953e4a713307fa19bb7d9f85041438d9e11b942a3774";
/// The official vectors' public key.
pub const VECTOR_PUBLIC_HEX: &str =
    "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2";

/// Hex to bytes, for constants.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex constant"))
        .collect()
}

/// Bytes to hex, for messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(&h.finalize());
    out
}

/// An Ed25519 key pair with its expanded secret, for the raw signer.
#[derive(Clone)]
pub struct RawKey {
    /// The 32-byte seed.
    pub seed: [u8; 32],
    /// The secret scalar (clamped, reduced mod L).
    pub a: Scalar,
    /// RFC 8032 nonce prefix.
    pub prefix: [u8; 32],
    /// The public key bytes.
    pub public: [u8; 32],
    /// `pasetors`' secret key (seed || public).
    pub pasetors: pasetors::keys::AsymmetricSecretKey<pasetors::version4::V4>,
}

impl RawKey {
    /// Expand a seed as RFC 8032 does.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let h = sha512(&[&seed]);
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&h[..32]);
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        let a = Scalar::from_bytes_mod_order(scalar);
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&h[32..]);
        let public = EdwardsPoint::mul_base(&a).compress().to_bytes();
        let mut sk = seed.to_vec();
        sk.extend_from_slice(&public);
        let pasetors = pasetors::keys::AsymmetricSecretKey::from(&sk).expect("64-byte secret key");
        Self {
            seed,
            a,
            prefix,
            public,
            pasetors,
        }
    }
}

/// The keys, expanded once.
pub struct Keys {
    /// K1, K2, K3 (see the constants).
    pub k: [RawKey; 3],
    /// The official vectors' key.
    pub vector: RawKey,
}

/// The fixed keys. Checks at first use that the hardcoded PASERK strings are the documented
/// seeds, and that the raw signer reproduces `pasetors`' signatures byte for byte.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let k = [0x31u8, 0x32, 0x33].map(|b| RawKey::from_seed([b; 32]));
        for (raw, paserk) in k.iter().zip([K1_SECRET, K2_SECRET, K3_SECRET]) {
            let parsed = SecretKey::from_paserk(paserk).expect("hardcoded k4.secret parses");
            assert_eq!(
                parsed.public_key().as_bytes(),
                raw.public,
                "k4.secret matches its seed"
            );
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&unhex(VECTOR_SEED_HEX));
        let vector = RawKey::from_seed(seed);
        assert_eq!(vector.public.to_vec(), unhex(VECTOR_PUBLIC_HEX));
        let keys = Keys { k, vector };
        // The raw signer and pasetors agree on honest signatures.
        let (payload, footer, implicit) =
            (b"{\"a\":1}".as_slice(), b"f".as_slice(), b"i".as_slice());
        let ours = raw_sign(
            &keys.k[0],
            &keys.k[0].public,
            payload,
            footer,
            implicit,
            Nonce::Honest,
        );
        let theirs = pasetors::version4::PublicToken::sign(
            &keys.k[0].pasetors,
            payload,
            Some(footer),
            Some(implicit),
        )
        .expect("pasetors signs");
        assert_eq!(
            token_string(payload, &ours, footer),
            theirs,
            "raw signer == pasetors"
        );
        keys
    })
}

// ---------------------------------------------------------------------------------------------
// PAE, raw signing, token strings
// ---------------------------------------------------------------------------------------------

/// The v4.public header.
pub const HEADER: &str = "v4.public.";

/// PASETO PAE, written independently of the library's.
pub fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = (pieces.len() as u64).to_le_bytes().to_vec();
    for p in pieces {
        out.extend_from_slice(&((p.len() as u64) & (u64::MAX >> 1)).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// The message a v4.public signature covers.
pub fn signed_message(payload: &[u8], footer: &[u8], implicit: &[u8]) -> Vec<u8> {
    pae(&[HEADER.as_bytes(), payload, footer, implicit])
}

/// How the raw signer picks `R`.
#[derive(Debug, Clone, Copy)]
pub enum Nonce {
    /// RFC 8032: r = H(prefix || M); R = rB.
    Honest,
    /// R = rB + T, T the i-th 8-torsion point: a mixed-order R. s is still r + h·a with h over
    /// the new R, so the cofactored equation holds and the cofactorless one does not (i != 0).
    Torsion(usize),
    /// R = T itself (small order) and s = h·a: the cofactorless equation holds for T = identity.
    SmallOrder(usize),
}

/// Sign `PAE(header, payload, footer, implicit)` with secret `key`, hashing `public` as the
/// public key (which may differ from the key's own: mixed-order keys).
pub fn raw_sign(
    key: &RawKey,
    public: &[u8; 32],
    payload: &[u8],
    footer: &[u8],
    implicit: &[u8],
    nonce: Nonce,
) -> [u8; 64] {
    let m = signed_message(payload, footer, implicit);
    let r = Scalar::from_bytes_mod_order_wide(&sha512(&[&key.prefix, &m]));
    let (r_point, r_scalar) = match nonce {
        Nonce::Honest => (EdwardsPoint::mul_base(&r), r),
        Nonce::Torsion(i) => (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[i % 8], r),
        Nonce::SmallOrder(i) => (EIGHT_TORSION[i % 8], Scalar::ZERO),
    };
    let r_bytes = r_point.compress().to_bytes();
    let h = Scalar::from_bytes_mod_order_wide(&sha512(&[&r_bytes, public, &m]));
    let s = r_scalar + h * key.a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_bytes);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// A forgery under a small-order public key `public` (no secret needed): R = sB for a few s
/// until the cofactorless equation sB = R + hA holds, i.e. h·A = identity.
pub fn forge_weak(public: &[u8; 32], payload: &[u8], footer: &[u8], implicit: &[u8]) -> [u8; 64] {
    let m = signed_message(payload, footer, implicit);
    let a_point = CompressedEdwardsY(*public).decompress();
    let mut sig = [0u8; 64];
    for attempt in 0u8..32 {
        let s = Scalar::from_bytes_mod_order_wide(&sha512(&[b"forge", &[attempt], &m]));
        let r_bytes = EdwardsPoint::mul_base(&s).compress().to_bytes();
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        let h = Scalar::from_bytes_mod_order_wide(&sha512(&[&r_bytes, public, &m]));
        match a_point {
            Some(a) if (h * a).is_identity() => break,
            Some(_) => continue,
            None => break,
        }
    }
    sig
}

trait IsIdentity {
    fn is_identity(&self) -> bool;
}
impl IsIdentity for EdwardsPoint {
    fn is_identity(&self) -> bool {
        self.compress() == EdwardsPoint::default().compress()
    }
}

/// `v4.public.<b64(payload||sig)>[.<b64(footer)>]`, as pasetors writes it.
pub fn token_string(payload: &[u8], sig: &[u8; 64], footer: &[u8]) -> String {
    let mut body = payload.to_vec();
    body.extend_from_slice(sig);
    let mut token = format!("{HEADER}{}", URL_SAFE_NO_PAD.encode(&body));
    if !footer.is_empty() {
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(footer));
    }
    token
}

/// The group order L, little-endian.
pub const L_BYTES: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// s + L as a 256-bit little-endian sum (s < L, so it fits): the same s mod L, non-canonical.
pub fn s_plus_l(sig: &mut [u8; 64]) {
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = sig[32 + i] as u16 + L_BYTES[i] as u16 + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
}

/// Whether the signature's R decodes to a small-order point.
pub fn r_is_small_order(sig: &[u8]) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    CompressedEdwardsY(r)
        .decompress()
        .is_some_and(|p| p.is_small_order())
}

/// Whether the signature's s is not reduced (s >= L).
pub fn s_is_noncanonical(sig: &[u8]) -> bool {
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..64]);
    bool::from(Scalar::from_canonical_bytes(s).is_none())
}

/// Whether (R, s) passes the cofactored Ed25519 equation [8](sB - hA - R) = 0 but not the
/// cofactorless one sB - hA - R = 0: a signature `pasetors` (ed25519-compact, cofactored)
/// accepts and `verify_strict` (cofactorless) refuses.
pub fn cofactored_only(public: &[u8; 32], sig: &[u8], message: &[u8]) -> bool {
    let (mut r, mut s) = ([0u8; 32], [0u8; 32]);
    r.copy_from_slice(&sig[..32]);
    s.copy_from_slice(&sig[32..64]);
    let (Some(a), Some(r_point)) = (
        CompressedEdwardsY(*public).decompress(),
        CompressedEdwardsY(r).decompress(),
    ) else {
        return false;
    };
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
        return false;
    };
    let h = Scalar::from_bytes_mod_order_wide(&sha512(&[&r, public, message]));
    let d = EdwardsPoint::mul_base(&s) - h * a - r_point;
    !d.is_identity() && d.is_small_order()
}

/// Special public keys the differential target swaps in. 0..=13 are small-order encodings
/// (the 8 canonical torsion points, then non-canonical ones), then other oddities.
pub fn special_key(which: u8, real: &[u8; 32], other: &[u8; 32], random: [u8; 32]) -> [u8; 32] {
    let ff = |first: u8, last: u8| {
        let mut k = [0xffu8; 32];
        k[0] = first;
        k[31] = last;
        k
    };
    match which % 20 {
        i @ 0..=7 => EIGHT_TORSION[i as usize].compress().to_bytes(),
        8 => ff(0xee, 0x7f), // y = p + 1: the identity, non-canonical
        9 => {
            let mut k = [0u8; 32];
            k[0] = 1;
            k[31] = 0x80; // identity with the sign bit set ("negative zero" x)
            k
        }
        10 => ff(0xed, 0x7f), // y = p: the order-4 point y = 0, non-canonical
        11 => ff(0xed, 0xff), // same, sign bit set
        12 => ff(0xec, 0xff), // y = -1 (order 2) with the sign bit set
        13 => ff(0xee, 0xff), // y = p + 1 with the sign bit set
        14 => {
            let mut k = *real;
            k[31] ^= 0x80; // -A
            k
        }
        15 => noncanonical_large_order(),
        16 => random,
        17 => *other,
        18 => (CompressedEdwardsY(*real).decompress().expect("real key") + EIGHT_TORSION[1])
            .compress()
            .to_bytes(),
        _ => [0xff; 32],
    }
}

/// A non-canonical encoding (y + p) of a large-order point with a small y, found once.
pub fn noncanonical_large_order() -> [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    *KEY.get_or_init(|| {
        for y in 2u8..19 {
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            if let Some(p) = CompressedEdwardsY(canonical).decompress() {
                if !p.is_small_order() {
                    // p + y, little-endian: p = 2^255 - 19.
                    let mut k = [0xffu8; 32];
                    k[31] = 0x7f;
                    k[0] = 0xed + y;
                    return k;
                }
            }
        }
        unreachable!("some y in 2..19 is on the curve")
    })
}

// ---------------------------------------------------------------------------------------------
// Lenient decoding
// ---------------------------------------------------------------------------------------------

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode base64url leniently: padding optional, non-zero trailing bits allowed.
pub fn lenient_b64(text: &str) -> Option<Vec<u8>> {
    LENIENT.decode(text).ok()
}

/// Decode a token leniently into (payload, footer): what its bytes "mean" whatever the
/// spelling. `None` when even a lenient reading fails.
pub fn lenient_decode(token: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let rest = token.strip_prefix(HEADER)?;
    let (body, footer) = rest.split_once('.').unwrap_or((rest, ""));
    let body = lenient_b64(body)?;
    if body.len() <= 64 {
        return None;
    }
    let footer = lenient_b64(footer)?;
    Some((body[..body.len() - 64].to_vec(), footer))
}

// ---------------------------------------------------------------------------------------------
// The verify fixture
// ---------------------------------------------------------------------------------------------

/// The pinned verification time: 2026-11-28T00:00:00Z.
pub const NOW: i64 = 1_795_824_000;
/// The verifier's leeway (the library default).
pub const LEEWAY: i64 = 30;
/// In the state map as deleted.
pub const ID_DELETED: Uuid = Uuid::from_u128(1);
/// In the state map with `min_ver` 3.
pub const ID_REGENERATED: Uuid = Uuid::from_u128(2);
/// In the state map with replaced permissions.
pub const ID_UPDATED: Uuid = Uuid::from_u128(3);
/// The `min_ver` of [`ID_REGENERATED`].
pub const MIN_VER: u32 = 3;

/// A time.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("time in range")
}

/// The permissions the fixture signs.
pub fn sample_permissions() -> Permissions {
    serde_json::from_str(
        r#"{"grants":[{"resource":"devtron-app","role":"trigger","project":"payments",
            "environments":["prod"],"apps":["*"]}]}"#,
    )
    .expect("sample permissions")
}

/// The permissions the state map puts on [`ID_UPDATED`].
pub fn updated_permissions() -> Permissions {
    serde_json::from_str(r#"{"grants":[{"resource":"chart-group","role":"view","groups":["*"]}]}"#)
        .expect("updated permissions")
}

/// What verifying a base token should give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `jti`.
    pub id: Uuid,
    /// `ver`.
    pub version: u32,
    /// The signing key's id.
    pub kid: String,
    /// Whether the state map replaced the permissions.
    pub perm_updated: bool,
}

/// A token the library's issuer made, with what it should verify to.
#[derive(Debug, Clone)]
pub struct Base {
    /// For messages.
    pub name: &'static str,
    /// The token.
    pub token: String,
    /// Its payload bytes.
    pub payload: Vec<u8>,
    /// Its footer bytes.
    pub footer: Vec<u8>,
    /// The verdict.
    pub expect: Result<Expected, Reason>,
}

/// Verifiers sharing one ring, clock and state, and the tokens issued for them.
pub struct VerifyFixture {
    /// Default cache.
    pub cached: Verifier,
    /// Cache off: must agree with `cached` on every input.
    pub uncached: Verifier,
    /// Same but with a token state that has gone stale: never accepts.
    pub stale: Verifier,
    /// The tokens.
    pub bases: Vec<Base>,
    /// Key ids of K1, K2, K3.
    pub kids: [String; 3],
    /// The state map's permissions for [`ID_UPDATED`].
    pub updated: Permissions,
}

fn ring_of(secret: &str, extra_public: Option<&str>) -> Arc<KeyRing> {
    let secret = SecretKey::from_paserk(secret).expect("secret");
    let mut keys = vec![RingKey {
        public: secret.public_key(),
        secret: Some(secret),
        created: at(NOW - 86_400 * 365),
    }];
    if let Some(other) = extra_public {
        let other = SecretKey::from_paserk(other).expect("secret");
        keys.push(RingKey {
            public: other.public_key(),
            secret: None,
            created: at(NOW - 86_400 * 400),
        });
    }
    Arc::new(KeyRing::new(keys))
}

fn state_entries() -> Vec<(Uuid, StateEntry)> {
    vec![
        (
            ID_DELETED,
            StateEntry {
                deleted: true,
                ..Default::default()
            },
        ),
        (
            ID_REGENERATED,
            StateEntry {
                min_ver: MIN_VER,
                ..Default::default()
            },
        ),
        (
            ID_UPDATED,
            StateEntry {
                perm: Some(Arc::new(updated_permissions())),
                ..Default::default()
            },
        ),
    ]
}

/// The verify fixture, built once per process. Every base token's verdict is checked against
/// what it was issued to be; a mismatch panics at start-up (that would be a finding too).
pub fn verify_fixture() -> &'static VerifyFixture {
    static FIXTURE: OnceLock<VerifyFixture> = OnceLock::new();
    FIXTURE.get_or_init(build_verify_fixture)
}

fn build_verify_fixture() -> VerifyFixture {
    let _ = keys();
    let ring = ring_of(K1_SECRET, Some(K2_SECRET));
    let clock = Arc::new(ManualClock::new(at(NOW)));
    let state = Arc::new(MemoryState::new());
    state.load_snapshot(10, state_entries());
    // A state whose source went silent: bound 60 s, last heard 120 s ago.
    let stale_clock = Arc::new(ManualClock::new(at(NOW - 120)));
    let stale_state = Arc::new(MemoryState::with_bound(stale_clock.clone(), Some(60)));
    stale_state.load_snapshot(10, state_entries());
    stale_clock.set(at(NOW));

    let cached = Verifier::new(ring.clone())
        .with_clock(clock.clone())
        .with_state(state.clone());
    let uncached = Verifier::new(ring.clone())
        .with_clock(clock.clone())
        .with_state(state.clone())
        .with_cache_capacity(0);
    let stale = Verifier::new(ring.clone())
        .with_clock(clock.clone())
        .with_state(stale_state);

    let kid = |s: &str| {
        SecretKey::from_paserk(s)
            .unwrap()
            .public_key()
            .id()
            .as_str()
            .to_owned()
    };
    let kids = [kid(K1_SECRET), kid(K2_SECRET), kid(K3_SECRET)];
    let perms = sample_permissions();
    let super_admin = Permissions::SuperAdmin;

    struct Spec {
        name: &'static str,
        signer: &'static str,
        issued_at: i64,
        issuer: &'static str,
        id: u128,
        version: u32,
        expires: Option<i64>,
        super_admin: bool,
        expect: Result<(), Reason>,
    }
    let day = 86_400;
    #[rustfmt::skip]
    let specs = [
        Spec { name: "ok", signer: K1_SECRET, issued_at: NOW - 3600, issuer: "tessera", id: 0x10, version: 1, expires: Some(NOW + 30 * day), super_admin: false, expect: Ok(()) },
        Spec { name: "ok-no-expiry", signer: K1_SECRET, issued_at: NOW - 3600, issuer: "tessera", id: 0x11, version: 7, expires: None, super_admin: true, expect: Ok(()) },
        Spec { name: "revoked", signer: K1_SECRET, issued_at: NOW - 3600, issuer: "tessera", id: 1, version: 1, expires: Some(NOW + day), super_admin: false, expect: Err(Reason::Revoked) },
        Spec { name: "superseded", signer: K1_SECRET, issued_at: NOW - 3600, issuer: "tessera", id: 2, version: 2, expires: Some(NOW + day), super_admin: false, expect: Err(Reason::Superseded) },
        Spec { name: "regenerated", signer: K1_SECRET, issued_at: NOW - 3600, issuer: "tessera", id: 2, version: 3, expires: Some(NOW + day), super_admin: false, expect: Ok(()) },
        Spec { name: "perm-updated", signer: K1_SECRET, issued_at: NOW - 3600, issuer: "tessera", id: 3, version: 1, expires: None, super_admin: false, expect: Ok(()) },
        Spec { name: "expired", signer: K1_SECRET, issued_at: NOW - 40 * day, issuer: "tessera", id: 0x12, version: 1, expires: Some(NOW - 10 * day), super_admin: false, expect: Err(Reason::Expired) },
        Spec { name: "in-leeway", signer: K1_SECRET, issued_at: NOW - 100, issuer: "tessera", id: 0x13, version: 1, expires: Some(NOW - 20), super_admin: false, expect: Ok(()) },
        Spec { name: "not-yet-valid", signer: K1_SECRET, issued_at: NOW + 3600, issuer: "tessera", id: 0x14, version: 1, expires: Some(NOW + day), super_admin: false, expect: Err(Reason::NotYetValid) },
        Spec { name: "wrong-issuer", signer: K1_SECRET, issued_at: NOW - 3600, issuer: "someone-else", id: 0x15, version: 1, expires: Some(NOW + day), super_admin: false, expect: Err(Reason::WrongIssuer) },
        Spec { name: "verify-only-key", signer: K2_SECRET, issued_at: NOW - 3600, issuer: "tessera", id: 0x16, version: 1, expires: Some(NOW + day), super_admin: false, expect: Ok(()) },
        Spec { name: "unknown-key", signer: K3_SECRET, issued_at: NOW - 3600, issuer: "tessera", id: 0x17, version: 1, expires: Some(NOW + day), super_admin: false, expect: Err(Reason::UnknownKey) },
    ];
    let mut bases = Vec::new();
    for spec in specs {
        let issuer = Issuer::new(ring_of(spec.signer, None))
            .expect("issuer")
            .with_clock(Arc::new(ManualClock::new(at(spec.issued_at))))
            .with_issuer(spec.issuer);
        let id = Uuid::from_u128(spec.id);
        let issued = issuer
            .issue(&TokenSpec {
                id,
                version: spec.version,
                name: "fuzz-bot",
                expires_at: spec.expires.map(at),
                permissions: if spec.super_admin {
                    &super_admin
                } else {
                    &perms
                },
                allowed_cidrs: &Default::default(),
            })
            .expect("issue");
        let token = issued.expose().to_owned();
        let (payload, footer) = lenient_decode(&token).expect("issued token decodes");
        let expect = spec.expect.map(|()| Expected {
            id,
            version: spec.version,
            kid: issued.key_id().as_str().to_owned(),
            perm_updated: id == ID_UPDATED,
        });
        bases.push(Base {
            name: spec.name,
            token,
            payload,
            footer,
            expect,
        });
    }
    let fixture = VerifyFixture {
        cached,
        uncached,
        stale,
        bases,
        kids,
        updated: updated_permissions(),
    };
    for base in &fixture.bases {
        let got = fixture.cached.verify(&base.token);
        let got = got.as_ref().map(summary).map_err(VerifyError::reason);
        assert_eq!(
            got, base.expect,
            "base token {} verifies as issued",
            base.name
        );
    }
    fixture
}

/// What a verified token says, to compare with [`Expected`].
pub fn summary(t: &tessera::VerifiedToken) -> Expected {
    Expected {
        id: t.id(),
        version: t.version(),
        kid: t.key_id().to_owned(),
        perm_updated: t.permissions_updated(),
    }
}

/// An error's reason must be one of the documented ones, with its documented code.
pub fn check_reason(e: &VerifyError) {
    let reason = e.reason();
    assert!(
        Reason::ALL.contains(&reason),
        "reason {reason:?} not in Reason::ALL"
    );
    let codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert!(
        codes.contains(&e.code()),
        "code {} not documented",
        e.code()
    );
    assert_eq!(e.code(), reason.code());
}

// ---------------------------------------------------------------------------------------------
// The verify target's input
// ---------------------------------------------------------------------------------------------

/// One edit of a token string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOp {
    /// Overwrite one byte of the string.
    Replace { pos: u16, byte: u8 },
    /// Insert bytes into the string.
    Insert { pos: u16, bytes: Vec<u8> },
    /// Delete up to `n` bytes.
    Delete { pos: u16, n: u8 },
    /// Cut the string.
    Truncate { pos: u16 },
    /// XOR one byte of the decoded body (payload || signature), re-encode canonically.
    BodyXor { pos: u16, xor: u8 },
    /// Splice the decoded footer, re-encode canonically.
    FooterSplice { pos: u16, del: u8, bytes: Vec<u8> },
    /// Splice the decoded payload (the signature stays), re-encode canonically.
    PayloadSplice { pos: u16, del: u8, bytes: Vec<u8> },
    /// Set the unused low bits of the last character of the body (even) or footer (odd).
    TrailingBits { which: u8, bits: u8 },
    /// Append `=` padding to the body (even) or footer (odd).
    Pad { which: u8, n: u8 },
    /// Segment-level edits; see [`apply_segment`].
    Segment { kind: u8 },
}

const MAX_OPS: usize = 8;

fn take_u16(u: &mut Unstructured<'_>) -> u16 {
    let lo = u8::arbitrary(u).unwrap_or(0);
    let hi = u8::arbitrary(u).unwrap_or(0);
    u16::from_le_bytes([lo, hi])
}
fn take_u8(u: &mut Unstructured<'_>) -> u8 {
    u8::arbitrary(u).unwrap_or(0)
}
fn take_bytes(u: &mut Unstructured<'_>, n: usize) -> Vec<u8> {
    let n = n.min(u.len());
    u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default()
}
fn take_short(u: &mut Unstructured<'_>) -> Vec<u8> {
    let n = take_u8(u) as usize;
    take_bytes(u, n)
}

impl VerifyOp {
    /// Read ops until the input runs out.
    pub fn read_all(u: &mut Unstructured<'_>) -> Vec<VerifyOp> {
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            let op = match take_u8(u) % 10 {
                0 => VerifyOp::Replace {
                    pos: take_u16(u),
                    byte: take_u8(u),
                },
                1 => VerifyOp::Insert {
                    pos: take_u16(u),
                    bytes: take_short(u),
                },
                2 => VerifyOp::Delete {
                    pos: take_u16(u),
                    n: take_u8(u),
                },
                3 => VerifyOp::Truncate { pos: take_u16(u) },
                4 => VerifyOp::BodyXor {
                    pos: take_u16(u),
                    xor: take_u8(u),
                },
                5 => VerifyOp::FooterSplice {
                    pos: take_u16(u),
                    del: take_u8(u),
                    bytes: take_short(u),
                },
                6 => VerifyOp::PayloadSplice {
                    pos: take_u16(u),
                    del: take_u8(u),
                    bytes: take_short(u),
                },
                7 => VerifyOp::TrailingBits {
                    which: take_u8(u),
                    bits: take_u8(u),
                },
                8 => VerifyOp::Pad {
                    which: take_u8(u),
                    n: take_u8(u),
                },
                _ => VerifyOp::Segment { kind: take_u8(u) },
            };
            ops.push(op);
        }
        ops
    }

    /// Write the op back in the layout [`VerifyOp::read_all`] reads.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let short = |out: &mut Vec<u8>, b: &[u8]| {
            out.push(b.len() as u8);
            out.extend_from_slice(&b[..b.len().min(255)]);
        };
        match self {
            VerifyOp::Replace { pos, byte } => {
                out.push(0);
                out.extend(pos.to_le_bytes());
                out.push(*byte);
            }
            VerifyOp::Insert { pos, bytes } => {
                out.push(1);
                out.extend(pos.to_le_bytes());
                short(out, bytes);
            }
            VerifyOp::Delete { pos, n } => {
                out.push(2);
                out.extend(pos.to_le_bytes());
                out.push(*n);
            }
            VerifyOp::Truncate { pos } => {
                out.push(3);
                out.extend(pos.to_le_bytes());
            }
            VerifyOp::BodyXor { pos, xor } => {
                out.push(4);
                out.extend(pos.to_le_bytes());
                out.push(*xor);
            }
            VerifyOp::FooterSplice { pos, del, bytes } => {
                out.push(5);
                out.extend(pos.to_le_bytes());
                out.push(*del);
                short(out, bytes);
            }
            VerifyOp::PayloadSplice { pos, del, bytes } => {
                out.push(6);
                out.extend(pos.to_le_bytes());
                out.push(*del);
                short(out, bytes);
            }
            VerifyOp::TrailingBits { which, bits } => {
                out.push(7);
                out.push(*which);
                out.push(*bits);
            }
            VerifyOp::Pad { which, n } => {
                out.push(8);
                out.push(*which);
                out.push(*n);
            }
            VerifyOp::Segment { kind } => {
                out.push(9);
                out.push(*kind);
            }
        }
    }
}

/// The verify target's input. First byte below 0xC0: mutate base token `byte % n` with the ops
/// that follow. 0xC0 and above: sign the rest as a payload (see [`SignedCase`]).
#[derive(Debug, Clone)]
pub enum VerifyInput {
    /// Edits of a token the library issued.
    Mutate { base: u8, ops: Vec<VerifyOp> },
    /// A payload (and maybe footer) signed by the harness with a fixture key.
    Signed(SignedCase),
}

/// A payload signed by the harness: `selector & 3` picks the key (K1, K2, K3, K1),
/// `selector & 4` means the footer is given (u8 length then bytes) instead of the key's own
/// `{"kid":...}`; the rest is the payload.
#[derive(Debug, Clone)]
pub struct SignedCase {
    /// The selector byte (>= 0xC0).
    pub selector: u8,
    /// The given footer, if any.
    pub footer: Option<Vec<u8>>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl VerifyInput {
    /// Parse (never fails; the raw bytes are also verified as a string by the target).
    pub fn read(data: &[u8]) -> VerifyInput {
        let mut u = Unstructured::new(data);
        let selector = take_u8(&mut u);
        if selector < 0xC0 {
            VerifyInput::Mutate {
                base: selector,
                ops: VerifyOp::read_all(&mut u),
            }
        } else {
            let footer = (selector & 4 != 0).then(|| take_short(&mut u));
            let n = u.len();
            let payload = take_bytes(&mut u, n);
            VerifyInput::Signed(SignedCase {
                selector,
                footer,
                payload,
            })
        }
    }

    /// Bytes that [`VerifyInput::read`] turns back into `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            VerifyInput::Mutate { base, ops } => {
                out.push(*base % 0xC0);
                for op in ops {
                    op.encode(&mut out);
                }
            }
            VerifyInput::Signed(case) => {
                out.push(case.selector | 0xC0);
                if let Some(footer) = &case.footer {
                    out[0] |= 4;
                    out.push(footer.len() as u8);
                    out.extend_from_slice(footer);
                } else {
                    out[0] &= !4;
                }
                out.extend_from_slice(&case.payload);
            }
        }
        out
    }
}

/// Where the body and footer of a token string are, if it has the header.
fn segments(s: &[u8]) -> Option<(std::ops::Range<usize>, Option<std::ops::Range<usize>>)> {
    if !s.starts_with(HEADER.as_bytes()) {
        return None;
    }
    let start = HEADER.len();
    match s[start..].iter().position(|&b| b == b'.') {
        None => Some((start..s.len(), None)),
        Some(dot) => Some((start..start + dot, Some(start + dot + 1..s.len()))),
    }
}

fn decode_segment(s: &[u8], range: &std::ops::Range<usize>) -> Option<Vec<u8>> {
    lenient_b64(std::str::from_utf8(&s[range.clone()]).ok()?)
}

fn splice(v: &mut Vec<u8>, pos: u16, del: u8, bytes: &[u8]) {
    let pos = pos as usize % (v.len() + 1);
    let end = (pos + del as usize).min(v.len());
    v.splice(pos..end, bytes.iter().copied());
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Apply one op to a token string (as bytes).
pub fn apply_op(s: &mut Vec<u8>, op: &VerifyOp, bases: &[Base]) {
    match op {
        VerifyOp::Replace { pos, byte } => {
            if !s.is_empty() {
                let i = *pos as usize % s.len();
                s[i] = *byte;
            }
        }
        VerifyOp::Insert { pos, bytes } => splice(s, *pos, 0, bytes),
        VerifyOp::Delete { pos, n } => splice(s, *pos, *n, &[]),
        VerifyOp::Truncate { pos } => {
            let n = *pos as usize % (s.len() + 1);
            s.truncate(n);
        }
        VerifyOp::BodyXor { pos, xor } => {
            let Some((body, _)) = segments(s) else { return };
            let Some(mut bytes) = decode_segment(s, &body) else {
                return;
            };
            if bytes.is_empty() {
                return;
            }
            let i = *pos as usize % bytes.len();
            bytes[i] ^= (*xor).max(1);
            s.splice(body, URL_SAFE_NO_PAD.encode(&bytes).into_bytes());
        }
        VerifyOp::FooterSplice { pos, del, bytes } => {
            let Some((body, footer)) = segments(s) else {
                return;
            };
            let mut decoded = match &footer {
                Some(f) => match decode_segment(s, f) {
                    Some(d) => d,
                    None => return,
                },
                None => Vec::new(),
            };
            splice(&mut decoded, *pos, *del, bytes);
            s.truncate(body.end);
            if !decoded.is_empty() {
                s.push(b'.');
                s.extend_from_slice(URL_SAFE_NO_PAD.encode(&decoded).as_bytes());
            }
        }
        VerifyOp::PayloadSplice { pos, del, bytes } => {
            let Some((body, _)) = segments(s) else { return };
            let Some(decoded) = decode_segment(s, &body) else {
                return;
            };
            if decoded.len() < 64 {
                return;
            }
            let (payload, sig) = decoded.split_at(decoded.len() - 64);
            let mut payload = payload.to_vec();
            splice(&mut payload, *pos, *del, bytes);
            payload.extend_from_slice(sig);
            s.splice(body, URL_SAFE_NO_PAD.encode(&payload).into_bytes());
        }
        VerifyOp::TrailingBits { which, bits } => {
            let Some((body, footer)) = segments(s) else {
                return;
            };
            let range = if which % 2 == 0 { Some(body) } else { footer };
            let Some(range) = range else { return };
            // Unused bits of the last character: 4 when len % 4 == 2, 2 when len % 4 == 3.
            let unused = match range.len() % 4 {
                2 => 4,
                3 => 2,
                _ => return,
            };
            let last = range.end - 1;
            let Some(value) = B64.iter().position(|&c| c == s[last]) else {
                return;
            };
            let mask = (1u8 << unused) - 1;
            let low = (bits & mask).max(1);
            s[last] = B64[(value as u8 & !mask | low) as usize];
        }
        VerifyOp::Pad { which, n } => {
            let Some((body, footer)) = segments(s) else {
                return;
            };
            let pad: &[u8] = if n % 2 == 0 { b"=" } else { b"==" };
            match (which % 2, footer) {
                (1, Some(f)) => s.splice(f.end..f.end, pad.iter().copied()),
                _ => s.splice(body.end..body.end, pad.iter().copied()),
            };
        }
        VerifyOp::Segment { kind } => apply_segment(s, *kind, bases),
    }
}

/// Segment-level edits: `kind % 8` picks the edit, `kind / 8` picks another base token.
pub fn apply_segment(s: &mut Vec<u8>, kind: u8, bases: &[Base]) {
    let other = bases[(kind / 8) as usize % bases.len()].token.as_bytes();
    let Some((body, footer)) = segments(s) else {
        if kind % 8 == 5 && !s.is_empty() {
            s[0] ^= 0x20; // change case of the first header byte
        }
        return;
    };
    match kind % 8 {
        0 => s.push(b'.'),
        1 => s.truncate(body.end),
        2 => s.extend_from_slice(b".AAAA"),
        3 => {
            if let Some((ob, _)) = segments(other) {
                s.splice(body, other[ob].iter().copied());
            }
        }
        4 => {
            if let Some((_, Some(of))) = segments(other) {
                let mut new = s[..body.end].to_vec();
                new.push(b'.');
                new.extend_from_slice(&other[of]);
                *s = new;
            }
        }
        5 => s[1] = b'2', // v2.public
        6 => s.push(b'\n'),
        _ => {
            if let Some(f) = footer {
                let dup = s[f].to_vec();
                s.push(b'.');
                s.extend_from_slice(&dup);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The differential target's input
// ---------------------------------------------------------------------------------------------

/// One deviation from an honest token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// XOR a byte of the final token string (xor 0 counts as 1).
    FlipTokenByte { pos: u16, xor: u8 },
    /// Flip one of the signature's 512 bits.
    FlipSigBit { bit: u16 },
    /// Verify with a special key instead (see [`special_key`]); 16 takes 32 random bytes.
    Key { which: u8, random: [u8; 32] },
    /// Replace s with s + L.
    SPlusL,
    /// Append a `.`.
    AppendDot,
    /// Remove a trailing `.`.
    RemoveTrailingDot,
    /// Append `=` (even) or `==` (odd); to the body (`which & 2 == 0`) or the footer.
    Pad { which: u8 },
    /// Re-sign with R = rB + T_i (a mixed-order R).
    TorsionR { i: u8 },
    /// Present the key A + T_i and re-sign, hashing A + T_i (a mixed-order key).
    MixedKey { i: u8 },
    /// Present small-order key `special_key(i % 14)` and forge a signature for it.
    WeakKeyForge { i: u8 },
    /// Re-sign with R = T_i (small order), s = h·a.
    SmallOrderR { i: u8 },
    /// Verify with a different implicit assertion than was signed.
    WrongImplicit,
}

/// How many mutations a case carries at most.
pub const MAX_MUTATIONS: usize = 6;

impl Mutation {
    fn read(u: &mut Unstructured<'_>) -> Mutation {
        match take_u8(u) % 12 {
            0 => Mutation::FlipTokenByte {
                pos: take_u16(u),
                xor: take_u8(u),
            },
            1 => Mutation::FlipSigBit { bit: take_u16(u) },
            2 => {
                let which = take_u8(u);
                let mut random = [0u8; 32];
                if which % 20 == 16 {
                    let b = take_bytes(u, 32);
                    random[..b.len()].copy_from_slice(&b);
                }
                Mutation::Key { which, random }
            }
            3 => Mutation::SPlusL,
            4 => Mutation::AppendDot,
            5 => Mutation::RemoveTrailingDot,
            6 => Mutation::Pad { which: take_u8(u) },
            7 => Mutation::TorsionR { i: take_u8(u) },
            8 => Mutation::MixedKey { i: take_u8(u) },
            9 => Mutation::WeakKeyForge { i: take_u8(u) },
            10 => Mutation::SmallOrderR { i: take_u8(u) },
            _ => Mutation::WrongImplicit,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Mutation::FlipTokenByte { pos, xor } => {
                out.push(0);
                out.extend(pos.to_le_bytes());
                out.push(*xor);
            }
            Mutation::FlipSigBit { bit } => {
                out.push(1);
                out.extend(bit.to_le_bytes());
            }
            Mutation::Key { which, random } => {
                out.extend([2, *which]);
                if which % 20 == 16 {
                    out.extend_from_slice(random);
                }
            }
            Mutation::SPlusL => out.push(3),
            Mutation::AppendDot => out.push(4),
            Mutation::RemoveTrailingDot => out.push(5),
            Mutation::Pad { which } => out.extend([6, *which]),
            Mutation::TorsionR { i } => out.extend([7, *i]),
            Mutation::MixedKey { i } => out.extend([8, *i]),
            Mutation::WeakKeyForge { i } => out.extend([9, *i]),
            Mutation::SmallOrderR { i } => out.extend([10, *i]),
            Mutation::WrongImplicit => out.push(11),
        }
    }
}

/// A differential case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffCase {
    /// Input starting with `v`: a token string, then optionally `\n` and the implicit
    /// assertion. Checked under the fixed key K1 and the official vectors' key.
    Raw { token: Vec<u8>, implicit: Vec<u8> },
    /// Sign (flags bit 0: K1, or the vectors' key) payload, footer and implicit assertion,
    /// then apply the mutations.
    Signed {
        flags: u8,
        payload: Vec<u8>,
        footer: Vec<u8>,
        implicit: Vec<u8>,
        mutations: Vec<Mutation>,
    },
}

impl<'a> Arbitrary<'a> for DiffCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        if u.peek_bytes(1) == Some(b"v") {
            let rest = {
                let n = u.len();
                take_bytes(u, n)
            };
            let (token, implicit) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (rest[..i].to_vec(), rest[i + 1..].to_vec()),
                None => (rest, Vec::new()),
            };
            return Ok(DiffCase::Raw { token, implicit });
        }
        let flags = take_u8(u);
        let n = take_u16(u) as usize;
        let payload = take_bytes(u, n);
        let n = take_u16(u) as usize;
        let footer = take_bytes(u, n);
        let n = take_u8(u) as usize;
        let implicit = take_bytes(u, n);
        let mut mutations = Vec::new();
        while !u.is_empty() && mutations.len() < MAX_MUTATIONS {
            mutations.push(Mutation::read(u));
        }
        Ok(DiffCase::Signed {
            flags,
            payload,
            footer,
            implicit,
            mutations,
        })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

impl DiffCase {
    /// Bytes that parse back into `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            DiffCase::Raw { token, implicit } => {
                out.extend_from_slice(token);
                if !implicit.is_empty() {
                    out.push(b'\n');
                    out.extend_from_slice(implicit);
                }
            }
            DiffCase::Signed {
                flags,
                payload,
                footer,
                implicit,
                mutations,
            } => {
                assert_ne!(*flags, b'v', "flags byte 'v' means a raw case");
                out.push(*flags);
                out.extend((payload.len() as u16).to_le_bytes());
                out.extend_from_slice(payload);
                out.extend((footer.len() as u16).to_le_bytes());
                out.extend_from_slice(footer);
                out.push(implicit.len() as u8);
                out.extend_from_slice(implicit);
                for m in mutations {
                    m.encode(&mut out);
                }
            }
        }
        out
    }
}

/// Tessera's key for `key` bytes, or `None` when Tessera refuses to load it (not a point, of
/// small order, or not canonically encoded: such a key never reaches a verifier). Building a
/// key's table for signature checks takes 0.3 ms or more, so keys are kept (up to 256).
pub fn public_key(key: &[u8; 32]) -> Option<tessera::keys::PublicKey> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static KEYS: RefCell<HashMap<[u8; 32], Option<tessera::keys::PublicKey>>> =
            RefCell::new(HashMap::new());
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.len() >= 256 {
            keys.clear();
        }
        keys.entry(*key)
            .or_insert_with(|| tessera::keys::PublicKey::from_bytes(key).ok())
            .clone()
    })
}

/// The per-key table for any key ed25519-dalek decodes, small-order and non-canonical ones
/// included (the table check must give `verify_strict`'s verdict on those too). Kept like
/// [`public_key`]'s keys.
pub fn tabled_key(key: &ed25519_dalek::VerifyingKey) -> std::rc::Rc<tessera::ed25519::TabledKey> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    thread_local! {
        static TABLES: RefCell<HashMap<[u8; 32], Rc<tessera::ed25519::TabledKey>>> =
            RefCell::new(HashMap::new());
    }
    TABLES.with(|tables| {
        let mut tables = tables.borrow_mut();
        if tables.len() >= 256 {
            tables.clear();
        }
        tables
            .entry(key.to_bytes())
            .or_insert_with(|| Rc::new(tessera::ed25519::TabledKey::new(key)))
            .clone()
    })
}
