//! Ed25519 signature checks against precomputed tables of each key's multiples: the verdict of
//! `ed25519-dalek`'s `verify_strict`, for fewer curve operations.
//!
//! `verify_strict` computes `[s]B - [k]A` in one pass of about 253 point doublings shared by both
//! scalars. A verifier holds few keys for a long time, so each key gets a table of its
//! multiples `j·2^(W·i)·(-A)`, and the base point one of its own: a check is then one addition
//! per nonzero signed digit of `s` and `k` (about `2·253/W`) and no doublings. Only
//! `curve25519-dalek`'s public group operations are used; there is no field arithmetic here.
//!
//! # Same verdict as `verify_strict`
//! `verify_strict` accepts exactly when `s` is canonical, `R`'s bytes decompress to a point not
//! of small order, `A` is not of small order, and `[s]B - [k]A` compresses to `R`'s bytes, with
//! `k = SHA-512(R ‖ A ‖ M) mod ℓ` over the key's own bytes. [`TabledKey::verify`] checks the same
//! scalar and key conditions and computes the same point `P`; it accepts when `P` compresses to
//! `R`'s bytes and `P` is not of small order. When `P` compresses to `R`'s bytes, those bytes
//! are `P`'s canonical encoding and decompress to `P`, so the conditions on `R` are conditions
//! on `P`, and `R`'s own decompression (a square root) is not needed. The unit tests below and
//! the `strict` fuzz target hold the two to the same verdict.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity as _;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha512};
use std::sync::LazyLock;

/// Bits per signed digit. Each table holds `POSITIONS·2^(W-1)` points of 160 bytes (215 KiB at
/// 6) and a check makes about `2·253/W` additions. In `benches/verify.rs`, 6, 7 and 8 measured
/// within noise of each other; 6 has the smallest tables (the base point's and one key's fit
/// in the 512 KiB L2 cache per core of the machine it was measured on).
const W: usize = 6;
/// Table entries per digit position: the multiples `1..=HALF` (a digit's sign is a negation).
const HALF: usize = 1 << (W - 1);
/// Digit positions for a reduced scalar (below ℓ < 2^253).
const POSITIONS: usize = 253usize.div_ceil(W);
// The top position's bits plus a carry stay below HALF, so no carry leaves the last position.
const _: () = assert!(253 - (POSITIONS - 1) * W <= W - 2);

/// Multiples `j·2^(W·i)·P` of one point `P`, for `i < POSITIONS` and `1 <= j <= HALF`.
struct Comb(Box<[EdwardsPoint]>);

impl Comb {
    fn new(point: &EdwardsPoint) -> Self {
        let mut table = Vec::with_capacity(POSITIONS * HALF);
        let mut base = *point;
        for _ in 0..POSITIONS {
            let mut multiple = base;
            for _ in 0..HALF {
                table.push(multiple);
                multiple += base;
            }
            // 2^W·base = HALF·base + HALF·base, the last entry doubled.
            let last = table[table.len() - 1];
            base = last + last;
        }
        Self(table.into_boxed_slice())
    }

    /// `[scalar]P`, in variable time: every input here is public.
    fn mul(&self, scalar: &Scalar) -> EdwardsPoint {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(scalar.as_bytes().chunks_exact(8)) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(word);
        }
        let mut sum = EdwardsPoint::identity();
        let mut carry = 0;
        for (i, row) in self.0.chunks_exact(HALF).enumerate() {
            // Signed digits in [-HALF, HALF): a digit of HALF or more borrows 2^W from the next.
            let digit = window(&limbs, i * W) + carry;
            if digit < HALF as u64 {
                carry = 0;
                if digit > 0 {
                    sum += row[digit as usize - 1];
                }
            } else {
                carry = 1;
                let magnitude = (1 << W) - digit;
                if magnitude > 0 {
                    sum -= row[magnitude as usize - 1];
                }
            }
        }
        // Every scalar here is reduced (below 2^253), so the top digit never borrows; a carry
        // would mean a wrong product, and a wrong verdict, in a release build too.
        assert_eq!(carry, 0, "scalars are reduced below 2^253");
        sum
    }
}

