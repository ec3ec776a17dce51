//! `Verifier::verify` on untrusted strings: it never panics, every refusal carries a
//! documented reason, and it accepts only what the library's issuer made with a ring key.
//!
//! Each input is used three ways:
//! 1. as a raw string (when it is UTF-8);
//! 2. first byte < 0xC0: as edits (`VerifyOp`) of one of the fixture's issued tokens, so the
//!    fuzzer reaches past the footer and the signature check;
//! 3. first byte >= 0xC0: as a payload (and maybe a footer) that the harness signs with a
//!    fixture key, checked against a model of the documented order of checks (and the claims
//!    fast path `Claims::from_json` against the full parser on that payload).
//!
//! Every string goes through three verifiers sharing a ring, clock and state: the default
//! (cached), one with the cache off (must agree exactly), and one whose token state is stale
//! (must never accept, and must otherwise refuse for the same reason).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::claims::Claims;
use tessera::paseto::{footer_for, footer_kid};
use tessera::verifier::MAX_TOKEN_LEN;
use tessera::{Reason, VerifiedToken, VerifyError};
use tessera_fuzz::*;

type Verdict = Result<VerifiedToken, VerifyError>;

fn same(a: &Verdict, b: &Verdict) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            summary(a) == summary(b)
                && a.claims() == b.claims()
                && a.permissions() == b.permissions()
        }
        (Err(a), Err(b)) => a.reason() == b.reason(),
        _ => false,
    }
}

/// Verify with the three verifiers and check they agree.
fn verdict(fx: &VerifyFixture, token: &str) -> Verdict {
    let cached = fx.cached.verify(token);
    let uncached = fx.uncached.verify(token);
    let stale = fx.stale.verify(token);
    for r in [&cached, &uncached, &stale] {
        if let Err(e) = r {
            check_reason(e);
        }
    }
    assert!(
        same(&cached, &uncached),
        "cached and uncached verifiers disagree on {token:?}: {cached:?} vs {uncached:?}"
    );
    let stale_expected = match &cached {
        Ok(_) => Reason::StaleState,
        Err(e) if matches!(e.reason(), Reason::Revoked | Reason::Superseded) => Reason::StaleState,
        Err(e) => e.reason(),
    };
    match &stale {
        Ok(_) => panic!("a stale token state accepted {token:?}"),
        Err(e) => assert_eq!(
            e.reason(),
            stale_expected,
            "stale verifier on {token:?}: {e} (main verdict {cached:?})"
        ),
    }
    if let Ok(t) = &cached {
        let expected = if t.permissions_updated() {
            &fx.updated
        } else {
            &t.claims().perm
        };
        assert_eq!(t.permissions(), expected);
        assert!(token.len() <= MAX_TOKEN_LEN);
    }
    cached
}

/// A string the fuzzer made: if accepted, it must be one of the issued tokens, byte for byte.
fn check_untrusted(fx: &VerifyFixture, token: &str) {
    let Ok(t) = verdict(fx, token) else { return };
    let Some((payload, footer)) = lenient_decode(token) else {
        panic!("accepted {token:?}, which does not even decode leniently");
    };
    let Some(base) = fx
        .bases
        .iter()
        .find(|b| b.payload == payload && b.footer == footer)
    else {
        panic!(
            "FORGERY: accepted {token:?}: payload {:?} / footer {:?} were never issued",
            String::from_utf8_lossy(&payload),
            String::from_utf8_lossy(&footer)
        );
    };
    assert_eq!(
        Ok(summary(&t)),
        base.expect,
        "accepted {token:?} (same bytes as base {}) with the wrong verdict",
        base.name
    );
    assert_eq!(
        token, base.token,
        "MALLEABILITY: accepted a second spelling of base token {}",
        base.name
    );
}

