//! `tessera::Claims::from_json` (the canonical-layout fast path, falling back to the full
//! parser) against the full parser alone (`serde_json::from_slice::<Claims>`, the hand-written
//! `Deserialize` impl). The fast path's documented contract (src/claims/canonical.rs): whenever
//! it answers, the full parser gives the same claims; it never refuses on its own. So the two
//! calls must agree on every input: both `Ok` with equal claims, or both `Err`. Whatever is
//! accepted has valid permissions and a version of at least 1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::Claims;

fuzz_target!(|data: &[u8]| {
    let fast = Claims::from_json(data);
    let full = serde_json::from_slice::<Claims>(data);
    let show = || String::from_utf8_lossy(data).into_owned();
    match (&fast, &full) {
        (Ok(a), Ok(b)) => assert_eq!(
            a,
            b,
            "fast path and full parser read different claims from {}",
            show()
        ),
        (Err(_), Err(_)) => {}
        (Ok(a), Err(e)) => panic!(
            "FINDING: Claims::from_json accepts what the full parser refuses ({e}): {}\n-> {a:?}",
            show()
        ),
        (Err(e), Ok(b)) => panic!(
            "FINDING: Claims::from_json refuses ({e}) what the full parser accepts: {}\n-> {b:?}",
            show()
        ),
    }
    if let Ok(claims) = &fast {
        assert!(
            claims.perm.validate().is_ok(),
            "accepted invalid permissions: {}",
            show()
        );
        assert!(claims.ver >= 1, "accepted version 0: {}", show());
    }
});
