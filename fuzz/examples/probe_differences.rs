//! Prints ours (`tessera::paseto::open`) and pasetors' verdicts on one token per class of
//! deviation the differential target builds, so the classes' real behaviour is on record:
//!
//! ```text
//! cargo run --release --example probe_differences
//! ```

use ed25519_dalek::VerifyingKey;
use pasetors::keys::AsymmetricPublicKey;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use pasetors::Public;
use tessera_fuzz::*;

fn verdicts(label: &str, token: &str, key: &[u8; 32], implicit: &[u8]) {
    let ours = match VerifyingKey::from_bytes(key) {
        Ok(vk) => match tessera::keys::PublicKey::from_bytes(key)
            .map_err(|e| e.to_string())
            .and_then(|pk| tessera::paseto::open(token, &pk, implicit).map_err(|e| e.to_string()))
        {
            Ok(_) => "accepts".to_string(),
            Err(e) => format!("refuses ({e}); key weak: {}", vk.is_weak()),
        },
        Err(_) => "refuses (key is not a point)".to_string(),
    };
    let theirs = (|| {
        let pk = AsymmetricPublicKey::<V4>::from(key)?;
        let t = UntrustedToken::<Public, V4>::try_from(token)?;
        PublicToken::verify(&pk, &t, None, Some(implicit))
    })();
    let theirs = match theirs {
        Ok(_) => "accepts".to_string(),
        Err(e) => format!("refuses ({e:?})"),
    };
    println!("{label:<44} ours: {ours:<60} pasetors: {theirs}");
}

fn main() {
    let k = &keys().k[0];
    let (payload, footer, implicit) = (
        b"{\"data\":\"probe\"}".as_slice(),
        b"".as_slice(),
        b"".as_slice(),
    );
    let sign = |key: &[u8; 32], sig: &[u8; 64]| (token_string(payload, sig, footer), *key);
    let honest = raw_sign(k, &k.public, payload, footer, implicit, Nonce::Honest);

    let (t, key) = sign(&k.public, &honest);
    verdicts("honest", &t, &key, implicit);
    verdicts("honest + trailing '.'", &format!("{t}."), &key, implicit);
    for i in 0..8 {
        let small = special_key(i, &k.public, &k.public, [0; 32]);
        let forged = forge_weak(&small, payload, footer, implicit);
        let (t, key) = sign(&small, &forged);
        verdicts(
            &format!("small-order key #{i}, forged signature"),
            &t,
            &key,
            implicit,
        );
    }
    for i in 8..14u8 {
        let small = special_key(i, &k.public, &k.public, [0; 32]);
        let forged = forge_weak(&small, payload, footer, implicit);
        let (t, key) = sign(&small, &forged);
        verdicts(
            &format!("non-canonical small-order key #{i}, forged"),
            &t,
            &key,
            implicit,
        );
    }
    for i in 0..8 {
        let sig = raw_sign(
            k,
            &k.public,
            payload,
            footer,
            implicit,
            Nonce::SmallOrder(i),
        );
        let (t, key) = sign(&k.public, &sig);
        verdicts(
            &format!("R = torsion point #{i}, s = h*a"),
            &t,
            &key,
            implicit,
        );
    }
    let mut sig = honest;
    s_plus_l(&mut sig);
    let (t, key) = sign(&k.public, &sig);
    verdicts("s + L", &t, &key, implicit);
    for i in 1..8 {
        let sig = raw_sign(k, &k.public, payload, footer, implicit, Nonce::Torsion(i));
        let (t, key) = sign(&k.public, &sig);
        verdicts(
            &format!("R = rB + torsion #{i} (mixed-order R)"),
            &t,
            &key,
            implicit,
        );
    }
    for i in 1..8usize {
        let mixed = (curve25519_dalek::edwards::CompressedEdwardsY(k.public)
            .decompress()
            .unwrap()
            + curve25519_dalek::constants::EIGHT_TORSION[i])
            .compress()
            .to_bytes();
        let sig = raw_sign(k, &mixed, payload, footer, implicit, Nonce::Honest);
        let (t, key) = sign(&mixed, &sig);
        verdicts(
            &format!("key A + torsion #{i} (mixed-order key)"),
            &t,
            &key,
            implicit,
        );
    }
    let nc = noncanonical_large_order();
    verdicts("non-canonical large-order key", &t, &nc, implicit);
}
