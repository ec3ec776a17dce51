//! `tessera token create|list|show|update|regenerate|delete|audit`: the token lifecycle, either
//! directly on a store, for an operator on the machine that holds the store and the keys (and
//! to bootstrap the first super-admin token before any server runs), or with `--server URL`
//! through a running server's HTTP API ([`remote`]), with the caller's token in
//! `TESSERA_TOKEN`.
//!
//! The rules live in [`crate::lifecycle`] (run here, or by the server); this module parses
//! flags, calls a [`Backend`] and shows the result. Both backends give the same records and the
//! same refusals, so the output is written once and is the same in both modes. A new token
//! string goes to stdout alone (or inside `--json`); everything else goes to stderr, so
//! `TOKEN=$(tessera token create ...)` captures exactly the token.
//!
//! Exit codes: 0 done; 1 refused by the rules or invalid input (a name, permissions, an expiry,
//! a token not found, name taken, conflict, too large, and over HTTP a caller's token that is
//! not super-admin); 2 usage or configuration error (flags, keys, an unreadable file, an
//! unreachable store or server, `TESSERA_TOKEN` missing or refused).

use crate::cidr::CidrList;
use crate::cli::keys::KeysDir;
use crate::cli::report::{self, eprint_line, Failure, Out, EXIT_REFUSED};
use crate::issuer::Issuer;

use crate::lifecycle::{
    Caller, Expiry, LifecycleError, Minted, NewToken, Policy, Status, TokenService, TokenUpdate,
};
use crate::model::{AuditRecord, TokenRecord};
use crate::permissions::Permissions;
use crate::store::{AnyStore, StoreOptions, DEFAULT_STORE_URL};
use chrono::{DateTime, SubsecRound as _, Utc};
use clap::{Args, Subcommand};
use remote::Remote;
use serde_json::json;
use std::io::Read as _;
use std::process::ExitCode;
use std::sync::Arc;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The store option, shared by every command that reads the store.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArg {
    /// The token store: `file:PATH` (the embedded redb file), `redis://HOST:PORT/DB`
    /// (`rediss://` for TLS; a password goes in the URL, `redis://:PASSWORD@HOST`) or
    /// `redis+cluster://HOST:PORT,HOST:PORT` for a Redis Cluster, or
    /// `redis+sentinel://HOST:PORT,HOST:PORT/MASTER_NAME/DB` for a primary under Redis Sentinel
    #[arg(long, value_name = "URL", env = "TESSERA_STORE", default_value = DEFAULT_STORE_URL, hide_env_values = true)]
    pub(crate) store: String,
}

/// Waiting for Redis replicas after each write: `tessera serve` and the token commands that
/// write to a store of their own take the same options.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReplicaArgs {
    /// Redis only: after every write, wait until this many replicas have it (Redis `WAIT`);
    /// when fewer acknowledge it within --redis-wait-timeout, the write fails as unavailable
    /// and may have been applied. 0: do not wait. Refused with the embedded store
    #[arg(long, value_name = "N", env = "TESSERA_REDIS_MIN_REPLICAS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) redis_min_replicas: u32,

    /// How long a write waits for --redis-min-replicas replicas, in milliseconds
    #[arg(long, value_name = "MS", env = "TESSERA_REDIS_WAIT_TIMEOUT", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=4000))]
    pub(crate) redis_wait_timeout: u64,
}

impl ReplicaArgs {
    pub(crate) fn options(&self) -> StoreOptions {
        StoreOptions {
            redis_min_replicas: self.redis_min_replicas,
            redis_wait_timeout: std::time::Duration::from_millis(self.redis_wait_timeout),
        }
    }
}

/// The lifetime rule an operator may configure.
#[derive(Debug, Args)]
struct PolicyArgs {
    /// Refuse expiries more than this many days away (and `never`)
    #[arg(long, value_name = "DAYS", env = "TESSERA_MAX_LIFETIME_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    max_lifetime_days: Option<u32>,
}

impl PolicyArgs {
    fn policy(&self) -> Policy {
        Policy {
            max_lifetime: self
                .max_lifetime_days
                .map(|days| chrono::Duration::days(i64::from(days))),
            ..Policy::default()
        }
    }
}

