//! `tessera::ed25519::TabledKey::verify` (per-key tables) against ed25519-dalek's
//! `verify_strict` on the same key, message and signature: the verdicts must be equal.
//!
//! Input layout (`arbitrary`): a mode byte, a key choice, a 32-byte key, a 64-byte signature
//! mask and the message.
//! - mode 0: one of four fixed keys signs the message honestly; the mask is XORed into the
//!   signature (an all-zero mask leaves it valid, which both must accept).
//! - mode 1: a fixed key, and the mask is the signature.
//! - mode 2: the input's key bytes (when they decode to a point), and the mask is the signature.
//! - mode 3: the input's key bytes, and the signature's `s` is the mask's with its `R` replaced
//!   by `[s]B` minus the key times a small multiple: the cofactorless equation holds for a key
//!   of small order when the guess is right, which both must still refuse.
//! - mode 4: a key with a torsion component, `A' = aB + T` (`a` from the key bytes, `T` the
//!   8-torsion point the choice picks), signs the message honestly with `a` (`R = rB`, `r` from
//!   the mask, `s = r + k·a`): valid exactly when `[k]T` vanishes, which both must say.
#![no_main]

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest as _, Sha512};
use tessera_fuzz::{hex, tabled_key};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    mode: u8,
    choice: u8,
    key: [u8; 32],
    mask: [u8; 64],
    message: Vec<u8>,
}

fn check(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    let strict = key
        .verify_strict(message, &Signature::from_bytes(signature))
        .is_ok();
    let ours = tabled_key(key).verify(message, signature);
    assert_eq!(
        ours,
        strict,
        "verdicts differ: key={} signature={} message={}",
        hex(key.as_bytes()),
        hex(signature),
        hex(message)
    );
    ours
}

fuzz_target!(|input: Input| {
    let signing = SigningKey::from_bytes(&[0x41 + input.choice % 4; 32]);
    match input.mode % 5 {
        0 => {
            let mut signature = signing.sign(&input.message).to_bytes();
            for (byte, mask) in signature.iter_mut().zip(input.mask) {
                *byte ^= mask;
            }
            let valid = check(&signing.verifying_key(), &input.message, &signature);
            if input.mask == [0; 64] {
                assert!(valid, "an honest signature is refused");
            }
        }
        1 => {
            check(&signing.verifying_key(), &input.message, &input.mask);
        }
        2 => {
            if let Ok(key) = VerifyingKey::from_bytes(&input.key) {
                check(&key, &input.message, &input.mask);
            }
        }
        4 => {
            let a = Scalar::from_bytes_mod_order(input.key);
            let t = EIGHT_TORSION[usize::from(input.choice % 8)];
            let mixed = EdwardsPoint::mul_base(&a) + t;
            let Ok(key) = VerifyingKey::from_bytes(mixed.compress().as_bytes()) else {
                return;
            };
            if key.is_weak() {
                return; // a = 0: the key is T itself, which mode 2 covers.
            }
            let r = Scalar::from_bytes_mod_order_wide(&input.mask);
            if r == Scalar::ZERO {
                return; // R would be the identity, of small order: modes 1 and 2 cover it.
            }
            let mut signature = [0; 64];
            signature[..32].copy_from_slice(EdwardsPoint::mul_base(&r).compress().as_bytes());
            let k = Scalar::from_hash(
                Sha512::new()
                    .chain_update(&signature[..32])
                    .chain_update(key.as_bytes())
                    .chain_update(&input.message),
            );
            signature[32..].copy_from_slice((r + k * a).as_bytes());
            let valid = check(&key, &input.message, &signature);
            assert_eq!(valid, t * k == EdwardsPoint::identity(), "torsion verdict");
        }
        _ => {
            if let Ok(key) = VerifyingKey::from_bytes(&input.key) {
                let s = Scalar::from_bytes_mod_order(input.mask[32..].try_into().unwrap());
                let guess = Scalar::from(u64::from(input.choice % 8));
                let r: EdwardsPoint = EdwardsPoint::mul_base(&s) - key.to_edwards() * guess;
                let mut signature = [0; 64];
                signature[..32].copy_from_slice(r.compress().as_bytes());
                signature[32..].copy_from_slice(s.as_bytes());
                check(&key, &input.message, &signature);
            }
        }
    }
});
