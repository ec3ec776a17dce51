//! `tessera::paseto::footer_kid` on arbitrary bytes: it never panics, and whatever it accepts
//! is the footer our issuer writes: a JSON object of at most `MAX_FOOTER_LEN` bytes holding
//! exactly one key, `kid`, whose value is `k4.pid.` and 44 base64url characters (51 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::paseto::{footer_for, footer_kid, WireError, MAX_FOOTER_LEN};

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fuzz_target!(|data: &[u8]| {
    match footer_kid(data) {
        Ok(kid) => {
            assert!(kid.starts_with("k4.pid."), "kid {kid:?} is not a k4.pid");
            assert_eq!(kid.len(), 51, "kid {kid:?} is not 51 bytes");
            assert!(
                kid["k4.pid.".len()..].bytes().all(b64url),
                "kid {kid:?} has a non-base64url character"
            );
            assert!(
                data.len() <= MAX_FOOTER_LEN,
                "accepted a {}-byte footer",
                data.len()
            );
            let value: serde_json::Value = serde_json::from_slice(data)
                .unwrap_or_else(|e| panic!("accepted a footer that is not JSON ({e}): {data:?}"));
            let object = value
                .as_object()
                .unwrap_or_else(|| panic!("accepted a footer that is not a JSON object: {data:?}"));
            assert_eq!(
                object.len(),
                1,
                "accepted a footer with other keys: {data:?}"
            );
            assert_eq!(
                object.get("kid").and_then(|v| v.as_str()),
                Some(kid),
                "the kid returned is not the footer's kid: {data:?}"
            );
            // The issuer's spelling of the same kid reads back to it.
            assert_eq!(footer_kid(&footer_for(kid)), Ok(kid));
        }
        Err(e) => assert!(
            matches!(e, WireError::Malformed(_)),
            "unexpected error {e:?}"
        ),
    }
});
