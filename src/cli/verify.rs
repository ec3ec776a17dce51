//! `tessera verify`: fully offline verification of one token with [`Verifier`], against the
//! key folder or a single public key, optionally followed by an authorization question
//! (`--require`). Exit 0 when the token is valid (and allowed), 1 when it is refused or not
//! allowed or `--require` is not a valid question (invalid input), 2 on a usage or
//! configuration error.
//!
//! Without `--store`, no token state is consulted: a deleted or regenerated token still
//! verifies here until it expires, and the command says so on every success. With `--store`,
//! the store's state map (deletions, regenerations, permission updates) is applied as a
//! verifier following it would.

use super::input;
use super::report::{self, eprint_line, Failure, Out, EXIT_REFUSED};
use crate::claims::Claims;
use crate::keys::{KeyRing, PublicKey};
use crate::paseto::{self, Body};
use crate::permissions::{question_scope, Access, QUESTION_SCOPE_KEYS};
use crate::store::TokenStore as _;
use crate::verifier::{DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS};
use crate::{ManualClock, MemoryState, Reason, VerifiedToken, Verifier, VerifyError};
use chrono::Utc;
use clap::parser::ValueSource;
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The most leeway accepted, in seconds (a day): more is not clock skew.
const MAX_LEEWAY_SECS: i64 = 86_400;

/// The way round the lock for `verify --store`: the server holding the file verifies with the
/// same token state, and anyone may ask it.
const LOCKED_FOR_VERIFY: &str = "while `tessera serve` holds the store, ask it instead: POST \
    /v1/verify on that server (e.g. http://127.0.0.1:8080/v1/verify, docs/http-api.md) \
    verifies with the same token state; or stop the process holding it";

/// The note printed after every successful verification.
const NO_STATE_NOTE: &str = "note: no token state was consulted: a deleted or regenerated token \
                             still verifies until it expires";

const REQUIRE_EXAMPLE: &str =
    "--require resource=devtron-app,role=trigger,project=payments,environment=prod,app=api";

/// Options of `tessera verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The token (`v4.public...`). Omit it or give `-` to read it from stdin, which keeps it
    /// out of shell history and out of `ps`
    #[arg(value_name = "TOKEN", env = "TESSERA_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// The key folder whose keys (all of them, public halves suffice) may have signed the
    /// token
    #[arg(long, value_name = "DIR", env = "TESSERA_KEYS", default_value = "keys")]
    keys: PathBuf,

    /// Verify against this one public key (`k4.public...`, from `tessera keys list`) instead
    /// of the key folder
    #[arg(long, value_name = "PASERK", env = "TESSERA_PUBLIC_KEY")]
    public_key: Option<String>,

    /// Accept only tokens with this issuer (`iss`)
    #[arg(long, value_name = "NAME", env = "TESSERA_ISSUER", default_value = DEFAULT_ISSUER)]
    issuer: String,

    /// Tolerate this much clock skew on the token's times, in seconds
    #[arg(
        long,
        value_name = "SECONDS",
        env = "TESSERA_LEEWAY",
        default_value_t = DEFAULT_LEEWAY_SECS,
        value_parser = clap::value_parser!(i64).range(0..=MAX_LEEWAY_SECS),
    )]
    leeway: i64,

    /// Also ask whether the token allows this access: comma-separated key=value pairs with
    /// `resource` and `role`, and the scope: `project`, `environment`, `app` (devtron-app,
    /// helm-app); `cluster`, `namespace`, `group`, `kind`, `name` (kubernetes); `group`
    /// (chart-group). Exit 1 with `forbidden` if it does not
    #[arg(long, value_name = "SPEC", env = "TESSERA_REQUIRE")]
    require: Option<String>,

    /// Apply the live token state of this store (`file:PATH` or `redis://...`): deleted and
    /// regenerated tokens are refused, updated permissions apply
    #[arg(
        long,
        value_name = "URL",
        env = "TESSERA_VERIFY_STORE",
        hide_env_values = true
    )]
    store: Option<String>,

    /// Print one JSON object on stdout: {"valid", "code", "detail"?, "token"?, "allowed"?}
    #[arg(long, env = "TESSERA_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    json: bool,
}

/// Where `verify` found the key flags, as clap saw them: a flag on the command line beats an
/// environment variable, which beats a default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sources {
    /// Where `--keys` came from.
    pub(crate) keys: Option<ValueSource>,
    /// Where `--public-key` came from.
    pub(crate) public_key: Option<ValueSource>,
}

