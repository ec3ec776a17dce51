//! Hostile inputs: every one is refused with the right reason code, and nothing panics.

use chrono::{DateTime, Duration, Utc};
use pasetors::keys::AsymmetricSecretKey;
use pasetors::version4::{PublicToken, V4};
use std::sync::Arc;
use tessera::keys::RingKey;
use tessera::paseto::{self, decode_b64, encode_b64};
use tessera::{
    Access, DevtronRole, Issuer, KeyRing, ManualClock, MemoryState, Permissions, Reason, SecretKey,
    StateEntry, TokenSpec, Verifier,
};
use uuid::Uuid;

const NOW: &str = "2026-11-28T12:00:00Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW).unwrap().to_utc()
}

struct Fixture {
    secret_paserk: String,
    ring: Arc<KeyRing>,
    clock: Arc<ManualClock>,
    state: Arc<MemoryState>,
    verifier: Verifier,
    issuer: Issuer,
}

fn fixture() -> Fixture {
    let secret = SecretKey::generate().unwrap();
    let secret_paserk = secret.to_paserk().to_string();
    let ring = Arc::new(KeyRing::new([RingKey::with_secret(secret, now())]));
    let clock = Arc::new(ManualClock::new(now()));
    let state = Arc::new(MemoryState::new());
    let verifier = Verifier::new(ring.clone())
        .with_clock(clock.clone())
        .with_state(state.clone());
    let issuer = Issuer::new(ring.clone()).unwrap().with_clock(clock.clone());
    Fixture {
        secret_paserk,
        ring,
        clock,
        state,
        verifier,
        issuer,
    }
}

fn trigger_payments() -> Permissions {
    serde_json::from_str(
        r#"{"grants":[{"resource":"devtron-app","role":"trigger","project":"payments",
            "environments":["prod"],"apps":["*"]}]}"#,
    )
    .unwrap()
}

impl Fixture {
    fn issue(&self, id: Uuid, version: u32, expires_at: Option<DateTime<Utc>>) -> String {
        let perm = trigger_payments();
        self.issuer
            .issue(&TokenSpec {
                id,
                version,
                name: "ci-bot",
                expires_at,
                permissions: &perm,
                allowed_cidrs: &Default::default(),
            })
            .unwrap()
            .expose()
            .to_owned()
    }

    fn token(&self) -> String {
        self.issue(Uuid::new_v4(), 1, Some(now() + Duration::days(30)))
    }

    fn kid(&self) -> String {
        self.ring.signing().unwrap().public.id().to_string()
    }

    /// Sign arbitrary payload and footer bytes with the fixture's key: only the named flaw is
    /// wrong with such a token.
    fn sign_raw(&self, payload: &[u8], footer: &[u8]) -> String {
        let key = AsymmetricSecretKey::<V4>::try_from(self.secret_paserk.as_str()).unwrap();
        PublicToken::sign(&key, payload, (!footer.is_empty()).then_some(footer), None).unwrap()
    }

    fn footer(&self) -> Vec<u8> {
        paseto::footer_for(&self.kid())
    }

    fn code(&self, token: &str) -> &'static str {
        match self.verifier.verify(token) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }
}

fn parts(token: &str) -> (Vec<u8>, Vec<u8>) {
    let split = paseto::split(token).unwrap();
    (
        decode_b64(split.body).unwrap(),
        decode_b64(split.footer).unwrap(),
    )
}

fn assemble(body: &[u8], footer: &[u8]) -> String {
    format!("v4.public.{}.{}", encode_b64(body), encode_b64(footer))
}

#[test]
fn a_fresh_token_verifies() {
    let f = fixture();
    assert_eq!(f.code(&f.token()), "ok");
}

#[test]
fn every_flipped_byte_of_payload_and_signature_is_a_bad_signature() {
    let f = fixture();
    let token = f.token();
    let (body, footer) = parts(&token);
    for i in 0..body.len() {
        for flip in [0x01u8, 0x80] {
            let mut evil = body.clone();
            evil[i] ^= flip;
            assert_eq!(
                f.code(&assemble(&evil, &footer)),
                "bad_signature",
                "byte {i} ^ {flip:#x}"
            );
        }
    }
}

