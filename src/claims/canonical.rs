//! A fast path for reading claims in exactly the form our issuer writes them.
//!
//! Parsing the payload is most of what a cache-missing verification does besides the
//! signature, and general-purpose JSON into owned structs is several times slower than reading
//! a known layout. So: if the payload is byte for byte in the canonical layout (keys in the
//! issuer's order, no whitespace, strings without escapes, times as `YYYY-MM-DDTHH:MM:SSZ`),
//! read it directly; on the first byte that differs, give up and let the full parser decide.
//!
//! Every value is checked as it is read, with the same functions the full parser uses (pattern
//! rules, list and grant counts), so nothing is validated twice.
//!
//! The contract, tested in `tests` below and by the `claims` fuzz target: whenever this returns
//! `Some(claims)`, the full parser returns `Ok(claims)` for the same bytes. It never decides
//! that a payload is invalid; it only ever says "not canonical, ask the full parser".

use super::Claims;
use crate::permissions::{
    check_grant_count, check_list_len, AppGrant, ChartGroupGrant, Grant, KubernetesGrant, Pattern,
    Patterns, Permissions, TesseraGrant,
};
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// Read `payload` if it is in the canonical layout.
pub(super) fn parse(payload: &[u8]) -> Option<Claims> {
    // One UTF-8 check for the whole payload; every string below is cut from it at a `"`, so
    // it stays valid without being checked again.
    let mut r = Reader {
        rest: std::str::from_utf8(payload).ok()?,
    };
    r.lit("{\"iss\":")?;
    let iss = r.string()?.to_owned();
    r.lit(",\"jti\":")?;
    let jti = Uuid::try_parse(r.string()?).ok()?;
    r.lit(",\"ver\":")?;
    let ver = r.number()?;
    r.lit(",\"sub\":")?;
    let sub = r.string()?.to_owned();
    r.lit(",\"iat\":")?;
    let iat = r.time()?;
    r.lit(",\"nbf\":")?;
    let nbf = r.time()?;
    let exp = if r.eat(",\"exp\":") {
        Some(r.time()?)
    } else {
        None
    };
    r.lit(",\"perm\":")?;
    let perm = r.permissions()?;
    r.lit("}")?;
    if !r.rest.is_empty() || ver == 0 {
        return None;
    }
    Some(Claims {
        iss,
        jti,
        ver,
        sub,
        iat,
        nbf,
        exp,
        perm,
        // A `cidr` claim is not in this layout (the `}` above refused it): the full parser reads it.
        cidr: None,
    })
}

struct Reader<'a> {
    rest: &'a str,
}

impl<'a> Reader<'a> {
    /// Consume `expected` if the input starts with it.
    fn eat(&mut self, expected: &str) -> bool {
        match self.rest.strip_prefix(expected) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn lit(&mut self, expected: &str) -> Option<()> {
        self.eat(expected).then_some(())
    }

    /// A string with no escapes and no control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.lit("\"")?;
        let end = self
            .rest
            .bytes()
            .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
        // Both halves are cut at an ASCII byte, so `get` always succeeds.
        let text = self.rest.get(..end)?;
        self.rest = self.rest.get(end..)?.strip_prefix('"')?;
        Some(text)
    }

    /// A JSON integer that fits a u32: digits, no sign, no leading zero.
    fn number(&mut self) -> Option<u32> {
        let bytes = self.rest.as_bytes();
        let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let digits = &bytes[..len];
        if len == 0 || len > 10 || (digits[0] == b'0' && len > 1) {
            return None;
        }
        self.rest = self.rest.get(len..)?;
        let value = digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        u32::try_from(value).ok()
    }