/// Help text after the options.
pub(crate) const AFTER_HELP: &str = "\
Exit status: 0 valid (and allowed); 1 refused, not allowed, or a --require that is not a valid
question; 2 usage or configuration error (keys, an unreadable --store).
On refusal, stderr says `refused: <code> (<detail>)`; codes: malformed, unknown_key,
bad_signature, expired, not_yet_valid, wrong_issuer, revoked and superseded (with --store),
and forbidden for --require.
With --json and --require, a valid token that is not allowed has \"valid\": true,
\"allowed\": false and \"code\": \"forbidden\".

Examples:
  tessera verify --keys /etc/tessera/keys < token.txt
  printf '%s' \"$TOKEN\" | tessera verify --public-key k4.public.... --json
  tessera verify < token.txt \\
    --require resource=devtron-app,role=trigger,project=payments,environment=prod,app=api";

/// Run `tessera verify`.
pub(crate) fn run(args: VerifyArgs, sources: Sources) -> Result<ExitCode, Failure> {
    let ring = Arc::new(load_ring(&args, sources)?);
    let require = args
        .require
        .as_deref()
        .map(Requirement::parse)
        .transpose()?;
    let token = input::token(args.token.as_deref())?;
    let mut verifier = Verifier::new(ring.clone())
        .with_issuer(args.issuer.clone())
        .with_leeway(chrono::Duration::seconds(args.leeway))
        .with_cache_capacity(0);
    let mut note = NO_STATE_NOTE.to_owned();
    if let Some(url) = &args.store {
        let (state, revision) = load_state(url)?;
        verifier = verifier.with_state(state);
        note = format!("note: the token state of the store was applied (revision {revision})");
    }
    match verifier.verify(&token) {
        Ok(verified) => {
            let allowed = require.as_ref().map(|r| r.allowed_by(&verified));
            accepted(&verified, require.as_ref(), allowed, args.json, &note)
        }
        Err(error) => {
            let seen = signed_claims_of_refused(ring, &args, &token, &error);
            refused(&error, seen.as_ref(), args.json)
        }
    }
}

/// The store's state map, loaded once: this command verifies one token, so it has no feed to
/// follow.
fn load_state(url: &str) -> Result<(Arc<MemoryState>, u64), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format_args!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let store = super::token::open_store(url, Default::default(), LOCKED_FOR_VERIFY).await?;
        let snapshot = store.snapshot().await.map_err(|e| {
            Failure::new(format_args!(
                "cannot read the token state: {}",
                crate::redact::url(&e.to_string())
            ))
        })?;
        let state = MemoryState::new();
        let revision = snapshot.revision;
        state.load_snapshot(
            revision,
            snapshot
                .entries
                .into_iter()
                .map(|(id, record)| (id, record.to_entry())),
        );
        Ok((Arc::new(state), revision))
    })
}

fn load_ring(args: &VerifyArgs, sources: Sources) -> Result<KeyRing, Failure> {
    let Some(text) = args.public_key.as_deref() else {
        return Ok(KeyRing::load_dir(&args.keys)?);
    };
    let use_public = match (sources.keys, sources.public_key) {
        (Some(ValueSource::CommandLine), Some(ValueSource::CommandLine)) => {
            return Err(
                Failure::new("--keys and --public-key cannot be used together")
                    .hint("give the key folder with --keys, or one public key with --public-key"),
            )
        }
        (Some(ValueSource::CommandLine), _) => false,
        (_, Some(ValueSource::CommandLine)) => true,
        (Some(ValueSource::EnvVariable), Some(ValueSource::EnvVariable)) => {
            return Err(
                Failure::new("both TESSERA_KEYS and TESSERA_PUBLIC_KEY are set")
                    .hint("unset one, or choose on the command line with --keys or --public-key"),
            )
        }
        _ => true,
    };
    if !use_public {
        return Ok(KeyRing::load_dir(&args.keys)?);
    }
    let public = PublicKey::from_paserk(text).map_err(|e| {
        let failure = Failure::new(format_args!("--public-key: {e}"));
        if text.trim_start().starts_with("k4.secret.") {
            failure.hint(
                "that is a SECRET key: never pass it on a command line or give it to a verifier; \
                 take the public key from `tessera keys list`",
            )
        } else {
            failure.hint("take the `k4.public...` key from `tessera keys list`")
        }
    })?;
    Ok(KeyRing::from_public(public))
}

