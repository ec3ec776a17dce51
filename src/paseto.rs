//! The v4.public wire format, strictly: header, base64url, footer bounds, PAE and the Ed25519
//! signature check.
//!
//! This is the one place that touches token bytes before they are trusted. Signing stays with
//! `pasetors`; verification checks signatures over our own PAE against the key's precomputed
//! table ([`crate::ed25519`], `verify_strict`'s verdict) because it is faster, and the official
//! vectors and a differential fuzz target hold it to `pasetors`' verdicts. Everything here
//! fails closed and never panics on input.
//!
//! What this layer does *not* check: claims, times, issuer, key ids against a key ring. Those
//! belong to [`crate::verifier`].

use crate::base64url;
use crate::keys::PublicKey;
use base64_simd::URL_SAFE_NO_PAD;

/// The exact header of every token this crate accepts.
pub const HEADER: &str = "v4.public.";

/// Length of an Ed25519 signature.
const SIG_LEN: usize = 64;

/// Why a token failed at the wire layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The token is not a well-formed v4.public token; the text says which rule it broke.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The signature does not verify under the given key.
    #[error("signature does not verify")]
    BadSignature,
}

/// A token split into its still-encoded parts.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    /// Base64url of payload || signature.
    pub body: &'a str,
    /// Base64url of the footer; empty when the token has none.
    pub footer: &'a str,
}

/// Check the header and split the token. A trailing `.` with an empty footer is refused: a
/// token has one spelling.
pub fn split(token: &str) -> Result<Split<'_>, WireError> {
    let rest = token
        .strip_prefix(HEADER)
        .ok_or(WireError::Malformed("not a v4.public token"))?;
    // `memchr` rather than `str::split_once`: the body is most of a 1 KiB token, and this
    // runs on every first sighting.
    let (body, footer) = match memchr::memchr(b'.', rest.as_bytes()) {
        None => (rest, ""),
        Some(at) if at + 1 == rest.len() => {
            return Err(WireError::Malformed("empty footer segment"))
        }
        Some(at) => (&rest[..at], &rest[at + 1..]),
    };
    if memchr::memchr(b'.', footer.as_bytes()).is_some() {
        return Err(WireError::Malformed("too many segments"));
    }
    Ok(Split { body, footer })
}

/// Decode strict base64url (see [`crate::base64url`]).
pub fn decode_b64(text: &str) -> Result<Vec<u8>, WireError> {
    base64url::decode(text).map_err(|_| WireError::Malformed("invalid base64url"))
}

/// Encode base64url without padding.
pub fn encode_b64(bytes: &[u8]) -> String {
    base64url::encode(bytes)
}

/// Pre-authentication encoding (PASETO `PAE`): the piece count, then each piece's length and
/// bytes, every length a little-endian u64 with the top bit clear.
pub fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    let total: usize = 8 + pieces.iter().map(|p| 8 + p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&le64(pieces.len()));
    for piece in pieces {
        out.extend_from_slice(&le64(piece.len()));
        out.extend_from_slice(piece);
    }
    out
}

fn le64(n: usize) -> [u8; 8] {
    // usize fits in u64 on every supported target; the mask is the spec's "clear the top bit".
    ((n as u64) & (u64::MAX >> 1)).to_le_bytes()
}

/// A decoded body, laid out as the message the signature covers.
///
/// The payload is decoded straight into a PAE buffer (piece count, header, payload length,
/// payload), so checking the signature appends the footer and implicit assertion instead of
/// copying the payload again: one allocation for the whole check.
#[derive(Debug, Clone)]
pub struct Body {
    pae: Vec<u8>,
    payload_start: usize,
    payload_end: usize,
    signature: [u8; SIG_LEN],
}