#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    store: StoreArg,
    #[command(flatten)]
    replicas: ReplicaArgs,
    #[command(flatten)]
    remote: ServerArgs,
    /// Print JSON on stdout instead of text
    #[arg(long, env = "TESSERA_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    json: bool,
}

/// `tessera token ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token; prints the token (once) on stdout
    #[command(after_help = CREATE_HELP)]
    Create(CreateArgs),
    /// List tokens
    List(ListArgs),
    /// Show one token's record
    Show(ShowArgs),
    /// Change a token's description, permissions or networks; the token string stays the same
    #[command(after_help = UPDATE_HELP)]
    Update(UpdateArgs),
    /// Issue a new token with a new expiry; the old one stops working
    #[command(after_help = REGENERATE_HELP)]
    Regenerate(RegenerateArgs),
    /// Delete a token: it stops working everywhere
    Delete(DeleteArgs),
    /// Show the audit trail of management actions
    Audit(AuditArgs),
}

/// `tessera token --help`, after the subcommands.
pub(crate) const AFTER_HELP: &str = "\
Exit status: 0 done; 1 refused by the rules or invalid input (a bad name, permissions JSON,
role or --expires, a token not found, name taken, conflict, the last super-admin, too large;
over HTTP also a token that is not super-admin); 2 usage or configuration error (flags, keys,
an unreachable store or server, TESSERA_TOKEN missing or refused).

Examples:
  tessera token create --name ci-bot --expires 30d --super-admin
  tessera token list --store redis://127.0.0.1:6379/0
  export TESSERA_SERVER=https://tessera.example.com
  read -rs TESSERA_TOKEN && export TESSERA_TOKEN
  tessera token list
  tessera token regenerate ci-bot --expires 60d --server https://tessera.example.com

The caller's token is read from TESSERA_TOKEN only, never from a flag (flags show in `ps` and
shell history). --server conflicts with --store, --keys and --max-lifetime-days, also when they
come from their TESSERA_* variables: the server has its own store, keys and lifetime rule.";

const CREATE_HELP: &str = "\
The token is printed once, alone on stdout, and stored nowhere: capture it.

Examples:
  tessera token create --name ci-bot --description \"CI pipeline\" --expires 30d --super-admin
  TOKEN=$(tessera token create --name deployer --expires 90d --permissions @perms.json)
  tessera token create --name office-bot --super-admin --allowed-cidrs 10.0.0.0/8,2001:db8::/32
  tessera token create --name release-bot --expires 2027-06-30 --permissions @perms.json
  tessera token create --name viewer --expires never \\
    --permissions '{\"grants\": [{\"resource\": \"chart-group\", \"role\": \"view\", \"groups\": [\"*\"]}]}'";

const UPDATE_HELP: &str = "\
Verifiers that follow the token state apply new permissions and networks to the existing token
string. Offline verifiers (public key only) keep applying those signed into it.

Examples:
  tessera token update ci-bot --permissions @perms.json --if-revision 3
  tessera token update ci-bot --allowed-cidrs 10.0.0.0/8,2001:db8::/32";

const REGENERATE_HELP: &str = "\
Scripts using the old token must be given the new one: the old one is refused as superseded.

Example:
  NEW=$(tessera token regenerate ci-bot --expires 60d)";

/// `--server` conflicts with the options of a local store: the server has its own keys and
/// lifetime rule.
const REMOTE_CONFLICTS: [&str; 2] = ["keys", "max_lifetime_days"];

