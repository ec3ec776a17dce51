//! The verification hot path against its floor and its peer, in one group so that the ratios
//! come from one run on one machine. For each token shape (`super-admin`, a small token, and
//! `four-grants`, the example of docs/permissions.md, about 1 KiB):
//! - `floor`: ed25519-dalek `verify_strict` of exactly the message the token signs (its PAE).
//!   Tessera reaches `verify_strict`'s verdict against per-key tables (`src/ed25519.rs`), with
//!   fewer curve operations, so the floor is the baseline the targets name, not a lower bound;
//! - `pasetors`: `pasetors::public::verify` of the same token string (the peer);
//! - `tessera_cold`: `Verifier::verify` of a token never seen before (a fresh one each call, made
//!   outside the timing), so every call checks the signature; a token state of 100,000 entries
//!   and a full cache;
//! - `tessera_cold_admit`: the same on a token's second sighting, when the cache admits it and
//!   evicts its oldest entry;
//! - `tessera_cached`: `Verifier::verify` of one repeated token (a cache hit: the time and state
//!   checks still run);
//! - `issue`: `Issuer::issue`.
//!
//! The `tables` group times the signature check alone: the hand-written per-key tables against
//! curve25519-dalek's own precomputation of the same sum (see [`tables`]), each paired with the
//! floor.
//!
//! The machines are shared and their speed drifts between one benchmark and the next, so the
//! `paired_*` benchmarks time each path interleaved with the floor (in blocks of calls, see
//! `paired`) and print the throughput ratio over all their calls: drift then hits both sides
//! alike. Each call is paired with the floor on the same signed message:
//! - `paired_cold`: pool token i, first sighting, against the floor on token i's own message
//!   (Ed25519 verification is variable-time: under callgrind, six messages took from 423.6k to
//!   428.9k instructions, so one fixed message would bias the ratio by up to a percent or so,
//!   differently on every run);
//! - `paired_wire`: the wire layer alone (split, base64url, footer, PAE, signature), so what
//!   `cold` adds beyond it is the claims, the cache and the state;
//! - `paired_null`: the floor against itself on other messages, the method's own check: any
//!   bias of the pairing shows as a ratio away from 1;
//! - `paired_pasetors`, `paired_cached`: one token against the floor on its message.
//!
//! The ratios also move with the binary's code layout: adding an unrelated benchmark to this
//! file moved one path's ratio by several percent. Compare ratios from one build, and read the
//! instruction counts of `examples/cold_profile.rs` for what layout does not move.
//!
//! Run: `cargo bench --bench verify` (portable build) and
//! `RUSTFLAGS="-C target-cpu=native" cargo bench --bench verify` (native build).

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ed25519_dalek::{Signature, VerifyingKey};
use pasetors::claims::ClaimsValidationRules;
use pasetors::token::UntrustedToken;
use pasetors::version4::V4;
use pasetors::Public;
use std::cell::Cell;
use std::hint::black_box;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration as Elapsed, Instant};
use tessera::keys::RingKey;
use tessera::paseto;
use tessera::{Issuer, KeyRing, Permissions, SecretKey, TokenSpec, Verifier};
use uuid::Uuid;

mod common;
use common::{signed_message, unrelated_state};

/// Tokens verified twice before measuring, to fill the cache: more than its default capacity,
/// so every shard is full and a first sighting is not admitted (a full cache is a gateway's
/// steady state; while there is room, a first sighting is admitted and pays the insertion).
const FILL_TOKENS: usize = tessera::verifier::DEFAULT_CACHE_CAPACITY + 4_000;
/// Distinct tokens for the paired cold benchmark: more than it makes calls, so none repeats.
const PAIRED_POOL: usize = 400_000;
const STATE_ENTRIES: u128 = 100_000;

/// The example of docs/permissions.md: four grants, one per resource kind (about 1 KiB as a token).
const FOUR_GRANTS: &str = include_str!("four_grants.json");

