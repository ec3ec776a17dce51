//! `tessera inspect`: decode a token WITHOUT verifying it, for debugging. Shows the header,
//! the key id from the footer (or why the footer is unusable), the payload as JSON, and
//! whether it parses as Tessera claims, with its times against now. Nothing shown here is
//! trusted, and the output says so first. Everything shown is cleaned of control characters:
//! a token is attacker-controlled text.

use super::input;
use super::report::{self, eprint_line, Failure, Out, EXIT_REFUSED};
use crate::claims::Claims;
use crate::paseto::{self, Body, WireError, HEADER};
use crate::verifier::MAX_TOKEN_LEN;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{json, Value};
use std::process::ExitCode;

/// The warning that opens every inspection.
const NOT_VERIFIED: &str =
    "NOT VERIFIED: decoded without checking the signature; do not trust these claims";

/// The most characters of an unusable footer shown.
const MAX_FOOTER_SHOWN: usize = 300;

/// Options of `tessera inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The token (`v4.public...`). Omit it or give `-` to read it from stdin, which keeps it
    /// out of shell history and out of `ps`
    #[arg(value_name = "TOKEN", env = "TESSERA_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Print one JSON object on stdout (with "verified": false); the warning goes to stderr
    #[arg(long, env = "TESSERA_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    json: bool,
}

/// Help text after the options.
pub(crate) const AFTER_HELP: &str = "\
Exit status: 0 decoded, 1 the token cannot be decoded at all, 2 usage error.
To check a token, use `tessera verify`: inspect never checks the signature.

Example:
  tessera inspect < token.txt";

/// What the footer says.
enum Footer {
    Kid(String),
    Unusable { why: String, raw: Option<String> },
}

/// Run `tessera inspect`.
pub(crate) fn run(args: InspectArgs) -> Result<ExitCode, Failure> {
    let token = input::token(args.token.as_deref())?;
    let (body, footer) = match decode(&token) {
        Ok(decoded) => decoded,
        Err(why) => return Ok(undecodable(&why, args.json)),
    };
    let payload = body.payload();
    let now = Utc::now();
    let payload_json = serde_json::from_slice::<Value>(payload);
    let claims = Claims::from_json(payload);
    let too_long = token.len() > MAX_TOKEN_LEN;

    let mut out = Out::default();
    if args.json {
        eprint_line(NOT_VERIFIED);
        let mut value = json!({
            "verified": false,
            "warning": NOT_VERIFIED,
            "header": HEADER,
            "size": token.len(),
            "too_long": too_long,
        });
        value["footer"] = match &footer {
            Footer::Kid(kid) => json!({ "kid": kid }),
            Footer::Unusable { why, raw } => json!({ "error": why, "raw": raw }),
        };
        match &payload_json {
            Ok(payload) => value["payload"] = payload.clone(),
            Err(e) => {
                value["payload"] = Value::Null;
                value["payload_error"] = Value::from(format!("not JSON: {e}"));
            }
        }
        value["claims"] = match &claims {
            Ok(claims) => claims_json(claims, &now),
            Err(e) => json!({ "ok": false, "error": e.to_string() }),
        };
        out.line(super::to_json(&value)?);
    } else {
        out.line(NOT_VERIFIED);
        out.line(format_args!("header:   {HEADER}"));
        if too_long {
            out.line(format_args!(
                "size:     {} bytes, more than {MAX_TOKEN_LEN}: every verifier refuses it",
                token.len()
            ));
        }
        match &footer {
            Footer::Kid(kid) => out.line(format_args!("key id:   {kid} (from the footer)")),
            Footer::Unusable { why, raw } => {
                out.line(format_args!("key id:   none: {}", report::clean(why)));
                if let Some(raw) = raw {
                    out.line(format_args!("footer:   {}", report::clean(raw)));
                }
            }
        }
        match &payload_json {
            Ok(payload) => {
                out.line("payload:");
                let pretty = serde_json::to_string_pretty(payload).unwrap_or_default();
                out.line(report::clean(&pretty));
            }
            Err(e) => out.line(format_args!(
                "payload:  {} bytes, not JSON ({})",
                payload.len(),
                report::clean(&e.to_string())
            )),
        }
        match &claims {
            Ok(claims) => human_claims(&mut out, claims, &now),
            Err(e) => out.line(format_args!(
                "claims:   not Tessera claims: {}",
                report::clean(&e.to_string())
            )),
        }
    }
    out.emit()?;
    Ok(ExitCode::SUCCESS)
}