#[derive(Debug, Args)]
#[command(mut_arg("server", |a| a.conflicts_with_all(REMOTE_CONFLICTS)))]
pub(crate) struct CreateArgs {
    /// The name: 3 to 50 lowercase letters, digits, '-' and '_', starting and ending with a
    /// letter or digit; unique among live tokens
    #[arg(long, value_name = "NAME")]
    name: String,
    /// What the token is for (at most 350 characters)
    #[arg(long, value_name = "TEXT", default_value = "")]
    description: String,
    /// When it expires: 7d, 30d, 60d, 90d, never, a date (2027-01-31: that day's end,
    /// 23:59:59 UTC) or an RFC 3339 time (2027-01-31T00:00:00Z)
    #[arg(long, value_name = "WHEN", default_value = "30d")]
    expires: String,
    #[command(flatten)]
    permissions: PermissionArgs,
    /// The networks the token may be used from, comma-separated IPv4 and IPv6 addresses or
    /// CIDRs (at most 32), e.g. 10.0.0.0/8,2001:db8::/32; left out: anywhere
    #[arg(long, value_name = "CIDRS", value_parser = cidrs_arg)]
    allowed_cidrs: Option<CidrList>,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    keys: KeysDir,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct PermissionArgs {
    /// Give the token super-admin permission (everything, including managing tokens)
    #[arg(long)]
    super_admin: bool,
    /// Specific permissions as JSON (`{"grants": [...]}`), `@FILE` to read a file, or `@-`
    /// for stdin
    #[arg(long, value_name = "JSON")]
    permissions: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tokens with this status
    #[arg(long, value_name = "STATUS", value_parser = ["active", "expired"])]
    status: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The token's id or name
    #[arg(value_name = "ID|NAME")]
    token: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
#[command(mut_arg("server", |a| a.conflicts_with("keys")))]
pub(crate) struct UpdateArgs {
    /// The token's id or name
    #[arg(value_name = "ID|NAME")]
    token: String,
    /// The new description
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Super-admin permission from now on
    #[arg(long, conflicts_with = "permissions")]
    super_admin: bool,
    /// The new permissions as JSON, `@FILE` or `@-`
    #[arg(long, value_name = "JSON")]
    permissions: Option<String>,
    /// The new networks, comma-separated addresses or CIDRs (at most 32); an empty value
    /// (`--allowed-cidrs ''`) lifts the restriction
    #[arg(long, value_name = "CIDRS", value_parser = cidrs_arg)]
    allowed_cidrs: Option<CidrList>,
    /// Refuse (conflict) unless the record is at this revision
    #[arg(long, value_name = "REVISION")]
    if_revision: Option<u64>,
    #[command(flatten)]
    keys: KeysDir,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
#[command(mut_arg("server", |a| a.conflicts_with_all(REMOTE_CONFLICTS)))]
pub(crate) struct RegenerateArgs {
    /// The token's id or name
    #[arg(value_name = "ID|NAME")]
    token: String,
    /// When the new token expires: 7d, 30d, 60d, 90d, never, a date (2027-01-31: that day's
    /// end, 23:59:59 UTC) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    expires: String,
    /// New networks for the new token, comma-separated addresses or CIDRs; an empty value
    /// lifts the restriction; left out, the token keeps its networks
    #[arg(long, value_name = "CIDRS", value_parser = cidrs_arg)]
    allowed_cidrs: Option<CidrList>,
    /// Refuse (conflict) unless the record is at this revision
    #[arg(long, value_name = "REVISION")]
    if_revision: Option<u64>,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    keys: KeysDir,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The token's id or name
    #[arg(value_name = "ID|NAME")]
    token: String,
    /// Refuse (conflict) unless the record is at this revision
    #[arg(long, value_name = "REVISION")]
    if_revision: Option<u64>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Start after this entry number
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    after: u64,
    /// At most this many entries
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    limit: u64,
    #[command(flatten)]
    common: Common,
}

/// Run a `token` subcommand.
pub(crate) fn run(command: TokenCommand) -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format_args!("cannot start the async runtime: {e}")))?;
    let json = command.common().json;
    match runtime.block_on(dispatch(command)) {
        Ok(code) => Ok(code),
        Err(Stop::Failed(failure)) => {
            if json && failure.kind() == report::Kind::Invalid {
                // Exit 1 as a refusal, so with --json the same error document as one.
                invalid_json(failure.message())?;
            }
            Err(failure)
        }
        Err(Stop::Refused { code, message }) => refusal(&code, &message, json),
    }
}

impl TokenCommand {
    fn common(&self) -> &Common {
        match self {
            TokenCommand::Create(args) => &args.common,
            TokenCommand::List(args) => &args.common,
            TokenCommand::Show(args) => &args.common,
            TokenCommand::Update(args) => &args.common,
            TokenCommand::Regenerate(args) => &args.common,
            TokenCommand::Delete(args) => &args.common,
            TokenCommand::Audit(args) => &args.common,
        }
    }
}

