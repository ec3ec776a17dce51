//! Setup shared by `benches/verify.rs` and `examples/cold_profile.rs`, so the profile counts
//! exactly the situation the benchmark times.

use ed25519_dalek::Signature;
use std::sync::Arc;
use tessera::{paseto, MemoryState, StateEntry};
use uuid::Uuid;

/// A token state of `entries` entries, none of them for a token the caller will issue (random
/// v4 ids never collide with these spread-out ids in practice).
pub fn unrelated_state(entries: u128) -> Arc<MemoryState> {
    let state = Arc::new(MemoryState::new());
    state.load_snapshot(
        entries as u64,
        (0..entries).map(|i| {
            let id = Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            let entry = StateEntry {
                min_ver: 2,
                ..StateEntry::default()
            };
            (id, entry)
        }),
    );
    state
}

/// The floor's input: exactly the message and signature a token carries.
pub fn signed_message(token: &str) -> (Vec<u8>, Signature) {
    let split = paseto::split(token).expect("split");
    let body = paseto::decode_b64(split.body).expect("body");
    let footer = paseto::decode_b64(split.footer).expect("footer");
    let (payload, sig) = body.split_at(body.len() - 64);
    let message = paseto::pae(&[paseto::HEADER.as_bytes(), payload, &footer, b""]);
    (message, Signature::from_slice(sig).expect("signature"))
}
