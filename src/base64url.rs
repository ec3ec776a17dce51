//! Strict base64url, as PASETO and PASERK write it: no padding, no non-zero trailing bits, no
//! foreign characters. (`base64-simd`: strict, and about three times faster than the `base64`
//! crate on a token.) Its own module so that the wire format and the key codecs share it
//! without needing each other.

use base64_simd::URL_SAFE_NO_PAD;

/// The text is not strict base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidBase64;

/// Decode strict base64url.
pub fn decode(text: &str) -> Result<Vec<u8>, InvalidBase64> {
    URL_SAFE_NO_PAD
        .decode_to_vec(text)
        .map_err(|_| InvalidBase64)
}

/// Encode base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// The length of the unpadded base64url of `n` bytes.
pub fn encoded_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// Encode base64url without padding into `out`, which must be [`encoded_len`] bytes long;
/// the text written. For secrets, which must not pass through a growing buffer.
pub fn encode_into<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a str {
    let written = URL_SAFE_NO_PAD.encode(bytes, base64_simd::Out::from_slice(out));
    // base64url is ASCII.
    std::str::from_utf8(written).unwrap_or_default()
}