impl Body {
    /// Decode a body and check it can hold a non-empty payload and a signature.
    pub fn decode(body_b64: &str) -> Result<Self, WireError> {
        let decoded_max = body_b64.len() / 4 * 3 + 3;
        let mut pae = Vec::with_capacity(5 * 8 + HEADER.len() + decoded_max + MAX_FOOTER_LEN);
        pae.extend_from_slice(&le64(4));
        pae.extend_from_slice(&le64(HEADER.len()));
        pae.extend_from_slice(HEADER.as_bytes());
        let length_at = pae.len();
        pae.extend_from_slice(&[0; 8]);
        let payload_start = pae.len();
        URL_SAFE_NO_PAD
            .decode_append(body_b64, &mut pae)
            .map_err(|_| WireError::Malformed("invalid base64url"))?;
        let decoded = pae.len() - payload_start;
        if decoded <= SIG_LEN {
            return Err(WireError::Malformed("body too short"));
        }
        let payload_end = pae.len() - SIG_LEN;
        let mut signature = [0u8; SIG_LEN];
        signature.copy_from_slice(&pae[payload_end..]);
        pae.truncate(payload_end);
        pae[length_at..payload_start].copy_from_slice(&le64(payload_end - payload_start));
        Ok(Self {
            pae,
            payload_start,
            payload_end,
            signature,
        })
    }

    /// The payload bytes (untrusted until [`Body::verify`] succeeds).
    pub fn payload(&self) -> &[u8] {
        &self.pae[self.payload_start..self.payload_end]
    }

    /// Check the signature over `PAE("v4.public.", payload, footer, implicit_assertion)`.
    ///
    /// The check is `verify_strict`'s: the cofactorless equation `sB = R + hA`, refusing
    /// small-order keys and `R` values and non-canonical `s`. `pasetors` (through
    /// `ed25519-compact`) refuses those too, but only asks `sB - hA - R` to be of small order,
    /// so it accepts a signature whose `R` carries a small-order component; we refuse it. Only
    /// the holder of the secret key can make one, and no honest signer does (the
    /// `differential` fuzz target).
    // Not inlined: the curve arithmetic then compiles once, the same for every caller.
    #[inline(never)]
    pub fn verify(
        &mut self,
        key: &PublicKey,
        footer: &[u8],
        implicit_assertion: &[u8],
    ) -> Result<(), WireError> {
        self.pae.extend_from_slice(&le64(footer.len()));
        self.pae.extend_from_slice(footer);
        self.pae.extend_from_slice(&le64(implicit_assertion.len()));
        self.pae.extend_from_slice(implicit_assertion);
        let valid = signature_check(key, &self.pae, &self.signature);
        self.pae.truncate(self.payload_end);
        valid.then_some(()).ok_or(WireError::BadSignature)
    }
}

/// The Ed25519 check: against the key's tables, with `verify_strict`'s verdict.
#[cfg(not(feature = "verify-strict"))]
fn signature_check(key: &PublicKey, message: &[u8], signature: &[u8; SIG_LEN]) -> bool {
    key.tabled().verify(message, signature)
}

/// The Ed25519 check, with the `verify-strict` feature: ed25519-dalek's `verify_strict` itself.
#[cfg(feature = "verify-strict")]
fn signature_check(key: &PublicKey, message: &[u8], signature: &[u8; SIG_LEN]) -> bool {
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verifying_key()
        .verify_strict(message, &signature)
        .is_ok()
}

/// A token whose signature has been checked at the wire layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The signed payload bytes.
    pub payload: Vec<u8>,
    /// The signed footer bytes (empty when none).
    pub footer: Vec<u8>,
}

/// Check the header, decode, and verify the signature of `token` under `key`: the whole PASETO
/// v4.public verification, without any claim or footer policy. The official test vectors run
/// through this function.
pub fn open(token: &str, key: &PublicKey, implicit_assertion: &[u8]) -> Result<Opened, WireError> {
    let parts = split(token)?;
    let mut body = Body::decode(parts.body)?;
    let footer = decode_b64(parts.footer)?;
    body.verify(key, &footer, implicit_assertion)?;
    Ok(Opened {
        payload: body.payload().to_vec(),
        footer,
    })
}

/// Bounds on a footer read before its signature is checked: it is attacker-controlled.
pub const MAX_FOOTER_LEN: usize = 256;
/// The most keys an untrusted footer may hold.
pub const MAX_FOOTER_KEYS: usize = 4;