    /// `"YYYY-MM-DDTHH:MM:SSZ"`: what the issuer writes; anything else goes to the full parser.
    fn time(&mut self) -> Option<DateTime<Utc>> {
        let text = self.string()?.as_bytes();
        let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', i0, i1, b':', s0, s1, b'Z'] =
            *text
        else {
            return None;
        };
        let num = |digits: &[u8]| {
            digits.iter().try_fold(0u32, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })
        };
        let year = i32::try_from(num(&[y0, y1, y2, y3])?).ok()?;
        let date = NaiveDate::from_ymd_opt(year, num(&[m0, m1])?, num(&[d0, d1])?)?;
        let at = date.and_hms_opt(num(&[h0, h1])?, num(&[i0, i1])?, num(&[s0, s1])?)?;
        Some(at.and_utc())
    }

    fn patterns(&mut self, allow_empty: bool) -> Option<Patterns> {
        self.lit("[")?;
        let mut patterns = Patterns::new();
        if self.eat("]") {
            return None; // empty: invalid; let the full parser say so
        }
        loop {
            patterns.push(Pattern::parse_in(self.string()?, allow_empty).ok()?);
            if self.eat("]") {
                check_list_len("", patterns.len()).ok()?;
                return Some(patterns);
            }
            self.lit(",")?;
        }
    }

    fn field(&mut self, name: &str) -> Option<()> {
        self.lit(",\"")?;
        self.lit(name)?;
        self.lit("\":")
    }

    fn pattern_field(&mut self, name: &str) -> Option<Pattern> {
        self.field(name)?;
        Pattern::parse_in(self.string()?, false).ok()
    }

    fn list_field(&mut self, name: &str) -> Option<Patterns> {
        self.field(name)?;
        self.patterns(false)
    }

    fn app_grant<R: std::str::FromStr>(&mut self, role: &str) -> Option<AppGrant<R>> {
        Some(AppGrant {
            role: role.parse().ok()?,
            project: self.pattern_field("project")?,
            environments: self.list_field("environments")?,
            apps: self.list_field("apps")?,
        })
    }

    fn grant(&mut self) -> Option<Grant> {
        self.lit("{\"resource\":")?;
        let resource = self.string()?;
        self.lit(",\"role\":")?;
        let role = self.string()?;
        let grant = match resource {
            "devtron-app" => Grant::DevtronApp(self.app_grant(role)?),
            "helm-app" => Grant::HelmApp(self.app_grant(role)?),
            "kubernetes" => Grant::Kubernetes(KubernetesGrant {
                role: role.parse().ok()?,
                cluster: self.pattern_field("cluster")?,
                namespaces: self.list_field("namespaces")?,
                // Only the Kubernetes groups may list "", the core API group.
                groups: {
                    self.field("groups")?;
                    self.patterns(true)?
                },
                kinds: self.list_field("kinds")?,
                names: self.list_field("names")?,
            }),
            "chart-group" => Grant::ChartGroup(ChartGroupGrant {
                role: role.parse().ok()?,
                groups: self.list_field("groups")?,
            }),
            "tessera" => Grant::Tessera(TesseraGrant {
                role: role.parse().ok()?,
            }),
            _ => return None,
        };
        self.lit("}")?;
        Some(grant)
    }

    fn permissions(&mut self) -> Option<Permissions> {
        if self.eat("{\"super_admin\":true}") {
            return Some(Permissions::SuperAdmin);
        }
        self.lit("{\"grants\":[")?;
        let mut grants = Vec::new();
        loop {
            grants.push(self.grant()?);
            if self.eat("]}") {
                check_grant_count(grants.len()).ok()?;
                return Some(Permissions::Grants(grants));
            }
            self.lit(",")?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(payload: &[u8]) -> Option<Claims> {
        serde_json::from_slice(payload).ok()
    }

    const FOUR_GRANTS: &str = r#"{"iss":"tessera","jti":"0b6f1c4e-2a57-4d0e-9a4c-3f1d2e5b7a90","ver":3,"sub":"api-token:ci-bot","iat":"2026-11-28T01:02:03Z","nbf":"2026-11-28T01:02:03Z","exp":"2026-12-28T01:02:03Z","perm":{"grants":[{"resource":"devtron-app","role":"trigger","project":"payments","environments":["prod","staging"],"apps":["*"]},{"resource":"helm-app","role":"edit","project":"infra","environments":["prod-cluster__monitoring"],"apps":["graf*"]},{"resource":"kubernetes","role":"view","cluster":"prod","namespaces":["*"],"groups":["","apps"],"kinds":["Deployment","Pod"],"names":["*"]},{"resource":"chart-group","role":"view","groups":["*"]}]}}"#;

    #[test]
    fn a_tessera_grant_takes_the_fast_path_too() {
        let payload = FOUR_GRANTS.replacen(
            r#"{"resource":"chart-group","role":"view","groups":["*"]}"#,
            r#"{"resource":"tessera","role":"read-state"}"#,
            1,
        );
        let fast = parse(payload.as_bytes()).expect("canonical");
        assert_eq!(Some(&fast), full(payload.as_bytes()).as_ref());
        assert_eq!(fast.to_json(), payload.as_bytes());
    }

    #[test]
    fn the_issuers_layout_takes_the_fast_path_and_agrees_with_the_full_parser() {
        let fast = parse(FOUR_GRANTS.as_bytes()).expect("canonical");
        assert_eq!(Some(&fast), full(FOUR_GRANTS.as_bytes()).as_ref());
        // And what the issuer writes is canonical, by construction.
        assert_eq!(fast.to_json(), FOUR_GRANTS.as_bytes());
        let no_exp = FOUR_GRANTS.replacen(r#","exp":"2026-12-28T01:02:03Z""#, "", 1);
        assert_eq!(parse(no_exp.as_bytes()), full(no_exp.as_bytes()));
        assert!(parse(no_exp.as_bytes()).is_some());
    }

    #[test]
    fn anything_else_is_left_to_the_full_parser() {
        let edits = [
            ("\"ver\":3", "\"ver\": 3"),
            ("\"ver\":3", "\"ver\":03"),
            ("\"ver\":3", "\"ver\":0"),
            ("\"ver\":3", "\"ver\":4294967296"),
            ("api-token:ci-bot", "api-token:ci\\u002dbot"),
            ("2026-11-28T01:02:03Z", "2026-11-28T01:02:03+00:00"),
            ("2026-12-28T01:02:03Z", "2026-12-28T23:59:60Z"),
            ("2026-12-28T01:02:03Z", "2026-02-30T01:02:03Z"),
            ("\"apps\":[\"*\"]", "\"apps\":[]"),
            ("\"role\":\"edit\"", "\"role\":\"manager\""),
            ("\"groups\":[\"*\"]", "\"groups\":[\"\"]"),
            (
                "{\"resource\":\"chart-group\"",
                "{\"role\":\"view\",\"resource\":\"chart-group\"",
            ),
        ];
        let many = vec!["\"a\""; crate::permissions::MAX_PATTERNS + 1].join(",");
        let too_many = format!("\"apps\":[{many}]");
        let edits = edits
            .into_iter()
            .map(|(from, to)| (from, to.to_owned()))
            .chain([("\"apps\":[\"*\"]", too_many)]);
        for (from, to) in edits {
            let edited = FOUR_GRANTS.replacen(from, &to, 1);
            assert_ne!(edited, FOUR_GRANTS, "{from}");
            assert_eq!(parse(edited.as_bytes()), None, "{to}");
        }
    }

    #[test]
    fn mutated_payloads_never_make_the_two_parsers_disagree() {
        let mut rng = crate::testing::Xorshift(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next();
        let alphabet = b"{}[]\":,*-_ 0123456789aAzZTtrue\\\x00\xff";
        let mut fast_hits = 0;
        for _ in 0..50_000 {
            let mut bytes = FOUR_GRANTS.as_bytes().to_vec();
            for _ in 0..(next() % 3 + 1) {
                let at = (next() as usize) % bytes.len();
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            if let Some(fast) = parse(&bytes) {
                fast_hits += 1;
                assert_eq!(
                    Some(fast),
                    full(&bytes),
                    "{}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
        assert!(
            fast_hits > 100,
            "the mutations should keep some payloads canonical"
        );
    }
}