#[test]
fn every_flipped_byte_of_the_footer_is_refused_for_what_it_broke() {
    let f = fixture();
    let token = f.token();
    let (body, footer) = parts(&token);
    let kid_start = footer.windows(7).position(|w| w == b"k4.pid.").unwrap() + 7;
    for i in 0..footer.len() {
        let mut evil = footer.clone();
        evil[i] ^= 0x01;
        let in_id = (kid_start..kid_start + 44).contains(&i);
        let still_b64 = evil[i].is_ascii_alphanumeric() || evil[i] == b'-' || evil[i] == b'_';
        // Inside the key id a flip names another key; anywhere else it breaks the footer.
        let want = if in_id && still_b64 {
            "unknown_key"
        } else {
            "malformed"
        };
        assert_eq!(f.code(&assemble(&body, &evil)), want, "footer byte {i}");
    }
}

#[test]
fn every_changed_character_of_the_token_string_is_refused() {
    let f = fixture();
    let token = f.token();
    for i in 0..token.len() {
        let mut evil = token.clone().into_bytes();
        evil[i] = if evil[i] == b'A' { b'B' } else { b'A' };
        let evil = String::from_utf8(evil).unwrap();
        assert_ne!(f.code(&evil), "ok", "character {i}");
    }
}

#[test]
fn foreign_headers_are_malformed() {
    let f = fixture();
    let token = f.token();
    let rest = token.strip_prefix("v4.public.").unwrap();
    for header in [
        "v4.local.",
        "v3.public.",
        "v3.local.",
        "v2.public.",
        "v2.local.",
        "v1.public.",
        "V4.PUBLIC.",
        "v4.public",
        "v4.secret.",
        "v4c.public.",
    ] {
        assert_eq!(f.code(&format!("{header}{rest}")), "malformed", "{header}");
    }
}

#[test]
fn padding_and_non_canonical_base64_are_malformed() {
    let f = fixture();
    // Find a token whose body leaves spare bits in its last character.
    let (token, body) = (0..)
        .map(|_| f.token())
        .map(|t| {
            let body = parts(&t).0;
            (t, body)
        })
        .find(|(_, body)| body.len() % 3 != 0)
        .unwrap();
    let footer = parts(&token).1;
    let body_b64 = encode_b64(&body);
    let footer_b64 = encode_b64(&footer);
    // Set a spare low bit of the last character: the same bytes, a second spelling.
    let last = body_b64.as_bytes()[body_b64.len() - 1];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.iter().position(|&c| c == last).unwrap();
    let twin = alphabet[idx | 1] as char;
    let non_canonical = format!("{}{twin}", &body_b64[..body_b64.len() - 1]);
    assert_ne!(non_canonical, body_b64);
    let cases = [
        format!("v4.public.{body_b64}=.{footer_b64}"),
        format!("v4.public.{body_b64}==.{footer_b64}"),
        format!("v4.public.{non_canonical}.{footer_b64}"),
        format!("v4.public.{body_b64}.{footer_b64}="),
        format!("v4.public.{body_b64} .{footer_b64}"),
        format!("v4.public.{body_b64}."),
        format!("v4.public.{body_b64}.{footer_b64}."),
        format!("v4.public.{body_b64}"),
        "v4.public.".to_string(),
        "v4.public.AAAA.".to_string(),
        format!("v4.public.{}.{footer_b64}", encode_b64(&[0u8; 64])),
    ];
    for case in &cases {
        assert_eq!(f.code(case), "malformed", "{case}");
    }
    // The standard alphabet's `+` and `/` are not base64url.
    let standard = format!(
        "v4.public.{}.{footer_b64}",
        body_b64.replace('-', "+").replace('_', "/")
    );
    if standard != token {
        assert_eq!(f.code(&standard), "malformed");
    }
}

#[test]
fn empty_and_oversized_tokens_are_malformed() {
    let f = fixture();
    assert_eq!(f.code(""), "malformed");
    let token = f.token();
    let huge = format!("{token}{}", "A".repeat(4097 - token.len()));
    assert_eq!(huge.len(), 4097);
    assert_eq!(f.code(&huge), "malformed");
    assert_eq!(f.code(&"v4.public.".repeat(100_000)), "malformed");
}

