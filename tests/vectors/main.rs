//! The official PASETO v4 and PASERK k4 test vectors (copied into `tests/vectors/` with their
//! license), run through our wire layer and, for the signature checks, through `pasetors` too:
//! the two must agree on every vector.

use pasetors::keys::{AsymmetricPublicKey, AsymmetricSecretKey};
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use pasetors::Public;
use serde_json::Value;
use tessera::keys::{decode_secret_paserk, public_key_id, public_paserk, secret_paserk};
use tessera::paseto::{self, WireError};
use tessera::{PublicKey, SecretKey};

fn load(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/vectors/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap();
    file["tests"].as_array().unwrap().clone()
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(s(v, field)).unwrap()
}

/// The peer's verdict: pasetors' low-level v4.public verification.
fn pasetors_open(token: &str, key: &[u8], implicit: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let key = AsymmetricPublicKey::<V4>::from(key).ok()?;
    let untrusted = UntrustedToken::<Public, V4>::try_from(token).ok()?;
    let trusted = PublicToken::verify(&key, &untrusted, None, Some(implicit)).ok()?;
    Some((
        trusted.payload().as_bytes().to_vec(),
        trusted.footer().to_vec(),
    ))
}

#[test]
fn every_v4_public_vector_verifies_through_both_checkers() {
    let vectors: Vec<Value> = load("v4.json")
        .into_iter()
        .filter(|v| s(v, "name").starts_with("4-S-"))
        .collect();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        let name = s(v, "name");
        let key = PublicKey::from_bytes(&bytes(v, "public-key")).unwrap();
        let (token, implicit) = (s(v, "token"), s(v, "implicit-assertion").as_bytes());
        let expected = (
            s(v, "payload").as_bytes().to_vec(),
            s(v, "footer").as_bytes().to_vec(),
        );

        let ours = paseto::open(token, &key, implicit).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((ours.payload, ours.footer), expected, "{name}");
        assert_eq!(
            pasetors_open(token, key.as_bytes(), implicit),
            Some(expected.clone()),
            "{name}"
        );

        // A different implicit assertion must break the signature in both.
        let wrong = b"{\"test-vector\":\"other\"}";
        assert_eq!(
            paseto::open(token, &key, wrong).unwrap_err(),
            WireError::BadSignature,
            "{name}"
        );
        assert_eq!(pasetors_open(token, key.as_bytes(), wrong), None, "{name}");
    }
}

#[test]
fn signing_reproduces_every_v4_public_vector_byte_for_byte() {
    for v in load("v4.json")
        .iter()
        .filter(|v| s(v, "name").starts_with("4-S-"))
    {
        let secret = SecretKey::from_bytes(&bytes(v, "secret-key")).unwrap();
        assert_eq!(
            secret.public_key().as_bytes(),
            bytes(v, "public-key").as_slice(),
            "public half"
        );
        let pasetors_secret = AsymmetricSecretKey::<V4>::from(&bytes(v, "secret-key")).unwrap();
        let footer = s(v, "footer").as_bytes();
        let implicit = s(v, "implicit-assertion").as_bytes();
        let token = PublicToken::sign(
            &pasetors_secret,
            s(v, "payload").as_bytes(),
            (!footer.is_empty()).then_some(footer),
            (!implicit.is_empty()).then_some(implicit),
        )
        .unwrap();
        assert_eq!(token, s(v, "token"), "{}", s(v, "name"));
    }
}

#[test]
fn every_v4_expect_fail_vector_is_refused() {
    let fails: Vec<Value> = load("v4.json")
        .into_iter()
        .filter(|v| v["expect-fail"] == Value::Bool(true))
        .collect();
    assert_eq!(fails.len(), 5);
    for v in &fails {
        let name = s(v, "name");
        let token = s(v, "token");
        let implicit = s(v, "implicit-assertion").as_bytes();
        // Whatever key the vector offers, as raw bytes it is not a PASERK and cannot be one of
        // ours by type; try it as a public key anyway, the strongest misuse available.
        let key_hex = v["public-key"].as_str().or(v["key"].as_str()).unwrap();
        let raw = hex::decode(key_hex).unwrap();
        if let Ok(key) = PublicKey::from_bytes(&raw) {
            assert!(paseto::open(token, &key, implicit).is_err(), "{name}");
        }
        assert_eq!(pasetors_open(token, &raw, implicit), None, "{name}");
        match name {
            // v4.local with public keys, v3.local: wrong header.
            "4-F-1" | "4-F-3" => assert!(matches!(
                paseto::split(token),
                Err(WireError::Malformed("not a v4.public token"))
            )),
            // A v4.public token with a symmetric key: a `k4.local` PASERK is not a public key.
            "4-F-2" => {
                let local = format!("k4.local.{}", paseto::encode_b64(&raw));
                assert!(PublicKey::from_paserk(&local).is_err(), "{name}");
                let key = PublicKey::from_bytes(&raw);
                if let Ok(key) = key {
                    assert_eq!(
                        paseto::open(token, &key, implicit).unwrap_err(),
                        WireError::BadSignature
                    );
                }
            }
            // Non-zero trailing bits, padding: our base64url decoder refuses the body itself.
            "4-F-4" | "4-F-5" => {
                let body = token.splitn(3, '.').nth(2).unwrap();
                let body = body.split('.').next().unwrap();
                assert!(paseto::decode_b64(body).is_err(), "{name}");
                let as_public = token.replacen("v4.local.", "v4.public.", 1);
                let key = PublicKey::from_bytes(&[7; 32]);
                if let Ok(key) = key {
                    assert!(matches!(
                        paseto::open(&as_public, &key, implicit),
                        Err(WireError::Malformed(_))
                    ));
                }
            }
            other => panic!("unexpected expect-fail vector {other}"),
        }
    }
}