/// The length of the base64url part of a `k4.pid` key id.
const PID_B64_LEN: usize = 44;

/// Read the key id from an untrusted footer, within bounds: at most [`MAX_FOOTER_LEN`] bytes, a
/// flat JSON object (no nested object or array, counted without parsing as the PASETO spec
/// suggests), at most [`MAX_FOOTER_KEYS`] keys, exactly one `kid`, and that a string of the
/// form `k4.pid.<44 base64url characters>`. Other keys are refused: our issuer writes none.
pub fn footer_kid(footer: &[u8]) -> Result<&str, WireError> {
    if footer.is_empty() {
        return Err(WireError::Malformed("missing footer with a key id"));
    }
    // Fast path: exactly the footer our issuer writes; the full check below agrees on it.
    if let Some(kid) = issued_kid(footer).filter(|kid| is_pid(kid)) {
        // `is_pid` admitted ASCII only.
        return std::str::from_utf8(kid).map_err(|_| WireError::Malformed("footer is not UTF-8"));
    }
    footer_kid_full(footer)
}

/// The key id of a footer laid out exactly as our issuer writes it, `{"kid":"…"}`, not checked
/// further: only for finding a key in a key ring, whose ids are well-formed by construction.
/// Whatever a ring does not hold goes through [`footer_kid`], which names what is wrong.
pub fn issued_kid(footer: &[u8]) -> Option<&[u8]> {
    footer.strip_prefix(b"{\"kid\":\"")?.strip_suffix(b"\"}")
}

fn footer_kid_full(footer: &[u8]) -> Result<&str, WireError> {
    if footer.len() > MAX_FOOTER_LEN {
        return Err(WireError::Malformed("footer too long"));
    }
    // Any brace or bracket past the first is refused, even inside a string: conservative, and
    // a key id never contains one.
    let nesting = footer.iter().filter(|&&b| b == b'{' || b == b'[').count();
    if nesting != 1 || footer.first() != Some(&b'{') {
        return Err(WireError::Malformed("footer is not a flat JSON object"));
    }
    let keys = footer
        .windows(2)
        .enumerate()
        .filter(|&(i, w)| w == b"\":" && (i == 0 || footer[i - 1] != b'\\'))
        .count();
    if keys > MAX_FOOTER_KEYS {
        return Err(WireError::Malformed("footer has too many keys"));
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Footer<'a> {
        #[serde(borrow)]
        kid: &'a str,
    }
    let parsed: Footer<'_> = serde_json::from_slice(footer)
        .map_err(|_| WireError::Malformed("footer is not {\"kid\": \"k4.pid...\"}"))?;
    if !is_pid(parsed.kid.as_bytes()) {
        return Err(WireError::Malformed("footer kid is not a k4.pid key id"));
    }
    Ok(parsed.kid)
}