/// What the documented order of checks says about a token the harness signed.
fn model(
    fx: &VerifyFixture,
    token: &str,
    key: usize,
    payload: &[u8],
    footer: &[u8],
) -> Result<Claims, Reason> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Reason::Malformed);
    }
    let kid = footer_kid(footer).map_err(|_| Reason::Malformed)?;
    let in_ring = fx.kids[..2]
        .iter()
        .position(|k| k == kid)
        .ok_or(Reason::UnknownKey)?;
    if in_ring != key {
        return Err(Reason::BadSignature);
    }
    let claims = Claims::from_json(payload).map_err(|_| Reason::Malformed)?;
    if claims.iss != "tessera" {
        return Err(Reason::WrongIssuer);
    }
    if let Some(exp) = claims.exp {
        if NOW > exp.timestamp().saturating_add(LEEWAY) {
            return Err(Reason::Expired);
        }
    }
    if claims.nbf.timestamp() > NOW + LEEWAY || claims.iat.timestamp() > NOW + LEEWAY {
        return Err(Reason::NotYetValid);
    }
    if claims.jti == ID_DELETED {
        return Err(Reason::Revoked);
    }
    if claims.jti == ID_REGENERATED && claims.ver < MIN_VER {
        return Err(Reason::Superseded);
    }
    Ok(claims)
}

fn check_signed(fx: &VerifyFixture, case: &SignedCase) {
    if case.payload.is_empty() {
        return; // pasetors refuses to sign an empty payload
    }
    let key = match case.selector & 3 {
        1 => 1,
        2 => 2,
        _ => 0,
    };
    let footer = case
        .footer
        .clone()
        .unwrap_or_else(|| footer_for(&fx.kids[key]));
    let token = pasetors::version4::PublicToken::sign(
        &keys().k[key].pasetors,
        &case.payload,
        (!footer.is_empty()).then_some(&footer[..]),
        None,
    )
    .expect("pasetors signs a non-empty payload");
    // The claims fast path (`Claims::from_json`) must agree with the full parser.
    let fast = Claims::from_json(&case.payload).ok();
    let full = serde_json::from_slice::<Claims>(&case.payload).ok();
    assert_eq!(
        fast,
        full,
        "Claims::from_json and the full parser disagree on {:?}",
        String::from_utf8_lossy(&case.payload)
    );
    let got = verdict(fx, &token);
    let want = model(fx, &token, key, &case.payload, &footer);
    match (&got, &want) {
        (Ok(t), Ok(claims)) => {
            assert_eq!(
                t.claims(),
                claims,
                "verified claims differ from the payload's"
            );
            assert_eq!(t.key_id(), fx.kids[key]);
            assert_eq!(t.permissions_updated(), claims.jti == ID_UPDATED);
            assert!(
                t.claims().perm.validate().is_ok(),
                "accepted invalid permissions"
            );
            assert_ne!(key, 2, "accepted a key outside the ring");
        }
        (Err(e), Err(reason)) => assert_eq!(
            e.reason(),
            *reason,
            "token {token:?}: verifier says {e}, the documented order says {reason}"
        ),
        _ => panic!(
            "token {token:?} (payload {:?}, footer {:?}): verifier {:?}, model {:?}",
            String::from_utf8_lossy(&case.payload),
            String::from_utf8_lossy(&footer),
            got.as_ref().map(summary),
            want.as_ref().map(|c| c.jti)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = verify_fixture();
    if let Ok(text) = std::str::from_utf8(data) {
        check_untrusted(fx, text);
    }
    match VerifyInput::read(data) {
        VerifyInput::Mutate { base, ops } => {
            let base = &fx.bases[base as usize % fx.bases.len()];
            let mut token = base.token.as_bytes().to_vec();
            for op in &ops {
                apply_op(&mut token, op, &fx.bases);
            }
            check_untrusted(fx, &String::from_utf8_lossy(&token));
        }
        VerifyInput::Signed(case) => check_signed(fx, &case),
    }
});