#[test]
fn paserk_k4_public_vectors() {
    for v in load("PASERK/k4.public.json") {
        let name = s(&v, "name");
        let raw = hex::decode(s(&v, "key")).unwrap();
        if v["expect-fail"] == Value::Bool(true) {
            assert!(public_paserk(&raw).is_err(), "{name}");
            assert!(PublicKey::from_bytes(&raw).is_err(), "{name}");
            let paserk = format!("k4.public.{}", paseto::encode_b64(&raw));
            assert!(PublicKey::from_paserk(&paserk).is_err(), "{name}");
            continue;
        }
        assert_eq!(public_paserk(&raw).unwrap(), s(&v, "paserk"), "{name}");
        // The key type also asks for a curve point; where the bytes are one, it agrees.
        if let Ok(key) = PublicKey::from_paserk(s(&v, "paserk")) {
            assert_eq!(key.to_paserk(), s(&v, "paserk"), "{name}");
            assert_eq!(key.as_bytes(), raw.as_slice(), "{name}");
        }
    }
}

#[test]
fn paserk_k4_secret_vectors() {
    for v in load("PASERK/k4.secret.json") {
        let name = s(&v, "name");
        let raw = hex::decode(s(&v, "key")).unwrap();
        if v["expect-fail"] == Value::Bool(true) {
            assert!(secret_paserk(&raw).is_err(), "{name}");
            assert!(SecretKey::from_bytes(&raw).is_err(), "{name}");
            continue;
        }
        assert_eq!(
            secret_paserk(&raw).unwrap().as_str(),
            s(&v, "paserk"),
            "{name}"
        );
        assert_eq!(
            decode_secret_paserk(s(&v, "paserk")).unwrap().as_slice(),
            raw.as_slice()
        );
        if raw[..32].iter().all(|&b| b == 0) {
            // The codec reads it; the key type refuses a seed everyone knows.
            assert!(SecretKey::from_paserk(s(&v, "paserk")).is_err(), "{name}");
            continue;
        }
        let parsed = SecretKey::from_paserk(s(&v, "paserk")).unwrap();
        assert_eq!(parsed.to_paserk().as_str(), s(&v, "paserk"), "{name}");
        assert_eq!(
            parsed.public_key().as_bytes(),
            bytes(&v, "public-key").as_slice(),
            "{name}"
        );
    }
}

#[test]
fn paserk_k4_pid_vectors() {
    for v in load("PASERK/k4.pid.json") {
        let name = s(&v, "name");
        let raw = hex::decode(s(&v, "key")).unwrap();
        if v["expect-fail"] == Value::Bool(true) {
            assert!(public_key_id(&raw).is_err(), "{name}");
            assert!(PublicKey::from_bytes(&raw).is_err(), "{name}");
            continue;
        }
        assert_eq!(
            public_key_id(&raw).unwrap().as_str(),
            s(&v, "paserk"),
            "{name}"
        );
        if let Ok(key) = PublicKey::from_bytes(&raw) {
            assert_eq!(key.id().as_str(), s(&v, "paserk"), "{name}");
        }
    }
}

#[test]
fn paserk_k4_sid_vectors() {
    for v in load("PASERK/k4.sid.json") {
        let name = s(&v, "name");
        let raw = hex::decode(s(&v, "key")).unwrap();
        if v["expect-fail"] == Value::Bool(true) {
            assert!(SecretKey::from_bytes(&raw).is_err(), "{name}");
            continue;
        }
        match SecretKey::from_bytes(&raw) {
            Ok(key) => assert_eq!(key.id().as_str(), s(&v, "paserk"), "{name}"),
            Err(_) => assert!(raw[..32].iter().all(|&b| b == 0), "{name}"),
        }
    }
}

#[test]
fn a_secret_key_whose_public_half_does_not_match_is_refused() {
    let v = &load("PASERK/k4.secret.json")[0];
    let mut raw = hex::decode(s(v, "key")).unwrap();
    raw[40] ^= 1;
    assert!(SecretKey::from_bytes(&raw).is_err());
}