fn bench(c: &mut Criterion) {
    let ring = Arc::new(KeyRing::new([RingKey::with_secret(
        SecretKey::generate().unwrap(),
        Utc::now(),
    )]));
    let public = ring.signing().unwrap().public.clone();
    let issuer = Issuer::new(ring.clone()).unwrap();

    // A state map of 100,000 entries, none of them for the benchmark's tokens.
    let state = unrelated_state(STATE_ENTRIES);
    let verifier = Verifier::new(ring.clone()).with_state(state);
    let dalek_key = VerifyingKey::from_bytes(public.as_bytes().try_into().unwrap()).unwrap();
    let rules = ClaimsValidationRules::new();

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    for (shape, perm) in [
        ("super-admin", Permissions::SuperAdmin),
        ("four-grants", serde_json::from_str(FOUR_GRANTS).unwrap()),
    ] {
        let issue = |id: Uuid| {
            issuer
                .issue(&TokenSpec {
                    id,
                    version: 1,
                    name: "ci-deploy-bot",
                    expires_at: Some(Utc::now() + Duration::days(30)),
                    permissions: &perm,
                    allowed_cidrs: &Default::default(),
                })
                .unwrap()
        };
        let token = issue(Uuid::new_v4()).expose().to_owned();
        let fresh = || issue(Uuid::new_v4()).expose().to_owned();
        for _ in 0..FILL_TOKENS {
            let filler = fresh();
            verifier.verify(&filler).unwrap();
            verifier.verify(&filler).unwrap();
        }
        eprintln!("{shape}: token of {} bytes", token.len());

        let (message, signature) = signed_message(&token);

        group.bench_function(BenchmarkId::new("floor", shape), |b| {
            b.iter(|| floor_verify(&dalek_key, black_box(&message), black_box(&signature)))
        });
        group.bench_function(BenchmarkId::new("pasetors", shape), |b| {
            b.iter(|| {
                let untrusted =
                    UntrustedToken::<Public, V4>::try_from(black_box(token.as_str())).unwrap();
                pasetors::public::verify(public.as_pasetors(), &untrusted, &rules, None, None)
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("tessera_cold", shape), |b| {
            b.iter_batched_ref(
                fresh,
                |t| verifier.verify(black_box(t)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let seen_once = || {
            let t = fresh();
            verifier.verify(&t).unwrap();
            t
        };
        group.bench_function(BenchmarkId::new("tessera_cold_admit", shape), |b| {
            b.iter_batched_ref(
                seen_once,
                |t| verifier.verify(black_box(t)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("tessera_cached", shape), |b| {
            b.iter(|| verifier.verify(black_box(&token)).unwrap())
        });
        group.bench_function(BenchmarkId::new("issue", shape), |b| {
            b.iter_batched(Uuid::new_v4, issue, BatchSize::SmallInput)
        });

        // The same paths, each interleaved with the floor (see `paired`).
        let pool: Vec<String> = (0..PAIRED_POOL).map(|_| fresh()).collect();
        let messages: Vec<(Vec<u8>, Signature)> = pool.iter().map(|t| signed_message(t)).collect();
        let mut ratios = Vec::new();
        let mut paired_bench = |name: &str,
                                floor: &mut dyn FnMut(usize),
                                op: &mut dyn FnMut(usize),
                                warm: &dyn Fn(Range<usize>)| {
            let sums = Cell::new((Elapsed::ZERO, Elapsed::ZERO, 0));
            group.bench_function(BenchmarkId::new(format!("paired_{name}"), shape), |b| {
                b.iter_custom(|iters| paired(iters, &mut *floor, &mut *op, warm, &sums))
            });
            let (f, o, n) = sums.get();
            if n == 0 {
                return 0; // filtered out
            }
            ratios.push(format!(
                "paired {shape} {name}: {:.3} of the floor's throughput over {n} interleaved calls \
                 (floor {:.2} µs, {name} {:.2} µs per call)",
                f.as_secs_f64() / o.as_secs_f64(),
                f.as_secs_f64() * 1e6 / n as f64,
                o.as_secs_f64() * 1e6 / n as f64,
            ));
            n as usize
        };
        let floor_on = |i: usize| {
            let (message, signature) = &messages[i];
            floor_verify(&dalek_key, black_box(message), black_box(signature));
        };
        let warm_messages = |calls: Range<usize>| {
            for (message, _) in &messages[calls] {
                touch(message);
            }
        };
        let half = PAIRED_POOL / 2;
        let warm_tokens = |calls: Range<usize>| {
            warm_messages(calls.clone());
            pool[calls].iter().for_each(|t| touch(t.as_bytes()));
        };
        // Cold: the i-th call verifies pool token i once (a first sighting, a signature check),
        // and the floor verifies that token's own signed message.
        let cold_calls = paired_bench(
            "cold",
            &mut { floor_on },
            &mut |i| {
                verifier.verify(black_box(&pool[i])).unwrap();
            },
            &|calls| warm_tokens(calls),
        );
        assert!(
            cold_calls <= half,
            "the cold pool ran out: {cold_calls} calls"
        );
        // The wire layer alone, on the pool's second half (split, base64url, footer, PAE and the
        // signature check): what `cold` adds beyond it is the claims, the cache and the state.
        let key = &ring.signing().unwrap().public;
        paired_bench(
            "wire",
            &mut |i| floor_on(half + i),
            &mut |i| {
                let parts = paseto::split(black_box(&pool[half + i])).unwrap();
                let footer = paseto::decode_b64(parts.footer).unwrap();
                let mut body = paseto::Body::decode(parts.body).unwrap();
                body.verify(key, &footer, &[]).unwrap();
            },
            &|calls| warm_tokens(half + calls.start..half + calls.end),
        );
        // The method's own check: the floor against itself, on two halves of the pool. Any bias
        // of the pairing shows as a ratio away from 1.
        paired_bench(
            "null",
            &mut { floor_on },
            &mut |i| floor_on(half + i),
            &|calls| {
                warm_messages(calls.clone());
                warm_messages(half + calls.start..half + calls.end);
            },
        );
        drop(messages);
        // The peer and the cache hit: one token, paired with the floor on its own message.
        let mut floor = |_| floor_verify(&dalek_key, black_box(&message), black_box(&signature));
        paired_bench(
            "pasetors",
            &mut floor,
            &mut |_| {
                let untrusted =
                    UntrustedToken::<Public, V4>::try_from(black_box(token.as_str())).unwrap();
                pasetors::public::verify(public.as_pasetors(), &untrusted, &rules, None, None)
                    .unwrap();
            },
            &|_| {},
        );
        paired_bench(
            "cached",
            &mut floor,
            &mut |_| {
                verifier.verify(black_box(&token)).unwrap();
            },
            &|_| {},
        );
        eprintln!("{}", ratios.join("\n"));
    }
    group.finish();
}

/// The floor: `verify_strict` alone. Not inlined, like the verifier's own call, so that both
/// run the same out-of-line code rather than whatever the inliner makes of each call site
/// (measured here: inlined copies of the same function differed by up to 8%).
#[inline(never)]
fn floor_verify(key: &VerifyingKey, message: &[u8], signature: &Signature) {
    key.verify_strict(message, signature).unwrap()
}

/// Calls per block in [`paired`].
const BLOCK: u64 = 32;

/// Time `op` interleaved with `floor` in blocks of [`BLOCK`] calls, alternating which block
/// goes first; the i-th call of each side gets `i`, counted over the whole run. Returns `op`'s
/// total for criterion and adds both totals and the calls to `sums`, so the ratio over the whole
/// run can be printed.
///
/// - Blocks, not single calls: interleaved call by call, whichever of two Ed25519 verifications
///   ran second in a pair ran up to 3% faster here, and alternating the order call by call
///   slowed `Verifier::verify` by as much; a verifier does one verification after another. A
///   block of 32 (about 1.5 ms) is still short enough for drift to hit both sides alike.
/// - Before each pair of blocks, `warm` reads the inputs of both, outside the timing. A gateway
///   verifies a token its HTTP parser has just copied, so the bytes are in the CPU's caches.
///   Read cold from a pool of 200 MB, the floor's own time depended on where the pool happened
///   to sit: in one build the signature check alone, decoded from the token, measured 1.055 of
///   the floor.
fn paired(
    iters: u64,
    floor: &mut dyn FnMut(usize),
    op: &mut dyn FnMut(usize),
    warm: &dyn Fn(Range<usize>),
    sums: &Cell<(Elapsed, Elapsed, u64)>,
) -> Elapsed {
    let (mut t_floor, mut t_op) = (Elapsed::ZERO, Elapsed::ZERO);
    let block = |f: &mut dyn FnMut(usize), calls: Range<usize>, total: &mut Elapsed| {
        let start = Instant::now();
        calls.for_each(&mut *f);
        *total += start.elapsed();
    };
    let (f, o, before) = sums.get();
    let (mut done, mut floor_first) = (0, true);
    while done < iters {
        let n = BLOCK.min(iters - done);
        let first = (before + done) as usize;
        let calls = first..first + n as usize;
        warm(calls.clone());
        if floor_first {
            block(floor, calls.clone(), &mut t_floor);
            block(op, calls, &mut t_op);
        } else {
            block(op, calls.clone(), &mut t_op);
            block(floor, calls, &mut t_floor);
        }
        floor_first = !floor_first;
        done += n;
    }
    sums.set((f + t_floor, o + t_op, before + iters));
    t_op
}

/// Read every byte, so the next reads hit the CPU's caches.
fn touch(bytes: &[u8]) {
    black_box(bytes.iter().fold(0u8, |x, &b| x ^ b));
}

/// A signature check: message and signature to verdict.
type Check<'a> = dyn Fn(&[u8], &[u8; 64]) -> bool + 'a;

/// Signed messages for [`tables`].
const TABLE_MESSAGES: usize = 4096;

/// The signature check alone, three ways, each paired with the floor (`verify_strict`): the
/// hand-written per-key tables (`tessera::ed25519::TabledKey`), and two uses of
/// curve25519-dalek's own precomputation for the same `[s]B + [k](-A)`:
/// `VartimeEdwardsPrecomputation` of `B` and `-A` (variable-time, as verification may be), and
/// an `EdwardsBasepointTableRadix64` of `-A` with `mul_base` for `[s]B` (constant-time tables).
/// Each library path applies `verify_strict`'s conditions (canonical `s`, `P` not of small
/// order, compared as bytes), and every path's verdict on every message is checked first.
fn tables(c: &mut Criterion) {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::VartimeEdwardsPrecomputation;
    use curve25519_dalek::edwards::{EdwardsBasepointTableRadix64, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{BasepointTable as _, VartimePrecomputedMultiscalarMul as _};
    use ed25519_dalek::{Signer as _, SigningKey};
    use sha2::{Digest as _, Sha512};

    let signing = SigningKey::from_bytes(&[0x5a; 32]);
    let key = signing.verifying_key();
    let messages: Vec<(Vec<u8>, [u8; 64])> = (0..TABLE_MESSAGES)
        .map(|i| {
            let message = format!("message {i} of the tables benchmark").into_bytes();
            let signature = signing.sign(&message).to_bytes();
            (message, signature)
        })
        .collect();
    let tabled = tessera::ed25519::TabledKey::new(&key);
    let minus_a = -key.to_edwards();
    let precomputed = VartimeEdwardsPrecomputation::new([ED25519_BASEPOINT_POINT, minus_a]);
    let radix64 = EdwardsBasepointTableRadix64::create(&minus_a);
    // s and k as verify_strict takes them, or None for a non-canonical s.
    let scalars = |message: &[u8], signature: &[u8; 64]| -> Option<(Scalar, Scalar)> {
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(
            signature[32..].try_into().unwrap(),
        ))?;
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(&signature[..32])
                .chain_update(key.as_bytes())
                .chain_update(message),
        );
        Some((s, k))
    };
    let accept = |p: EdwardsPoint, signature: &[u8; 64]| {
        p.compress().as_bytes()[..] == signature[..32] && !p.is_small_order()
    };
    let vartime = |message: &[u8], signature: &[u8; 64]| {
        scalars(message, signature)
            .is_some_and(|(s, k)| accept(precomputed.vartime_multiscalar_mul([s, k]), signature))
    };
    let constant = |message: &[u8], signature: &[u8; 64]| {
        scalars(message, signature)
            .is_some_and(|(s, k)| accept(EdwardsPoint::mul_base(&s) + &radix64 * &k, signature))
    };
    for (message, signature) in &messages {
        let mut forged = *signature;
        forged[0] ^= 1;
        for sig in [signature, &forged] {
            let strict = key
                .verify_strict(message, &Signature::from_bytes(sig))
                .is_ok();
            assert_eq!(tabled.verify(message, sig), strict);
            assert_eq!(vartime(message, sig), strict);
            assert_eq!(constant(message, sig), strict);
        }
    }

    let mut group = c.benchmark_group("tables");
    group.throughput(Throughput::Elements(1));
    let at = |i: usize| &messages[i % TABLE_MESSAGES];
    let mut floor = |i: usize| {
        let (message, signature) = at(i);
        floor_verify(
            &key,
            black_box(message),
            &Signature::from_bytes(black_box(signature)),
        );
    };
    let mut ratios = Vec::new();
    let paths: [(&str, &Check); 3] = [
        ("tessera_tables", &|m, s| tabled.verify(m, s)),
        ("dalek_vartime_precomputation", &vartime),
        ("dalek_radix64_table", &constant),
    ];
    for (name, path) in paths {
        let sums = Cell::new((Elapsed::ZERO, Elapsed::ZERO, 0));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                paired(
                    iters,
                    &mut floor,
                    &mut |i| {
                        let (message, signature) = at(i);
                        assert!(path(black_box(message), black_box(signature)));
                    },
                    &|_| {},
                    &sums,
                )
            })
        });
        let (f, o, n) = sums.get();
        if n > 0 {
            ratios.push(format!(
                "tables {name}: {:.3} of the floor's throughput over {n} interleaved calls \
                 (floor {:.2} µs, {name} {:.2} µs per call)",
                f.as_secs_f64() / o.as_secs_f64(),
                f.as_secs_f64() * 1e6 / n as f64,
                o.as_secs_f64() * 1e6 / n as f64,
            ));
        }
    }
    group.finish();
    eprintln!("{}", ratios.join("\n"));
}

criterion_group!(benches, bench, tables);
criterion_main!(benches);