#[test]
fn hostile_footers_are_malformed_even_when_properly_signed() {
    let f = fixture();
    let payload = parts(&f.token()).0;
    let payload = &payload[..payload.len() - 64];
    let kid = f.kid();
    let sid = SecretKey::from_paserk(&f.secret_paserk)
        .unwrap()
        .id()
        .to_string();
    let public_key = f.ring.signing().unwrap().public.to_paserk();
    let footers = [
        (
            format!("{{\"kid\":\"{kid}\",\"pad\":\"{}\"}}", "x".repeat(300)),
            "too long",
        ),
        (
            format!("{{\"kid\":{{\"nested\":\"{kid}\"}}}}"),
            "nested object",
        ),
        (format!("{{\"kid\":[\"{kid}\"]}}"), "nested array"),
        ("{\"kid\":12345}".to_string(), "number kid"),
        ("{\"kid\":true}".to_string(), "bool kid"),
        ("{\"kid\":null}".to_string(), "null kid"),
        (
            format!("{{\"kid\":\"{public_key}\"}}"),
            "a public key as kid",
        ),
        (format!("{{\"kid\":\"{sid}\"}}"), "a secret key id as kid"),
        (
            format!("{{\"kid\":\"{}\"}}", f.secret_paserk),
            "a secret key as kid",
        ),
        (
            format!("{{\"kid\":\"{}\"}}", kid.replacen("k4.", "k3.", 1)),
            "a k3 id",
        ),
        (
            format!("{{\"kid\":\"{kid}\",\"kid\":\"{kid}\"}}"),
            "duplicate kid",
        ),
        (
            format!("{{\"kid\":\"{kid}\",\"wpk\":\"k4.local-wrap.pie.x\"}}"),
            "extra key",
        ),
        ("{}".to_string(), "no kid"),
        (kid.clone(), "bare id, not JSON"),
    ];
    for (footer, why) in footers {
        let token = f.sign_raw(payload, footer.as_bytes());
        assert_eq!(f.code(&token), "malformed", "{why}");
    }
    assert_eq!(f.code(&f.sign_raw(payload, b"")), "malformed", "no footer");
}

#[test]
fn a_key_the_verifier_does_not_hold_is_unknown_and_a_borrowed_kid_is_a_bad_signature() {
    let f = fixture();
    let other = fixture();
    assert_eq!(f.code(&other.token()), "unknown_key");
    // Another key's token relabelled with our key id fails the signature.
    let token = other.token();
    let (body, _) = parts(&token);
    assert_eq!(f.code(&assemble(&body, &f.footer())), "bad_signature");
}

#[test]
fn hostile_payloads_are_malformed_even_when_properly_signed() {
    let f = fixture();
    let id = Uuid::new_v4();
    let base = format!(
        r#"{{"iss":"tessera","jti":"{id}","ver":1,"sub":"api-token:x","iat":"2026-11-28T12:00:00Z","nbf":"2026-11-28T12:00:00Z","exp":"2026-12-28T12:00:00Z","perm":{{"super_admin":true}}}}"#
    );
    assert_eq!(f.code(&f.sign_raw(base.as_bytes(), &f.footer())), "ok");
    let edits: Vec<(String, &str)> = vec![
        (
            base.replacen("\"ver\":1", "\"ver\":1,\"ver\":2", 1),
            "duplicate ver",
        ),
        (
            base.replacen(
                "\"iss\":\"tessera\"",
                "\"iss\":\"tessera\",\"iss\":\"tessera\"",
                1,
            ),
            "duplicate iss",
        ),
        (
            base.replacen("\"ver\":1", "\"ver\":1,\"x\":1,\"x\":1", 1),
            "duplicate unknown",
        ),
        (
            base.replacen(
                "\"super_admin\":true",
                "\"super_admin\":true,\"super_admin\":true",
                1,
            ),
            "duplicate in perm",
        ),
        (
            base.replacen("2026-12-28T12:00:00Z", "2026-12-28t12:00:00Z", 1),
            "lowercase t",
        ),
        (
            base.replacen("2026-12-28T12:00:00Z", "2026-12-28T12:00:00z", 1),
            "lowercase z",
        ),
        (
            base.replacen("2026-12-28T12:00:00Z", "2026-12-28 12:00:00Z", 1),
            "space separator",
        ),
        (
            base.replacen("2026-12-28T12:00:00Z", "2026-12-32T12:00:00Z", 1),
            "day 32",
        ),
        (
            base.replacen("2026-12-28T12:00:00Z", "1798459200", 1),
            "unix seconds",
        ),
        (
            base.replacen("\"2026-12-28T12:00:00Z\"", "1798459200", 1),
            "number exp",
        ),
        (
            base.replacen("\"super_admin\":true", "\"super_admin\":false", 1),
            "super_admin false",
        ),
        (
            base.replacen("{\"super_admin\":true}", "{\"grants\":[]}", 1),
            "no grants",
        ),
        (
            base.replacen(",\"perm\":{\"super_admin\":true}", "", 1),
            "no perm",
        ),
        (base.replacen(&id.to_string(), "nope", 1), "bad jti"),
        ("[]".to_string(), "array"),
        ("null".to_string(), "null"),
        ("\"claims\"".to_string(), "string"),
        ("not json at all".to_string(), "not json"),
        (format!("{base}{base}"), "two objects"),
    ];
    for (payload, why) in edits {
        assert_eq!(
            f.code(&f.sign_raw(payload.as_bytes(), &f.footer())),
            "malformed",
            "{why}"
        );
    }
    let wrong_iss = base.replacen("\"iss\":\"tessera\"", "\"iss\":\"someone-else\"", 1);
    assert_eq!(
        f.code(&f.sign_raw(wrong_iss.as_bytes(), &f.footer())),
        "wrong_issuer"
    );
}