/// `k4.pid.` followed by 44 base64url characters.
fn is_pid(text: &[u8]) -> bool {
    text.strip_prefix(b"k4.pid.").is_some_and(|id| {
        id.len() == PID_B64_LEN
            && id
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Build the footer our issuer writes: `{"kid":"k4.pid..."}`.
pub fn footer_for(kid: &str) -> Vec<u8> {
    format!("{{\"kid\":\"{kid}\"}}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_examples() {
        assert_eq!(pae(&[]), b"\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(
            pae(&[b""]),
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        );
        assert_eq!(
            pae(&[b"test"]),
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00test"
        );
    }

    #[test]
    fn split_refuses_other_headers_and_empty_footers() {
        for bad in [
            "v4.local.AAAA",
            "v3.public.AAAA",
            "v2.public.AAAA",
            "V4.public.AAAA",
            "v4.public",
            "",
        ] {
            assert!(split(bad).is_err(), "{bad}");
        }
        assert_eq!(
            split("v4.public.AAAA.").unwrap_err(),
            WireError::Malformed("empty footer segment")
        );
        assert!(split("v4.public.AAAA.BBBB.CCCC").is_err());
        let ok = split("v4.public.AAAA.BBBB").unwrap();
        assert_eq!((ok.body, ok.footer), ("AAAA", "BBBB"));
    }

    #[test]
    fn a_decoded_body_is_laid_out_as_the_signed_message() {
        let payload = b"{\"a\":1}";
        let body_b64 = encode_b64(&[&payload[..], &[9u8; 64]].concat());
        let body = Body::decode(&body_b64).unwrap();
        assert_eq!(body.payload(), payload);
        let mut expected = pae(&[HEADER.as_bytes(), payload, b"", b""]);
        expected.truncate(expected.len() - 16);
        assert_eq!(body.pae, expected);
        assert!(Body::decode(&encode_b64(&[1u8; 64])).is_err());
    }

    #[test]
    fn base64_is_strict() {
        assert!(decode_b64("AAAA").is_ok());
        assert!(decode_b64("AA==").is_err(), "padding");
        assert!(decode_b64("AB").is_err(), "non-zero trailing bits");
        assert!(decode_b64("AA+/").is_err(), "standard alphabet");
        assert!(decode_b64("A").is_err(), "impossible length");
    }

    const KID: &str = "k4.pid.S_XXxQvG4H_QqoQkpNjHFXXFDcY_ABC6ceJpsyq5DBKQ";

    #[test]
    fn footer_kid_accepts_the_issuers_footer() {
        assert_eq!(KID.len(), "k4.pid.".len() + 44);
        let footer = footer_for(KID);
        assert_eq!(footer_kid(&footer), Ok(KID));
    }

    #[test]
    fn the_footer_fast_path_agrees_with_the_full_check() {
        let good = footer_for(KID);
        let mut rng = crate::testing::Xorshift(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let x = rng.next();
            let mut footer = good.clone();
            let at = (x as usize) % footer.len();
            footer[at] = b"{}\":,k4.pid_-Aa \\"[(x >> 32) as usize % 16];
            assert_eq!(footer_kid(&footer), footer_kid_full(&footer));
        }
        assert_eq!(footer_kid(&good), footer_kid_full(&good));
    }

    #[test]
    fn footer_kid_refuses_everything_else() {
        let long = format!("{{\"kid\":\"{KID}\",\"x\":\"{}\"}}", "a".repeat(300));
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            (long, "too long"),
            (format!("{{\"kid\":{{\"a\":\"{KID}\"}}}}"), "nested"),
            (format!("{{\"kid\":[\"{KID}\"]}}"), "array"),
            ("{\"kid\":123}".into(), "number kid"),
            ("{\"kid\":null}".into(), "null kid"),
            (format!("[\"{KID}\"]"), "top-level array"),
            (
                format!("{{\"kid\":\"{KID}\",\"kid\":\"{KID}\"}}"),
                "duplicate",
            ),
            (
                format!("{{\"kid\":\"{KID}\",\"wpk\":\"x\"}}"),
                "unknown key",
            ),
            (
                "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}".into(),
                "too many keys",
            ),
            ("{\"kid\":\"k4.public.AAAA\"}".into(), "public key as kid"),
            (
                "{\"kid\":\"k4.sid.S_XXxQvG4H_QqoQkpNjHFXXFDcY_ABC6ceJpsyq5DBKQ\"}".into(),
                "sid",
            ),
            (
                "{\"kid\":\"k3.pid.S_XXxQvG4H_QqoQkpNjHFXXFDcY_ABC6ceJpsyq5DBKQ\"}".into(),
                "k3",
            ),
            ("{\"kid\":\"k4.pid.short\"}".into(), "short"),
            (
                "{\"kid\":\"k4.pid.S_XXxQvG4H_QqoQkpNjHFXXFDcY_ABC6ceJpsyq5DBK=\"}".into(),
                "bad char",
            ),
            (
                "{\"kid\":\"zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN\"}".into(),
                "not a pid",
            ),
            ("not json".into(), "not json"),
        ];
        for (footer, why) in cases {
            assert!(footer_kid(footer.as_bytes()).is_err(), "{why}");
        }
    }
}
