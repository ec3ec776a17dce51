//! The claims a Tessera token carries, their exact JSON form, and strict parsing.
//!
//! Issuing writes the claims in one fixed order with whole-second UTC times (`...T...Z`), so
//! the signed bytes are deterministic. Parsing is stricter than `pasetors`: the payload must
//! be a JSON object with no duplicate key at any level, times must use an uppercase `T` and,
//! when UTC is spelled as a letter, an uppercase `Z`, the permission claim must be valid, and
//! a `cidr` claim must be a non-empty list of at most 32 networks.

mod canonical;

use crate::cidr::CidrList;
use crate::permissions::Permissions;
use chrono::{DateTime, Utc};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use uuid::Uuid;

/// The prefix of the `sub` claim; the token's name follows it.
pub const SUBJECT_PREFIX: &str = "api-token:";

/// The payload of a Tessera token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// Issuer (`iss`).
    pub iss: String,
    /// Token id (`jti`): stable across regenerations and updates.
    pub jti: Uuid,
    /// Token version (`ver`): starts at 1, bumped by every regeneration.
    pub ver: u32,
    /// Subject (`sub`): `api-token:<name>`.
    pub sub: String,
    /// Issued at (`iat`).
    #[serde(serialize_with = "write_time")]
    pub iat: DateTime<Utc>,
    /// Not before (`nbf`).
    #[serde(serialize_with = "write_time")]
    pub nbf: DateTime<Utc>,
    /// Expiry (`exp`); `None` for a token that never expires.
    #[serde(
        serialize_with = "write_opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<DateTime<Utc>>,
    /// Permissions as signed (`perm`). The token state may replace them; see
    /// [`crate::VerifiedToken::permissions`].
    pub perm: Permissions,
    /// The networks the token may be used from (`cidr`), as signed; absent for a token usable
    /// from anywhere. The token state may replace them; see
    /// [`crate::VerifiedToken::allowed_cidrs`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr: Option<CidrList>,
}

impl Claims {
    /// The token's name: the subject without its `api-token:` prefix.
    pub fn name(&self) -> &str {
        self.sub.strip_prefix(SUBJECT_PREFIX).unwrap_or(&self.sub)
    }

    /// The exact payload bytes the issuer signs.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("claims always serialize")
    }

    /// Parse a payload strictly (see the module docs). The error says which rule broke.
    ///
    /// A payload in exactly the issuer's layout is read by a fast path; anything else goes to
    /// the full parser, which decides. Both give the same answer wherever the fast one answers.
    pub fn from_json(payload: &[u8]) -> Result<Self, serde_json::Error> {
        match canonical::parse(payload) {
            Some(claims) => Ok(claims),
            None => serde_json::from_slice(payload),
        }
    }
}

/// Format a time as PASETO wants it: RFC 3339, whole seconds, `Z`.
pub fn format_time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parse an RFC 3339 time strictly: an uppercase `T` separator, and an uppercase `Z` if UTC is
/// spelled as a letter (an offset such as `+00:00` is accepted, as the spec allows).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, &'static str> {
    let bytes = text.as_bytes();
    if bytes.get(10) != Some(&b'T') {
        return Err("time must be RFC 3339 with an uppercase 'T'");
    }
    if bytes.last() == Some(&b'z') {
        return Err("time must end with an uppercase 'Z' or an offset");
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| "time is not RFC 3339")
}

fn write_time<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(at))
}

fn write_opt_time<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => write_time(at, s),
        None => s.serialize_none(),
    }
}

/// A time claim read with [`parse_time`].
struct Time(DateTime<Utc>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_time(&text).map(Time).map_err(de::Error::custom)
    }
}

// Hand-written so that a repeated key is refused even when it is one we do not know: serde's
// derive refuses repeated known fields but silently skips unknown ones.
impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ClaimsVisitor)
    }
}