/// The `W` bits of a 256-bit little-endian number starting at bit `at`.
fn window(limbs: &[u64; 4], at: usize) -> u64 {
    let (word, shift) = (at / 64, at % 64);
    let mut bits = limbs[word] >> shift;
    if shift + W > 64 && word + 1 < limbs.len() {
        bits |= limbs[word + 1] << (64 - shift);
    }
    bits & ((1 << W) - 1)
}

/// The base point's table, shared by every key; built on first use.
static BASE: LazyLock<Comb> = LazyLock::new(|| Comb::new(&ED25519_BASEPOINT_POINT));

/// A public key with its table, ready to check signatures.
pub struct TabledKey {
    /// The key's bytes as given: the challenge hash covers them, as `verify_strict`'s does.
    bytes: [u8; 32],
    /// The multiples of `-A`; `None` for a key of small order, under which nothing verifies.
    minus_a: Option<Comb>,
}

impl TabledKey {
    /// Build the key's table: about `POSITIONS·HALF` point additions (0.3 to 0.4 ms measured
    /// on the development machine).
    pub fn new(key: &VerifyingKey) -> Self {
        Self {
            bytes: key.to_bytes(),
            minus_a: (!key.is_weak()).then(|| Comb::new(&-key.to_edwards())),
        }
    }

    /// Whether `signature` is valid for `message` under this key, with `verify_strict`'s
    /// verdict (see the module doc).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Some(minus_a) = &self.minus_a else {
            return false;
        };
        let (r, s) = signature.split_at(32);
        let mut s_bytes = [0; 32];
        s_bytes.copy_from_slice(s);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r)
                .chain_update(self.bytes)
                .chain_update(message),
        );
        let p = BASE.mul(&s) + minus_a.mul(&k);
        p.compress().as_bytes()[..] == *r && !p.is_small_order()
    }
}