#[test]
fn time_claims_are_checked_against_the_clock_with_leeway() {
    let f = fixture();
    let exp = now() + Duration::days(7);
    let token = f.issue(Uuid::new_v4(), 1, Some(exp));
    f.clock.set(exp + Duration::seconds(30));
    assert_eq!(f.code(&token), "ok", "within the 30 s leeway");
    f.clock.set(exp + Duration::seconds(31));
    assert_eq!(f.code(&token), "expired");

    // Issued in the future (a skewed issuer clock): refused until the leeway covers it.
    f.clock.set(now() + Duration::minutes(10));
    let future = f.issue(Uuid::new_v4(), 1, None);
    f.clock
        .set(now() + Duration::minutes(10) - Duration::seconds(31));
    assert_eq!(f.code(&future), "not_yet_valid");
    f.clock
        .set(now() + Duration::minutes(10) - Duration::seconds(30));
    assert_eq!(f.code(&future), "ok");

    // A token without expiry stays valid.
    f.clock.set(now() + Duration::days(3650));
    assert_eq!(f.code(&future), "ok");
}

#[test]
fn expiry_is_rechecked_for_a_cached_token() {
    let f = fixture();
    let token = f.issue(Uuid::new_v4(), 1, Some(now() + Duration::hours(1)));
    assert_eq!(f.code(&token), "ok");
    assert_eq!(f.code(&token), "ok"); // now in the cache
    f.clock.advance(Duration::hours(2));
    assert_eq!(f.code(&token), "expired");
}

#[test]
fn nbf_in_the_future_is_not_yet_valid() {
    let f = fixture();
    let payload = format!(
        r#"{{"iss":"tessera","jti":"{}","ver":1,"sub":"api-token:x","iat":"2026-11-28T12:00:00Z","nbf":"2026-11-29T12:00:00Z","perm":{{"super_admin":true}}}}"#,
        Uuid::new_v4()
    );
    assert_eq!(
        f.code(&f.sign_raw(payload.as_bytes(), &f.footer())),
        "not_yet_valid"
    );
}

#[test]
fn a_wrong_issuer_is_refused_by_a_verifier_that_expects_another() {
    let f = fixture();
    let strict = Verifier::new(f.ring.clone())
        .with_clock(f.clock.clone())
        .with_issuer("other");
    assert_eq!(
        strict.verify(&f.token()).unwrap_err().code(),
        "wrong_issuer"
    );
}

fn deploy() -> Access<'static> {
    Access::DevtronApp {
        role: DevtronRole::Trigger,
        project: "payments",
        environment: "prod",
        app: "api",
    }
}