/// At most this many claims we do not know; more is not a token we issued.
const MAX_UNKNOWN_CLAIMS: usize = 16;

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of token claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        fn once<T, E: de::Error>(
            slot: &mut Option<T>,
            value: T,
            name: &'static str,
        ) -> Result<(), E> {
            if slot.replace(value).is_some() {
                return Err(E::duplicate_field(name));
            }
            Ok(())
        }
        let (mut iss, mut jti, mut ver, mut sub) = (None, None, None, None);
        let (mut iat, mut nbf, mut exp, mut perm) = (None, None, None, None);
        let mut cidr: Option<CidrList> = None;
        let mut unknown: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "iss" => once(&mut iss, map.next_value::<String>()?, "iss")?,
                "jti" => once(&mut jti, map.next_value::<Uuid>()?, "jti")?,
                "ver" => once(&mut ver, map.next_value::<u32>()?, "ver")?,
                "sub" => once(&mut sub, map.next_value::<String>()?, "sub")?,
                "iat" => once(&mut iat, map.next_value::<Time>()?.0, "iat")?,
                "nbf" => once(&mut nbf, map.next_value::<Time>()?.0, "nbf")?,
                "exp" => once(&mut exp, map.next_value::<Time>()?.0, "exp")?,
                "perm" => once(&mut perm, map.next_value::<Permissions>()?, "perm")?,
                "cidr" => {
                    let list = map.next_value::<CidrList>()?;
                    if list.is_empty() {
                        // The issuer leaves the claim out instead.
                        return Err(de::Error::custom("the cidr claim is empty"));
                    }
                    once(&mut cidr, list, "cidr")?
                }
                other => {
                    if unknown.iter().any(|k| k == other) {
                        return Err(de::Error::custom(format_args!("duplicate claim `{other}`")));
                    }
                    if unknown.len() == MAX_UNKNOWN_CLAIMS {
                        return Err(de::Error::custom("too many unknown claims"));
                    }
                    unknown.push(other.to_owned());
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let ver = ver.ok_or_else(|| de::Error::missing_field("ver"))?;
        if ver == 0 {
            return Err(de::Error::custom("token version starts at 1"));
        }
        Ok(Claims {
            iss: iss.ok_or_else(|| de::Error::missing_field("iss"))?,
            jti: jti.ok_or_else(|| de::Error::missing_field("jti"))?,
            ver,
            sub: sub.ok_or_else(|| de::Error::missing_field("sub"))?,
            iat: iat.ok_or_else(|| de::Error::missing_field("iat"))?,
            nbf: nbf.ok_or_else(|| de::Error::missing_field("nbf"))?,
            exp,
            perm: perm.ok_or_else(|| de::Error::missing_field("perm"))?,
            cidr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Claims {
        Claims {
            iss: "tessera".into(),
            jti: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            ver: 2,
            sub: "api-token:ci-bot".into(),
            iat: parse_time("2026-11-28T01:02:03Z").unwrap(),
            nbf: parse_time("2026-11-28T01:02:03Z").unwrap(),
            exp: Some(parse_time("2026-12-28T01:02:03Z").unwrap()),
            perm: Permissions::SuperAdmin,
            cidr: None,
        }
    }

    #[test]
    fn claims_serialize_in_a_fixed_order_with_whole_second_z_times() {
        let json = String::from_utf8(sample().to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"iss":"tessera","jti":"01234567-89ab-cdef-0123-456789abcdef","ver":2,"sub":"api-token:ci-bot","iat":"2026-11-28T01:02:03Z","nbf":"2026-11-28T01:02:03Z","exp":"2026-12-28T01:02:03Z","perm":{"super_admin":true}}"#
        );
        assert_eq!(Claims::from_json(json.as_bytes()).unwrap(), sample());
        assert_eq!(sample().name(), "ci-bot");
    }

    #[test]
    fn a_token_without_expiry_omits_exp() {
        let claims = Claims {
            exp: None,
            ..sample()
        };
        let json = String::from_utf8(claims.to_json()).unwrap();
        assert!(!json.contains("exp"));
        assert_eq!(Claims::from_json(json.as_bytes()).unwrap(), claims);
    }

    fn with(json: &str, from: &str, to: &str) -> String {
        assert!(json.contains(from), "{from}");
        json.replacen(from, to, 1)
    }

    #[test]
    fn strict_parsing_refuses_what_pasetors_lets_through() {
        let good = String::from_utf8(sample().to_json()).unwrap();
        let cases = [
            (
                with(&good, "\"ver\":2", "\"ver\":2,\"ver\":3"),
                "duplicate known",
            ),
            (
                with(&good, "\"ver\":2", "\"ver\":2,\"x\":1,\"x\":2"),
                "duplicate unknown",
            ),
            (
                with(
                    &good,
                    "\"super_admin\":true",
                    "\"super_admin\":true,\"super_admin\":true",
                ),
                "duplicate nested",
            ),
            (
                with(&good, "2026-11-28T01:02:03Z", "2026-11-28t01:02:03Z"),
                "lowercase t",
            ),
            (
                with(&good, "2026-11-28T01:02:03Z", "2026-11-28T01:02:03z"),
                "lowercase z",
            ),
            (
                with(&good, "2026-11-28T01:02:03Z", "2026-11-28 01:02:03Z"),
                "space",
            ),
            (
                with(&good, "2026-12-28T01:02:03Z", "2026-13-28T01:02:03Z"),
                "month 13",
            ),
            (
                with(&good, "2026-12-28T01:02:03Z", "tomorrow"),
                "not a date",
            ),
            (with(&good, "\"ver\":2", "\"ver\":0"), "version zero"),
            (with(&good, "\"ver\":2", "\"ver\":-1"), "negative version"),
            (with(&good, "\"ver\":2", "\"ver\":\"2\""), "string version"),
            (with(&good, "\"iss\":\"tessera\",", ""), "missing iss"),
            (with(&good, "01234567-89ab", "not-a-uuid"), "bad jti"),
            (with(&good, "{\"super_admin\":true}", "{}"), "empty perm"),
            ("[1,2]".to_string(), "array"),
            ("\"text\"".to_string(), "string"),
            (String::new(), "empty"),
            (format!("{good} x"), "trailing data"),
        ];
        for (json, why) in cases {
            assert!(Claims::from_json(json.as_bytes()).is_err(), "{why}: {json}");
        }
        let offset = with(&good, "2026-12-28T01:02:03Z", "2026-12-28T02:02:03+01:00");
        assert_eq!(Claims::from_json(offset.as_bytes()).unwrap(), sample());
        let fractional = with(&good, "2026-12-28T01:02:03Z", "2026-12-28T01:02:03.000Z");
        assert_eq!(Claims::from_json(fractional.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn the_cidr_claim_is_written_last_only_when_present_and_read_strictly() {
        let bound = Claims {
            cidr: Some(CidrList::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap()),
            ..sample()
        };
        let json = String::from_utf8(bound.to_json()).unwrap();
        assert!(
            json.ends_with(r#""perm":{"super_admin":true},"cidr":["10.0.0.0/8","2001:db8::/32"]}"#),
            "{json}"
        );
        assert_eq!(Claims::from_json(json.as_bytes()).unwrap(), bound);
        assert!(!String::from_utf8(sample().to_json())
            .unwrap()
            .contains("cidr"));
        let cases = [
            (
                with(&json, r#"["10.0.0.0/8","2001:db8::/32"]"#, "[]"),
                "empty",
            ),
            (with(&json, "10.0.0.0/8", "10.0.0.0/33"), "bad prefix"),
            (with(&json, "10.0.0.0/8", "ten"), "garbage"),
            (
                with(&json, r#","cidr""#, r#","cidr":["1.2.3.4"],"cidr""#),
                "duplicate",
            ),
            (
                with(
                    &json,
                    r#"["10.0.0.0/8","2001:db8::/32"]"#,
                    r#""10.0.0.0/8""#,
                ),
                "not a list",
            ),
        ];
        for (json, why) in cases {
            assert!(Claims::from_json(json.as_bytes()).is_err(), "{why}: {json}");
        }
    }
}
