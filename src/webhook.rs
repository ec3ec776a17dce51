//! Webhook signatures, as the Standard Webhooks specification defines them: a receiver checks
//! them with any of that specification's libraries.
//!
//! A secret is `whsec_` and the base64 of its key bytes. A delivery carries `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature`: `v1,` and the base64 of
//! HMAC-SHA256 over `id.timestamp.body` with the key. The id stays the same on every attempt
//! of one event, so receivers deduplicate by it.

use base64_simd::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The prefix of a secret's text.
const PREFIX: &str = "whsec_";
/// The shortest key accepted: 128 bits.
const MIN_KEY: usize = 16;
/// The longest key accepted.
const MAX_KEY: usize = 64;

/// Why a secret's text is refused. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// No `whsec_` prefix.
    #[error("a webhook secret starts with `whsec_`")]
    Prefix,
    /// The rest is not standard base64.
    #[error("a webhook secret is `whsec_` and base64 (standard alphabet, with padding)")]
    Base64,
    /// The key is too short or too long.
    #[error("a webhook secret's key is 16 to 64 bytes, not {0}")]
    Length(usize),
}

/// A webhook signing secret. Its `Debug` shows nothing of it, and its bytes are wiped on drop.
pub struct WebhookSecret {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl std::str::FromStr for WebhookSecret {
    type Err = SecretError;

    /// `whsec_` and the base64 of 16 to 64 key bytes; surrounding whitespace is ignored.
    fn from_str(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(SecretError::Prefix)?;
        let key = Zeroizing::new(
            STANDARD
                .decode_to_vec(encoded)
                .map_err(|_| SecretError::Base64)?,
        );
        if !(MIN_KEY..=MAX_KEY).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self { key })
    }
}

impl WebhookSecret {
    /// The `webhook-signature` value of `body`, sent as event `id` at `timestamp` (Unix
    /// seconds): `v1,` and the base64 of HMAC-SHA256 over `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // Any key length is valid for HMAC.
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!(
            "v1,{}",
            STANDARD.encode_to_string(mac.finalize().into_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and of its reference libraries'
    /// tests).
    #[test]
    fn the_specifications_example_signs_as_it_says() {
        let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_bad_secret_is_refused_without_showing_it() {
        assert_eq!(
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                .parse::<WebhookSecret>()
                .unwrap_err(),
            SecretError::Prefix
        );
        assert_eq!(
            "whsec_not base64!".parse::<WebhookSecret>().unwrap_err(),
            SecretError::Base64
        );
        assert_eq!(
            "whsec_c2hvcnQ=".parse::<WebhookSecret>().unwrap_err(),
            SecretError::Length(5)
        );
        let secret: WebhookSecret = " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
    }
}