#[test]
fn the_token_state_deletes_supersedes_and_repermissions_even_cached_tokens() {
    let f = fixture();
    let id = Uuid::new_v4();
    let v1 = f.issue(id, 1, Some(now() + Duration::days(1)));
    f.verifier.verify(&v1).unwrap();
    let verified = f.verifier.verify(&v1).unwrap(); // now in the cache
    assert!(verified.allows(&deploy()));
    assert!(!verified.permissions_updated());

    // Update: view only. Same token string, new permissions.
    let view_only: Permissions = serde_json::from_str(
        r#"{"grants":[{"resource":"devtron-app","role":"view","project":"payments","environments":["prod"],"apps":["*"]}]}"#,
    )
    .unwrap();
    f.state
        .apply(
            1,
            id,
            Some(StateEntry {
                perm: Some(Arc::new(view_only.clone())),
                ..Default::default()
            }),
        )
        .unwrap();
    let verified = f.verifier.verify(&v1).unwrap();
    assert!(verified.permissions_updated());
    assert_eq!(verified.permissions(), &view_only);
    assert!(!verified.allows(&deploy()));

    // Regenerate: version 2 works, version 1 is superseded.
    let v2 = f.issue(id, 2, Some(now() + Duration::days(1)));
    f.state
        .apply(
            2,
            id,
            Some(StateEntry {
                min_ver: 2,
                ..Default::default()
            }),
        )
        .unwrap();
    assert_eq!(f.code(&v1), "superseded");
    let verified = f.verifier.verify(&v2).unwrap();
    assert_eq!(verified.version(), 2);
    assert!(verified.allows(&deploy()));

    // Delete: every version stops.
    f.state
        .apply(
            3,
            id,
            Some(StateEntry {
                deleted: true,
                min_ver: 2,
                ..Default::default()
            }),
        )
        .unwrap();
    assert_eq!(f.code(&v1), "revoked");
    assert_eq!(f.code(&v2), "revoked");
}

#[test]
fn stale_token_state_fails_closed() {
    let f = fixture();
    let state = Arc::new(MemoryState::with_bound(f.clock.clone(), Some(30)));
    let verifier = Verifier::new(f.ring.clone())
        .with_clock(f.clock.clone())
        .with_state(state.clone());
    let token = f.issue(Uuid::new_v4(), 1, None);
    assert!(verifier.verify(&token).is_ok());
    f.clock.advance(Duration::seconds(31));
    assert_eq!(verifier.verify(&token).unwrap_err().code(), "stale_state");
    state.heard_now();
    assert!(verifier.verify(&token).is_ok());
}

#[test]
fn the_issuer_refuses_a_token_over_four_kibibytes() {
    let f = fixture();
    let grants: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"resource":"chart-group","role":"view","groups":["{}-{i}"]}}"#,
                "g".repeat(100)
            )
        })
        .collect();
    let perm: Permissions =
        serde_json::from_str(&format!(r#"{{"grants":[{}]}}"#, grants.join(","))).unwrap();
    let err = f
        .issuer
        .issue(&TokenSpec {
            id: Uuid::new_v4(),
            version: 1,
            name: "big",
            expires_at: None,
            permissions: &perm,
            allowed_cidrs: &Default::default(),
        })
        .unwrap_err();
    assert!(err.to_string().contains("4096-byte limit"), "{err}");
}

#[test]
fn every_refusal_carries_a_documented_reason_code() {
    let codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [
            "malformed",
            "unknown_key",
            "bad_signature",
            "expired",
            "not_yet_valid",
            "wrong_issuer",
            "revoked",
            "superseded",
            "stale_state"
        ]
    );
}

#[test]
fn random_garbage_never_panics() {
    let f = fixture();
    let token = f.token();
    // A deterministic xorshift stream of mutations: splices, truncations, random bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let mut bytes = token.clone().into_bytes();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[at] = next() as u8,
                1 => bytes.truncate(at.max(1)),
                2 => bytes.insert(at, next() as u8),
                _ => {
                    bytes.remove(at);
                }
            }
            if bytes.is_empty() {
                bytes.push(b'v');
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if text != token {
            assert_ne!(f.code(&text), "ok", "{text}");
        }
    }
}
