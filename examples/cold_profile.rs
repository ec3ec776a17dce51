//! Where a cold verification's instructions go, for `valgrind --tool=callgrind`: instruction
//! counts do not drift with the machine's load the way times do.
//!
//! It issues `COUNT` distinct tokens of one shape, fills a small signature cache past its
//! capacity (so each measured call is a first sighting in a full cache, as in
//! `benches/verify.rs`), then runs `floor` (ed25519-dalek `verify_strict` of each token's
//! signed message) and `cold` (`Verifier::verify` of each token) over the same tokens.
//!
//! ```text
//! cargo build --release --example cold_profile
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/cold_profile four-grants 200
//! callgrind_annotate --inclusive=yes cg.out | grep -E 'cold_profile::(floor|cold)'
//! ```
//!
//! The two inclusive counts, each divided by `COUNT`, compare a whole cold call with
//! `verify_strict` alone. Since Tessera checks signatures against per-key tables
//! (`src/ed25519.rs`), the cold call takes fewer instructions than `verify_strict`.
//!
//! Arguments: `SHAPE [COUNT] [both|floor|cold] [CACHE]`. The third runs one side only (for a
//! sampling profiler such as `perf record -e cpu-clock`); the fourth sets the cache's capacity,
//! for example 32768 (the default of `Verifier`) to see a full-size cache's memory behaviour.
//! Each side also prints its wall time per call, which drifts like any single timing here.

use chrono::{Duration, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use std::hint::black_box;
use std::sync::Arc;
use tessera::keys::RingKey;
use tessera::{Issuer, KeyRing, Permissions, SecretKey, TokenSpec, Verifier};
use uuid::Uuid;

#[path = "../benches/common/mod.rs"]
mod common;
use common::{signed_message, unrelated_state};

/// The example of docs/permissions.md: four grants, one per resource kind (about 1 KiB as a token).
const FOUR_GRANTS: &str = include_str!("../benches/four_grants.json");

/// The signature cache's capacity unless a fourth argument gives one; filled past it first.
const CACHE: usize = 256;

fn main() {
    let mut args = std::env::args().skip(1);
    let shape = args.next().unwrap_or_else(|| "four-grants".into());
    let count: usize = args.next().map_or(200, |n| n.parse().expect("COUNT"));
    let run = args.next().unwrap_or_else(|| "both".into());
    let cache: usize = args.next().map_or(CACHE, |n| n.parse().expect("CACHE"));
    let perm = match shape.as_str() {
        "super-admin" => Permissions::SuperAdmin,
        "four-grants" => serde_json::from_str(FOUR_GRANTS).expect("grants"),
        other => panic!("unknown shape {other}: super-admin or four-grants"),
    };

    let ring = Arc::new(KeyRing::new([RingKey::with_secret(
        SecretKey::generate().expect("key"),
        Utc::now(),
    )]));
    let public = ring.signing().expect("signing key").public.clone();
    let issuer = Issuer::new(ring.clone()).expect("issuer");
    let state = unrelated_state(100_000);
    let verifier = Verifier::new(ring)
        .with_state(state)
        .with_cache_capacity(cache);
    let issue = || {
        issuer
            .issue(&TokenSpec {
                id: Uuid::new_v4(),
                version: 1,
                name: "ci-deploy-bot",
                expires_at: Some(Utc::now() + Duration::days(30)),
                permissions: &perm,
                allowed_cidrs: &Default::default(),
            })
            .expect("issue")
            .expose()
            .to_owned()
    };
    for _ in 0..cache + cache / 8 {
        let filler = issue();
        verifier.verify(&filler).expect("filler");
        verifier.verify(&filler).expect("filler");
    }
    let tokens: Vec<String> = (0..count).map(|_| issue()).collect();
    let key = VerifyingKey::from_bytes(public.as_bytes().try_into().expect("32 bytes"))
        .expect("public key");
    let messages: Vec<(Vec<u8>, Signature)> = tokens.iter().map(|t| signed_message(t)).collect();

    if run != "cold" {
        let start = std::time::Instant::now();
        floor(&key, &messages);
        eprintln!("floor: {:?} per call", start.elapsed() / count as u32);
    }
    if run != "floor" {
        let start = std::time::Instant::now();
        cold(&verifier, &tokens);
        eprintln!("cold: {:?} per call", start.elapsed() / count as u32);
    }
    eprintln!("{shape}: {count} tokens of {} bytes", tokens[0].len());
}

#[inline(never)]
fn floor(key: &VerifyingKey, messages: &[(Vec<u8>, Signature)]) {
    for (message, signature) in messages {
        key.verify_strict(black_box(message), black_box(signature))
            .expect("floor");
    }
}

#[inline(never)]
fn cold(verifier: &Verifier, tokens: &[String]) {
    for token in tokens {
        black_box(verifier.verify(black_box(token)).expect("cold"));
    }
}
