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

criterion_group!(benches, bench);
criterion_main!(benches);
