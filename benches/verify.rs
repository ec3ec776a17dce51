//! The verification hot path against its floor and its peer, in one group so that the ratios
//! come from one run on one machine. For each token shape (`super-admin`, a small token, and
//! `four-grants`, the DESIGN.md example, about 1 KiB):
//! - `floor`: ed25519-dalek `verify_strict` of exactly the message the token signs (its PAE);
//! - `pasetors`: `pasetors::public::verify` of the same token string (the peer);
//! - `tessera_cold`: `Verifier::verify` on distinct tokens, so every call misses the cache and
//!   checks the signature, with a token state of 100,000 entries;
//! - `tessera_cached`: `Verifier::verify` of one repeated token (a cache hit: the time and state
//!   checks still run);
//! - `issue`: `Issuer::issue`.
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
use std::hint::black_box;
use std::sync::Arc;
use tessera::keys::RingKey;
use tessera::paseto;
use tessera::{
    Issuer, KeyRing, MemoryState, Permissions, SecretKey, StateEntry, TokenSpec, Verifier,
};
use uuid::Uuid;

/// Distinct tokens cycled through by the cold benchmark: twice the default cache capacity, so
/// the first-in-first-out cache never holds the next one.
const COLD_TOKENS: usize = 20_000;
const STATE_ENTRIES: u128 = 100_000;

const FOUR_GRANTS: &str = r#"{"grants": [
  {"resource": "devtron-app", "role": "trigger", "project": "payments",
   "environments": ["prod", "staging"], "apps": ["*"]},
  {"resource": "helm-app", "role": "edit", "project": "infra",
   "environments": ["prod-cluster__monitoring"], "apps": ["grafana"]},
  {"resource": "kubernetes", "role": "view", "cluster": "prod",
   "namespaces": ["*"], "groups": ["", "apps"], "kinds": ["Deployment", "Pod"], "names": ["*"]},
  {"resource": "chart-group", "role": "view", "groups": ["*"]}
]}"#;

fn bench(c: &mut Criterion) {
    let ring = Arc::new(KeyRing::new([RingKey::with_secret(
        SecretKey::generate().unwrap(),
        Utc::now(),
    )]));
    let public = ring.signing().unwrap().public.clone();
    let issuer = Issuer::new(ring.clone()).unwrap();

    // A state map of 100,000 entries, none of them for the benchmark's tokens.
    let state = Arc::new(MemoryState::new());
    state.load_snapshot(
        STATE_ENTRIES as u64,
        (0..STATE_ENTRIES).map(|i| {
            let id = Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            let entry = StateEntry {
                min_ver: 2,
                ..StateEntry::default()
            };
            (id, entry)
        }),
    );
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
        let cold: Vec<String> = (0..COLD_TOKENS)
            .map(|_| issue(Uuid::new_v4()).expose().to_owned())
            .collect();
        eprintln!("{shape}: token of {} bytes", token.len());

        // The floor's input: exactly the message and signature the token carries.
        let split = paseto::split(&token).unwrap();
        let body = paseto::decode_b64(split.body).unwrap();
        let footer = paseto::decode_b64(split.footer).unwrap();
        let (payload, sig) = body.split_at(body.len() - 64);
        let message = paseto::pae(&[b"v4.public.", payload, &footer, b""]);
        let signature = Signature::from_slice(sig).unwrap();

        group.bench_function(BenchmarkId::new("floor", shape), |b| {
            b.iter(|| {
                dalek_key
                    .verify_strict(black_box(&message), black_box(&signature))
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("pasetors", shape), |b| {
            b.iter(|| {
                let untrusted =
                    UntrustedToken::<Public, V4>::try_from(black_box(token.as_str())).unwrap();
                pasetors::public::verify(public.as_pasetors(), &untrusted, &rules, None, None)
                    .unwrap()
            })
        });
        let mut next = 0usize;
        group.bench_function(BenchmarkId::new("tessera_cold", shape), |b| {
            b.iter(|| {
                next = (next + 1) % cold.len();
                verifier.verify(black_box(&cold[next])).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("tessera_cached", shape), |b| {
            b.iter(|| verifier.verify(black_box(&token)).unwrap())
        });
        group.bench_function(BenchmarkId::new("issue", shape), |b| {
            b.iter_batched(Uuid::new_v4, issue, BatchSize::SmallInput)
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