/// A parsed `--require`: the key=value pairs, checked to form a valid access question.
#[derive(Debug)]
struct Requirement {
    fields: Vec<(String, String)>,
}

impl Requirement {
    fn parse(spec: &str) -> Result<Self, Failure> {
        // Invalid input, exit 1 like an unknown role anywhere else.
        let bad = |message: String| {
            Failure::invalid(format_args!("--require: {message}"))
                .hint(format_args!("e.g. {REQUIRE_EXAMPLE}"))
        };
        let mut fields: Vec<(String, String)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(bad(format!("{part:?} is not key=value")));
            };
            let (key, value) = (key.trim(), value.trim());
            if key != "resource" && key != "role" && !QUESTION_SCOPE_KEYS.contains(&key) {
                return Err(bad(format!(
                    "unknown key {key:?}; expected resource, role, {}",
                    QUESTION_SCOPE_KEYS.join(", ")
                )));
            }
            if fields.iter().any(|(k, _)| k == key) {
                return Err(bad(format!("{key:?} is given twice")));
            }
            fields.push((key.to_owned(), value.to_owned()));
        }
        let requirement = Self { fields };
        let access = requirement.access().map_err(bad)?;
        let allowed: Vec<&str> = question_scope(access.resource())
            .iter()
            .map(|(field, _)| *field)
            .collect();
        if let Some((key, _)) = requirement
            .fields
            .iter()
            .find(|(k, _)| k != "resource" && k != "role" && !allowed.contains(&k.as_str()))
        {
            return Err(bad(format!(
                "{key:?} is not a scope of {}; its scope is {}",
                access.resource(),
                allowed.join(", ")
            )));
        }
        Ok(requirement)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn access(&self) -> Result<Access<'_>, String> {
        let resource = self.get("resource").ok_or("missing resource=...")?;
        let role = self.get("role").ok_or("missing role=...")?;
        Access::from_fields(resource, role, |key| self.get(key)).map_err(|e| e.to_string())
    }

    fn allowed_by(&self, token: &VerifiedToken) -> bool {
        // `parse` built this access once already, so it builds again; refuse if not.
        self.access().is_ok_and(|access| token.allows(&access))
    }

    /// The question, as given, for messages: `resource=...,role=...,...`.
    fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn accepted(
    token: &VerifiedToken,
    require: Option<&Requirement>,
    allowed: Option<bool>,
    json: bool,
    note: &str,
) -> Result<ExitCode, Failure> {
    let forbidden = allowed == Some(false);
    let mut out = Out::default();
    if json {
        let mut value = json!({
            "valid": true,
            "code": if forbidden { "forbidden" } else { "ok" },
        });
        if let (true, Some(require)) = (forbidden, require) {
            value["detail"] = Value::from(forbidden_detail(require));
        }
        value["token"] = token_json(token);
        if let Some(allowed) = allowed {
            value["allowed"] = Value::from(allowed);
        }
        out.line(super::to_json(&value)?);
    } else {
        let now = Utc::now();
        out.line("valid");
        out.line(format_args!("  id:           {}", token.id()));
        out.line(format_args!(
            "  name:         {}",
            report::clean(token.name())
        ));
        out.line(format_args!("  version:      {}", token.version()));
        out.line(format_args!("  key id:       {}", token.key_id()));
        out.line(format_args!(
            "  issued:       {}",
            report::time_and_relative(&token.claims().iat, &now)
        ));
        out.line(format_args!(
            "  expires:      {}",
            token.expires_at().map_or_else(
                || "never".to_owned(),
                |at| report::time_and_relative(&at, &now)
            )
        ));
        out.line(format_args!(
            "  permissions:  {}",
            report::clean(&token.permissions().summary())
        ));
        if token.permissions_updated() {
            out.line("  (permissions updated since the token was issued: from the token state)");
        }
        out.line(format_args!(
            "  permissions (JSON): {}",
            report::clean(&serde_json::to_string(token.permissions()).unwrap_or_default())
        ));
        if let Some(allowed) = allowed {
            out.line(if allowed { "allowed" } else { "not allowed" });
        }
    }
    out.emit()?;
    eprint_line(note);
    match (forbidden, require) {
        (true, Some(require)) => {
            eprint_line(format_args!(
                "refused: forbidden ({})",
                report::clean(&forbidden_detail(require))
            ));
            eprint_line(format_args!(
                "hint: the token allows: {}",
                report::clean(&token.permissions().summary())
            ));
            Ok(ExitCode::from(EXIT_REFUSED))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn forbidden_detail(require: &Requirement) -> String {
    format!("the token does not allow {}", require.describe())
}

fn refused(
    error: &VerifyError,
    seen: Option<&VerifiedToken>,
    json: bool,
) -> Result<ExitCode, Failure> {
    if json {
        let mut value = json!({
            "valid": false,
            "code": error.code(),
            "detail": error.detail(),
        });
        if let Some(token) = seen {
            value["token"] = token_json(token);
        }
        let mut out = Out::default();
        out.line(super::to_json(&value)?);
        out.emit()?;
    }
    eprint_line(format_args!(
        "refused: {} ({})",
        error.code(),
        report::clean(error.detail())
    ));
    if let Some(hint) = refusal_hint(error, seen) {
        eprint_line(format_args!("hint: {}", report::clean(&hint)));
    }
    Ok(ExitCode::from(EXIT_REFUSED))
}

fn refusal_hint(error: &VerifyError, seen: Option<&VerifiedToken>) -> Option<String> {
    let now = Utc::now();
    Some(match (error.reason(), seen) {
        (Reason::Malformed, _) => {
            "a Tessera token is one line starting with `v4.public.`; check that it was copied \
             whole (`tessera inspect` shows what it holds)"
                .to_owned()
        }
        (Reason::UnknownKey, _) => {
            "the token was signed by a key these keys do not include; compare its key id \
             (`tessera inspect`) with `tessera keys list`"
                .to_owned()
        }
        (Reason::BadSignature, _) => {
            "the token was altered, or signed by another key under the same key id".to_owned()
        }
        (Reason::Expired, Some(token)) => match token.expires_at() {
            Some(at) => format!(
                "token {:?} (id {}) expired at {}; it needs a new token",
                token.name(),
                token.id(),
                report::time_and_relative(&at, &now)
            ),
            None => return None,
        },
        (Reason::NotYetValid, _) => {
            "the token's times are ahead of this machine's clock; check both clocks, or raise \
             --leeway"
                .to_owned()
        }
        (Reason::WrongIssuer, _) => {
            "pass --issuer with the token's issuer if this verifier should accept it".to_owned()
        }
        (Reason::Revoked, _) => "the token was deleted; it needs a new token".to_owned(),
        (Reason::Superseded, _) => {
            "the token was regenerated; use the newest token it was given".to_owned()
        }
        _ => return None,
    })
}

/// For a token refused for its times or issuer, whose signature checked out: the token as it
/// verifies at its own issue time with its own issuer, so the report can say which token it
/// was. The claims come from [`Verifier::verify`] (signature and all), never from the
/// unverified payload alone.
fn signed_claims_of_refused(
    ring: Arc<KeyRing>,
    args: &VerifyArgs,
    token: &str,
    error: &VerifyError,
) -> Option<VerifiedToken> {
    if !matches!(
        error.reason(),
        Reason::Expired | Reason::NotYetValid | Reason::WrongIssuer
    ) {
        return None;
    }
    let body = Body::decode(paseto::split(token).ok()?.body).ok()?;
    let claims = Claims::from_json(body.payload()).ok()?;
    let at = claims.iat.max(claims.nbf);
    Verifier::new(ring)
        .with_issuer(claims.iss)
        .with_leeway(chrono::Duration::seconds(args.leeway))
        .with_clock(Arc::new(ManualClock::new(at)))
        .with_cache_capacity(0)
        .verify(token)
        .ok()
}

fn permissions_json(token: &VerifiedToken) -> Value {
    // A verified token's permissions are valid, so they serialize.
    serde_json::to_value(token.permissions()).unwrap_or(Value::Null)
}

fn token_json(token: &VerifiedToken) -> Value {
    json!({
        "id": token.id(),
        "name": token.name(),
        "version": token.version(),
        "key_id": token.key_id(),
        "issued_at": report::time(&token.claims().iat),
        "expires_at": token.expires_at().map(|at| report::time(&at)),
        "permissions": permissions_json(token),
        "permissions_updated": token.permissions_updated(),
    })
}