mod backend;
mod outcome;
mod output;
mod remote;

pub(crate) use backend::open_store;
use backend::*;
use outcome::*;
use output::*;
pub(crate) use remote::{read_server_ca, ServerArgs};

async fn dispatch(command: TokenCommand) -> Result<ExitCode, Stop> {
    match command {
        TokenCommand::Create(args) => {
            let backend = Backend::open(&args.common, Some(&args.keys), Some(&args.policy)).await?;
            let permissions = permissions_arg(
                args.permissions.super_admin,
                args.permissions.permissions.as_deref(),
            )?
            .ok_or_else(|| Failure::new("give --super-admin or --permissions"))?;
            let new = NewToken {
                name: args.name,
                description: args.description,
                expires: parse_expiry(&args.expires)?,
                permissions,
                allowed_cidrs: args.allowed_cidrs.unwrap_or_default(),
            };
            let issued = backend.create(new).await?;
            backend.prune().await;
            Ok(minted_out(
                &issued,
                backend.now(),
                "created",
                args.common.json,
            )?)
        }
        TokenCommand::List(args) => {
            let backend = Backend::open(&args.common, None, None).await?;
            let status = match args.status.as_deref() {
                Some("active") => Some(Status::Active),
                Some("expired") => Some(Status::Expired),
                _ => None,
            };
            let records = backend.list(status).await?;
            Ok(list_out(&records, backend.now(), args.common.json)?)
        }
        TokenCommand::Show(args) => {
            let backend = Backend::open(&args.common, None, None).await?;
            let record = backend.find(&args.token).await?;
            Ok(record_out(&record, backend.now(), args.common.json)?)
        }
        TokenCommand::Update(args) => {
            let backend = Backend::open(&args.common, Some(&args.keys), None).await?;
            let update = TokenUpdate {
                description: args.description,
                permissions: permissions_arg(args.super_admin, args.permissions.as_deref())?,
                allowed_cidrs: args.allowed_cidrs,
            };
            if update.description.is_none()
                && update.permissions.is_none()
                && update.allowed_cidrs.is_none()
            {
                return Err(Failure::new("nothing to update")
                    .hint("give --description, --permissions, --super-admin or --allowed-cidrs")
                    .into());
            }
            let record = backend.find(&args.token).await?;
            let record = backend.update(record.id, update, args.if_revision).await?;
            backend.prune().await;
            eprint_line(format_args!(
                "updated {} (revision {}); verifiers following the token state apply it now",
                report::clean(&record.name),
                record.revision
            ));
            Ok(record_out(&record, backend.now(), args.common.json)?)
        }
        TokenCommand::Regenerate(args) => {
            let backend = Backend::open(&args.common, Some(&args.keys), Some(&args.policy)).await?;
            let expires = parse_expiry(&args.expires)?;
            let record = backend.find(&args.token).await?;
            let issued = backend
                .regenerate(record.id, expires, args.allowed_cidrs, args.if_revision)
                .await?;
            backend.prune().await;
            Ok(minted_out(
                &issued,
                backend.now(),
                "regenerated",
                args.common.json,
            )?)
        }
        TokenCommand::Delete(args) => {
            let backend = Backend::open(&args.common, None, None).await?;
            let record = backend.find(&args.token).await?;
            let record = backend.delete(record, args.if_revision).await?;
            backend.prune().await;
            eprint_line(format_args!(
                "deleted {} ({}): it is refused by every verifier following the token \
                 state; offline verifiers accept it until it expires",
                report::clean(&record.name),
                record.id
            ));
            if args.common.json {
                let mut out = Out::default();
                out.line(super::to_json(&json!({"deleted": record.id}))?);
                out.emit()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Audit(args) => {
            let backend = Backend::open(&args.common, None, None).await?;
            let entries = backend.audit(args.after, args.limit).await?;
            Ok(audit_out(&entries, args.common.json)?)
        }
    }
}

/// `--allowed-cidrs`: a usage error naming the bad entry.
fn cidrs_arg(text: &str) -> Result<CidrList, String> {
    CidrList::parse_commas(text).map_err(|e| e.to_string())
}

/// The forms `--expires` takes, for messages.
const EXPIRY_FORMS: &str = "7d, 30d, 60d, 90d, never, a date such as 2027-01-31 (the end of \
    that day, 23:59:59 UTC), or an RFC 3339 time such as 2027-01-31T00:00:00Z";

/// `--expires`: a preset (`7d` ...), `never`, an RFC 3339 time, or a plain date
/// (`YYYY-MM-DD`, as a browser's date picker gives), which means 23:59:59 UTC of that day.
/// Whether the time is in the future is for the rules to say, as for any expiry.
fn parse_expiry(text: &str) -> Result<Expiry, Failure> {
    expiry(text).map_err(|(message, hint)| {
        let failure = Failure::invalid(format_args!("--expires: {message}"));
        match hint {
            Some(hint) => failure.hint(hint),
            None => failure,
        }
    })
}

/// An expiry in any form `--expires` takes; otherwise what is wrong, and maybe a hint.
pub(crate) fn expiry(text: &str) -> Result<Expiry, (String, Option<String>)> {
    let text = text.trim();
    if let Some(date) = plain_date(text) {
        return date
            .and_hms_opt(23, 59, 59)
            .map(|end| Expiry::At(end.and_utc()))
            .ok_or_else(|| (format!("{text} has no end of day"), None));
    }
    if looks_like_date(text) {
        return Err((
            format!("{text} is not a date of the calendar"),
            Some(format!("give {EXPIRY_FORMS}")),
        ));
    }
    text.parse::<Expiry>().map_err(|_| {
        (
            format!(
                "{:?} is not an expiry: use {EXPIRY_FORMS}",
                crate::permissions::shorten(text)
            ),
            None,
        )
    })
}

/// `YYYY-MM-DD` exactly, as a date of the calendar.
fn plain_date(text: &str) -> Option<chrono::NaiveDate> {
    if !looks_like_date(text) {
        return None;
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Four digits, `-`, two digits, `-`, two digits: the shape of a plain date.
fn looks_like_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

fn permissions_arg(super_admin: bool, json: Option<&str>) -> Result<Option<Permissions>, Failure> {
    if super_admin {
        return Ok(Some(Permissions::SuperAdmin));
    }
    let Some(arg) = json else {
        return Ok(None);
    };
    let text = match arg.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .lock()
                .take(1024 * 1024)
                .read_to_string(&mut text)
                .map_err(|e| {
                    Failure::new(format_args!("cannot read permissions from stdin: {e}"))
                })?;
            text
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::new(format_args!("cannot read permissions from {path}: {e}")))?,
        None => arg.to_owned(),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Failure::invalid(format_args!(
            "--permissions: {}",
            report::clean(&e.to_string())
        ))
        .hint(
            "e.g. {\"grants\": [{\"resource\": \"devtron-app\", \"role\": \"view\", \
             \"project\": \"payments\", \"environments\": [\"*\"], \"apps\": [\"*\"]}]} \
             or --super-admin",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Expiry {
        Expiry::At(
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
        )
    }

    #[test]
    fn a_plain_date_is_the_end_of_that_day_utc() {
        assert_eq!(
            parse_expiry("2027-01-31").ok(),
            Some(at("2027-01-31T23:59:59Z"))
        );
        assert_eq!(
            parse_expiry(" 2028-02-29 ").ok(),
            Some(at("2028-02-29T23:59:59Z"))
        );
        // The other forms are as before.
        assert_eq!(parse_expiry("30d").ok(), Some(Expiry::Days(30)));
        assert_eq!(parse_expiry("never").ok(), Some(Expiry::Never));
        assert_eq!(
            parse_expiry("2027-01-31T00:00:00Z").ok(),
            Some(at("2027-01-31T00:00:00Z"))
        );
    }

    #[test]
    fn anything_else_is_invalid_input() {
        for text in [
            "45d",
            "2027-02-29",
            "2027-13-01",
            "2027-1-31",
            "+2027-01-31",
            "2027/01/31",
            "31-01-2027",
            "",
        ] {
            let failure = parse_expiry(text).expect_err(text);
            assert_eq!(failure.kind(), report::Kind::Invalid, "{text}");
            assert!(failure.message().starts_with("--expires: "), "{text}");
        }
    }
}