impl std::fmt::Debug for TabledKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TabledKey")
            .field("small_order", &self.minus_a.is_none())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Xorshift;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use ed25519_dalek::{Signature, Signer as _, SigningKey};

    fn strict(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
        key.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }

    /// Both checks give the same verdict; returns it.
    #[track_caller]
    fn same(key: &VerifyingKey, tabled: &TabledKey, message: &[u8], signature: &[u8; 64]) -> bool {
        let ours = tabled.verify(message, signature);
        assert_eq!(
            ours,
            strict(key, message, signature),
            "verdicts differ for signature {}",
            hex::encode(signature)
        );
        ours
    }

    #[test]
    fn the_table_multiplies_like_the_curve_library() {
        let point = EdwardsPoint::mul_base(&Scalar::from(7u64));
        let comb = Comb::new(&point);
        let ell_minus_one = -Scalar::ONE;
        let two_252 = Scalar::from_bytes_mod_order({
            let mut b = [0; 32];
            b[31] = 0x10;
            b
        });
        // Digits at the borrow's edges: all ones, HALF and HALF-1 in every position.
        let mut edges = vec![Scalar::ZERO, Scalar::ONE, ell_minus_one, two_252];
        for byte in [0xff, 0x40, 0x3f, 0x80, 0x7f] {
            edges.push(Scalar::from_bytes_mod_order([byte; 32]));
        }
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            edges.push(Scalar::from_bytes_mod_order_wide(&rng.array()));
        }
        for scalar in &edges {
            assert_eq!(comb.mul(scalar), point * scalar, "scalar {scalar:?}");
        }
    }

    #[test]
    fn valid_signatures_verify_and_every_flipped_bit_fails_as_in_verify_strict() {
        let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
        for round in 0..24 {
            let signing = SigningKey::from_bytes(&rng.array());
            let key = signing.verifying_key();
            let tabled = TabledKey::new(&key);
            let mut message = vec![0; round * 97 % 1500];
            rng.fill(&mut message);
            let signature = signing.sign(&message).to_bytes();
            assert!(same(&key, &tabled, &message, &signature));
            for bit in 0..512 {
                let mut flipped = signature;
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(!same(&key, &tabled, &message, &flipped), "bit {bit}");
            }
            if let Some(first) = message.first_mut() {
                *first ^= 1;
                assert!(!same(&key, &tabled, &message, &signature));
            }
        }
    }

    #[test]
    fn a_non_canonical_s_is_refused_as_in_verify_strict() {
        let signing = SigningKey::from_bytes(&[3; 32]);
        let key = signing.verifying_key();
        let tabled = TabledKey::new(&key);
        let message = b"non-canonical s";
        let signature = signing.sign(message).to_bytes();
        // s + ℓ: the same residue, which the cofactorless equation alone would accept.
        let ell = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .unwrap();
        let mut sum = signature;
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(sum[32 + i]) + u16::from(ell[i]) + carry;
            sum[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        assert!(!same(&key, &tabled, message, &sum));
    }

    #[test]
    fn small_order_keys_and_r_values_are_refused_as_in_verify_strict() {
        let signing = SigningKey::from_bytes(&[5; 32]);
        let key = signing.verifying_key();
        let tabled = TabledKey::new(&key);
        let message = b"small order";
        let signature = signing.sign(message).to_bytes();
        for t in &EIGHT_TORSION {
            // R shifted by a torsion point: valid under the cofactored equation only.
            let r = CompressedEdwardsY(signature[..32].try_into().unwrap())
                .decompress()
                .unwrap();
            let mut shifted = signature;
            shifted[..32].copy_from_slice((r + t).compress().as_bytes());
            let unshifted = *t == EdwardsPoint::identity();
            assert_eq!(same(&key, &tabled, message, &shifted), unshifted);
            // R of small order with any s.
            let mut small_r = signature;
            small_r[..32].copy_from_slice(t.compress().as_bytes());
            assert!(!same(&key, &tabled, message, &small_r));
            // A key of small order, with a signature its cofactorless equation accepts.
            let weak = VerifyingKey::from_bytes(t.compress().as_bytes()).unwrap();
            let (s, forged) = forge_under(&weak, message);
            let r = CompressedEdwardsY(forged[..32].try_into().unwrap());
            let k = challenge(&forged, &weak, message);
            assert_eq!(
                (EdwardsPoint::mul_base(&s) - weak.to_edwards() * k).compress(),
                r
            );
            assert!(!same(&weak, &TabledKey::new(&weak), message, &forged));
        }
    }

    /// Keys with a torsion component, `A' = aB + T` for each nonzero 8-torsion point `T`: not
    /// of small order, so both checks take them. A signature made with `a` (`s = r + k·a`)
    /// satisfies the cofactorless equation exactly when `[k]T` vanishes (`k` the challenge);
    /// each `T` gets messages on both sides, and both checks give that verdict.
    #[test]
    fn keys_with_a_torsion_component_verify_exactly_when_the_torsion_vanishes() {
        let mut rng = Xorshift(0x6a09_e667_f3bc_c908);
        for t in EIGHT_TORSION
            .iter()
            .filter(|t| **t != EdwardsPoint::identity())
        {
            let a = Scalar::from_bytes_mod_order_wide(&rng.array());
            let mixed = EdwardsPoint::mul_base(&a) + t;
            let key = VerifyingKey::from_bytes(mixed.compress().as_bytes()).unwrap();
            assert!(!key.is_weak());
            let tabled = TabledKey::new(&key);
            let (mut accepted, mut refused) = (0, 0);
            for attempt in 0u32.. {
                assert!(attempt < 400, "no message on both sides for {t:?}");
                let message = attempt.to_le_bytes();
                let r = Scalar::from_bytes_mod_order_wide(&rng.array());
                let mut signature = [0; 64];
                signature[..32].copy_from_slice(EdwardsPoint::mul_base(&r).compress().as_bytes());
                let k = challenge(&signature, &key, &message);
                signature[32..].copy_from_slice((r + k * a).as_bytes());
                let vanishes = t * k == EdwardsPoint::identity();
                assert_eq!(same(&key, &tabled, &message, &signature), vanishes);
                if vanishes {
                    accepted += 1;
                } else {
                    refused += 1;
                }
                if accepted >= 2 && refused >= 2 {
                    break;
                }
            }
        }
    }

    fn challenge(signature: &[u8; 64], key: &VerifyingKey, message: &[u8]) -> Scalar {
        Scalar::from_hash(
            Sha512::new()
                .chain_update(&signature[..32])
                .chain_update(key.as_bytes())
                .chain_update(message),
        )
    }

    /// A signature `(R, s)` with `R = sB - kA` for a key `A` of small order: `kA` depends on
    /// `k` modulo 8 only, so guess it and retry until the hash agrees.
    fn forge_under(key: &VerifyingKey, message: &[u8]) -> (Scalar, [u8; 64]) {
        let a = key.to_edwards();
        for n in 1..1000u64 {
            let s = Scalar::from(n);
            for guess in 0..8u64 {
                let r = EdwardsPoint::mul_base(&s) - a * Scalar::from(guess);
                let mut signature = [0; 64];
                signature[..32].copy_from_slice(r.compress().as_bytes());
                signature[32..].copy_from_slice(s.as_bytes());
                if a * challenge(&signature, key, message) == a * Scalar::from(guess) {
                    return (s, signature);
                }
            }
        }
        unreachable!("each guess holds with probability at least 1/8")
    }

    #[test]
    fn random_signatures_and_keys_agree_with_verify_strict() {
        let mut rng = Xorshift(0xd1b5_4a32_d192_ed03);
        let signing = SigningKey::from_bytes(&[9; 32]);
        let key = signing.verifying_key();
        let tabled = TabledKey::new(&key);
        let message = b"random";
        for _ in 0..300 {
            let signature: [u8; 64] = rng.array();
            same(&key, &tabled, message, &signature);
        }
        // R replaced by a valid, unrelated point; and bytes that are not a point at all.
        let signature = signing.sign(message).to_bytes();
        for _ in 0..300 {
            let mut other = signature;
            other[..32].copy_from_slice(&rng.array::<32>());
            assert!(!same(&key, &tabled, message, &other));
        }
    }

    /// C2SP's 914 edge-case signatures (tests/vectors/ed25519/): small-order and mixed-order
    /// keys and `R`s, non-canonical encodings, residues only a cofactored check accepts. The
    /// table check gives `verify_strict`'s verdict on each; a key `VerifyingKey` refuses never
    /// reaches a table (the key ring refuses it), so only the library's verdict applies there.
    #[test]
    fn c2sp_edge_case_vectors_get_verify_strict_verdicts() {
        let vectors: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../tests/vectors/ed25519/ed25519vectors.json"))
                .unwrap();
        assert_eq!(vectors.len(), 914);
        let allowed = ["low_order_component_A", "low_order_component_R"];
        let (mut accepted, mut refused_keys) = (0, 0);
        for vector in &vectors {
            let bytes = |field: &str| hex::decode(vector[field].as_str().unwrap()).unwrap();
            let key: [u8; 32] = bytes("key").try_into().unwrap();
            let signature: [u8; 64] = bytes("sig").try_into().unwrap();
            let message = vector["msg"].as_str().unwrap().as_bytes();
            let Ok(key) = VerifyingKey::from_bytes(&key) else {
                refused_keys += 1;
                continue;
            };
            let tabled = TabledKey::new(&key);
            if same(&key, &tabled, message, &signature) {
                accepted += 1;
                // Vectors without an oddity have no flags (`null`).
                let flags = vector["flags"].as_array().cloned().unwrap_or_default();
                assert!(
                    flags.iter().all(|f| allowed.contains(&f.as_str().unwrap())),
                    "vector {} accepted with flags {flags:?}",
                    vector["number"]
                );
            }
        }
        // Accepted: only vectors whose sole oddity is a mixed-order A or R (a prime-order part
        // plus a torsion part), which no blocklist can refuse and `verify_strict` accepts.
        assert_eq!((accepted, refused_keys), (ACCEPTED, REFUSED_KEYS));
    }

    /// How many of C2SP's vectors verify, and how many keys `VerifyingKey` refuses to decode,
    /// as counted on the run that fixed them (both checks agreeing on every vector).
    const ACCEPTED: usize = 43;
    const REFUSED_KEYS: usize = 0;
}