/// Split and decode: the body must decode; the footer may be unusable.
fn decode(token: &str) -> Result<(Body, Footer), String> {
    if !token.starts_with(HEADER) {
        return Err(match other_paseto_header(token) {
            Some(header) => {
                format!("its header is `{header}`; Tessera tokens are `{HEADER}`")
            }
            None => format!("not a PASETO token (a Tessera token starts with `{HEADER}`)"),
        });
    }
    let parts = paseto::split(token).map_err(why)?;
    let body = Body::decode(parts.body).map_err(|e| format!("body: {}", why(e)))?;
    let footer = if parts.footer.is_empty() {
        Footer::Unusable {
            why: "the token has no footer, so no key id".to_owned(),
            raw: None,
        }
    } else {
        match paseto::decode_b64(parts.footer) {
            Err(e) => Footer::Unusable {
                why: format!("footer: {}", why(e)),
                raw: None,
            },
            Ok(bytes) => match paseto::footer_kid(&bytes) {
                Ok(kid) => Footer::Kid(kid.to_owned()),
                Err(e) => Footer::Unusable {
                    why: format!("footer: {}", why(e)),
                    raw: Some(
                        String::from_utf8_lossy(&bytes)
                            .chars()
                            .take(MAX_FOOTER_SHOWN)
                            .collect(),
                    ),
                },
            },
        }
    };
    Ok((body, footer))
}

/// What the wire layer objected to, without its "malformed token: " prefix.
fn why(e: WireError) -> String {
    match e {
        WireError::Malformed(why) => why.to_owned(),
        other => other.to_string(),
    }
}

/// The header of another PASETO version or purpose (`v4.local.`, `v2.public.`), if the token
/// starts with one. Only a header of that exact form is echoed; nothing else of the input.
fn other_paseto_header(token: &str) -> Option<&str> {
    let mut dots = token.match_indices('.').map(|(i, _)| i);
    let (first, second) = (dots.next()?, dots.next()?);
    let header = &token[..=second];
    let version = &token[..first];
    let purpose = &token[first + 1..second];
    let version_ok = version.len() <= 3
        && version.starts_with('v')
        && version.len() > 1
        && version[1..].bytes().all(|b| b.is_ascii_digit());
    (version_ok && matches!(purpose, "local" | "public")).then_some(header)
}

fn undecodable(why: &str, json: bool) -> ExitCode {
    if json {
        let value = json!({ "verified": false, "decoded": false, "error": why });
        let mut out = Out::default();
        if let Ok(text) = super::to_json(&value) {
            out.line(text);
            // Nothing more useful to say if stdout is gone.
            let _ = out.emit();
        }
    }
    eprint_line(format_args!(
        "error: cannot decode the token: {}",
        report::clean(why)
    ));
    ExitCode::from(EXIT_REFUSED)
}

fn human_claims(out: &mut Out, claims: &Claims, now: &DateTime<Utc>) {
    out.line("claims:   parse as Tessera claims (unverified)");
    out.line(format_args!(
        "  issuer:       {}",
        report::clean(&claims.iss)
    ));
    out.line(format_args!("  id:           {}", claims.jti));
    out.line(format_args!(
        "  name:         {}",
        report::clean(claims.name())
    ));
    out.line(format_args!("  version:      {}", claims.ver));
    out.line(format_args!("  issued:       {}", when(&claims.iat, now)));
    out.line(format_args!("  not before:   {}", when(&claims.nbf, now)));
    out.line(format_args!(
        "  expires:      {}",
        claims.exp.as_ref().map_or_else(
            || "never".to_owned(),
            |at| {
                let expired = if at <= now { ", expired" } else { "" };
                format!("{}{expired}", when(at, now))
            }
        )
    ));
    out.line(format_args!(
        "  permissions:  {}",
        report::clean(&claims.perm.summary())
    ));
}

/// A time with whether it is past or future.
fn when(at: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let relative = report::relative(at, now);
    if relative == "now" {
        return format!("{} (now)", report::time(at));
    }
    let side = if at <= now { "past" } else { "future" };
    format!("{} ({side}: {relative})", report::time(at))
}

fn claims_json(claims: &Claims, now: &DateTime<Utc>) -> Value {
    json!({
        "ok": true,
        "issuer": claims.iss,
        "id": claims.jti,
        "name": claims.name(),
        "version": claims.ver,
        "issued_at": report::time(&claims.iat),
        "not_before": report::time(&claims.nbf),
        "expires_at": claims.exp.as_ref().map(report::time),
        "expired": claims.exp.is_some_and(|at| at <= *now),
        "not_yet_valid": claims.nbf > *now || claims.iat > *now,
        "permissions": serde_json::to_value(&claims.perm).unwrap_or(Value::Null),
        "permissions_summary": claims.perm.summary(),
        "now": report::time(now),
    })
}
