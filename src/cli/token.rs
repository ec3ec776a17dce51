//! `tessera token create|list|show|update|regenerate|delete|audit`: the token lifecycle, either
//! directly on a store, for an operator on the machine that holds the store and the keys (and
//! to bootstrap the first super-admin token before any server runs), or with `--server URL`
//! through a running server's HTTP API ([`super::remote`]), with the caller's token in
//! `TESSERA_TOKEN`.
//!
//! The rules live in [`crate::lifecycle`] (run here, or by the server); this module parses
//! flags, calls a [`Backend`] and shows the result. Both backends give the same records and the
//! same refusals, so the output is written once and is the same in both modes. A new token
//! string goes to stdout alone (or inside `--json`); everything else goes to stderr, so
//! `TOKEN=$(tessera token create ...)` captures exactly the token.
//!
//! Exit codes: 0 done; 1 refused by the rules (invalid input, name taken, not found, conflict,
//! too large, and over HTTP a caller's token that is not super-admin); 2 usage or configuration
//! error (flags, keys, an unreachable store or server, `TESSERA_TOKEN` missing or refused).

use super::keys::KeysDir;
use super::remote::{self, Remote, ServerArgs};
use super::report::{self, eprint_line, Failure, Out, EXIT_REFUSED};
use crate::issuer::Issuer;
use crate::keys::{KeyError, KeyRing};
use crate::lifecycle::{
    Caller, Expiry, LifecycleError, Minted, NewToken, Policy, Status, TokenService, TokenUpdate,
};
use crate::model::{AuditRecord, TokenRecord};
use crate::permissions::Permissions;
use crate::store::{AnyStore, DEFAULT_STORE_URL};
use chrono::{DateTime, SubsecRound as _, Utc};
use clap::{Args, Subcommand};
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
    /// `redis+cluster://HOST:PORT,HOST:PORT` for a Redis Cluster
    #[arg(long, value_name = "URL", env = "TESSERA_STORE", default_value = DEFAULT_STORE_URL, hide_env_values = true)]
    pub(crate) store: String,
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
    /// Change a token's description or permissions; the token string stays the same
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
Exit status: 0 done, 1 refused by the rules (invalid input, name taken, not found, conflict, too
large; over HTTP also a token that is not super-admin), 2 usage or configuration error (an
unreachable store or server, TESSERA_TOKEN missing or refused).

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
  tessera token create --name viewer --expires never \\
    --permissions '{\"grants\": [{\"resource\": \"chart-group\", \"role\": \"view\", \"groups\": [\"*\"]}]}'";

const UPDATE_HELP: &str = "\
Verifiers that follow the token state apply new permissions to the existing token string.
Offline verifiers (public key only) keep applying the permissions signed into it.

Example:
  tessera token update ci-bot --permissions @perms.json --if-revision 3";

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
    /// When it expires: 7d, 30d, 60d, 90d, never, or an RFC 3339 time (2027-01-31T00:00:00Z)
    #[arg(long, value_name = "WHEN", default_value = "30d")]
    expires: String,
    #[command(flatten)]
    permissions: PermissionArgs,
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
    /// When the new token expires: 7d, 30d, 60d, 90d, never, or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    expires: String,
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
        Err(Stop::Failed(failure)) => Err(failure),
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

/// Why a token command stopped short of its work.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The rules refused the request (exit 1): a stable code and the message that explains
    /// it, as the HTTP API words them.
    Refused {
        /// `invalid_request`, `name_taken`, `not_found`, `conflict`, `token_too_large`,
        /// `forbidden`.
        code: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A usage or configuration error (exit 2): the store, the keys or the server.
    Failed(Failure),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Stop::Failed(failure)
    }
}

impl From<LifecycleError> for Stop {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::Store(e) => Stop::Failed(
                Failure::new(report::redact_url(&e.to_string()))
                    .hint("check that the store is reachable (--store / TESSERA_STORE)"),
            ),
            e @ LifecycleError::NoSigningKey => {
                Stop::Failed(Failure::new(&e).hint("create one with `tessera keys generate`"))
            }
            e => Stop::Refused {
                code: e.code().to_owned(),
                message: e.to_string(),
            },
        }
    }
}

/// A token string, shown once, and its record: from the store or from the server.
pub(crate) struct Issued {
    /// The token; printed once, then dropped (and zeroized).
    pub(crate) token: Zeroizing<String>,
    /// The record.
    pub(crate) record: TokenRecord,
}

impl From<Minted> for Issued {
    fn from(minted: Minted) -> Self {
        Issued {
            token: Zeroizing::new(minted.token.expose().to_owned()),
            record: minted.record,
        }
    }
}

/// Where the commands run: on a store opened here, or through a server's HTTP API. Both give
/// the same records and refusals, so everything after this is written once.
enum Backend {
    Local {
        service: TokenService<AnyStore>,
        caller: Caller,
    },
    Remote(Remote),
}

impl Backend {
    /// The server `--server` names, else the store `--store` names, with the keys (for
    /// commands that sign) and the lifetime rule.
    async fn open(
        common: &Common,
        keys: Option<&KeysDir>,
        policy: Option<&PolicyArgs>,
    ) -> Result<Self, Failure> {
        if let Some(url) = &common.remote.server {
            return Ok(Backend::Remote(Remote::from_env(&common.remote, url)?));
        }
        let service = service(&common.store, keys)
            .await?
            .with_policy(policy.map(PolicyArgs::policy).unwrap_or_default());
        Ok(Backend::Local {
            service,
            caller: Caller::local(),
        })
    }

    /// Now, in whole seconds: the time statuses and relative times are shown at.
    fn now(&self) -> DateTime<Utc> {
        match self {
            Backend::Local { service, .. } => service.now(),
            Backend::Remote(_) => Utc::now().trunc_subsecs(0),
        }
    }

    async fn create(&self, new: NewToken) -> Result<Issued, Stop> {
        match self {
            Backend::Local { service, caller } => Ok(service.create(caller, new).await?.into()),
            Backend::Remote(remote) => remote.create(&new).await,
        }
    }

    /// Every record with `status` (all when `None`), oldest first.
    async fn list(&self, status: Option<Status>) -> Result<Vec<TokenRecord>, Stop> {
        match self {
            Backend::Local { service, .. } => {
                let now = service.now();
                let mut records = service.list().await?;
                records.retain(|r| status.is_none_or(|s| r.status(now) == s));
                Ok(records)
            }
            Backend::Remote(remote) => remote.list(status).await,
        }
    }

    /// The token a command names, by id or by name.
    async fn find(&self, key: &str) -> Result<TokenRecord, Stop> {
        if let Ok(id) = Uuid::parse_str(key) {
            return match self {
                Backend::Local { service, .. } => Ok(service.get(id).await?),
                Backend::Remote(remote) => remote.get(id).await,
            };
        }
        let found = match self {
            Backend::Local { service, .. } => service.get_by_name(key).await?,
            Backend::Remote(remote) => remote.get_by_name(key).await?,
        };
        found.ok_or_else(|| {
            LifecycleError::Invalid {
                field: "token",
                message: format!(
                    "no live token is named {:?} (give a name or an id; `tessera token list` \
                     shows them)",
                    crate::permissions::shorten(key)
                ),
            }
            .into()
        })
    }

    async fn update(
        &self,
        id: Uuid,
        update: TokenUpdate,
        expect: Option<u64>,
    ) -> Result<TokenRecord, Stop> {
        match self {
            Backend::Local { service, caller } => {
                Ok(service.update(caller, id, update, expect).await?)
            }
            Backend::Remote(remote) => remote.update(id, &update, expect).await,
        }
    }

    async fn regenerate(
        &self,
        id: Uuid,
        expires: Expiry,
        expect: Option<u64>,
    ) -> Result<Issued, Stop> {
        match self {
            Backend::Local { service, caller } => Ok(service
                .regenerate(caller, id, expires, expect)
                .await?
                .into()),
            Backend::Remote(remote) => remote.regenerate(id, expires, expect).await,
        }
    }

    /// Delete `record`'s token; the record as it was.
    async fn delete(&self, record: TokenRecord, expect: Option<u64>) -> Result<TokenRecord, Stop> {
        match self {
            Backend::Local { service, caller } => {
                Ok(service.delete(caller, record.id, expect).await?)
            }
            Backend::Remote(remote) => {
                remote.delete(record.id, expect).await?;
                Ok(record)
            }
        }
    }

    async fn audit(&self, after: u64, limit: u64) -> Result<Vec<AuditRecord>, Stop> {
        match self {
            Backend::Local { service, .. } => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(service.audit(after, limit).await?)
            }
            Backend::Remote(remote) => remote.audit(after, limit).await,
        }
    }

    /// After a change on a store, drop state entries nothing can need any more. Best effort:
    /// the command's own work is done. A server does this itself.
    async fn prune(&self) {
        if let Backend::Local { service, .. } = self {
            if let Err(e) = service.prune().await {
                eprint_line(format_args!(
                    "warning: could not prune the token state: {e}"
                ));
            }
        }
    }
}

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
            };
            if update.description.is_none() && update.permissions.is_none() {
                return Err(Failure::new("nothing to update")
                    .hint("give --description, --permissions or --super-admin")
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
                .regenerate(record.id, expires, args.if_revision)
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

fn audit_out(entries: &[AuditRecord], json: bool) -> Result<ExitCode, Failure> {
    let mut out = Out::default();
    if json {
        out.line(super::to_json(&json!({ "entries": entries }))?);
    } else {
        for r in entries {
            let e = &r.entry;
            out.line(format_args!(
                "{:>6}  {}  {:<10}  {:<16}  {}  by {}{}",
                r.seq,
                report::time(&e.at),
                e.action.as_str(),
                report::clean(&e.outcome),
                report::clean(&target(e.target_name.as_deref(), e.target)),
                report::clean(e.actor.as_str()),
                e.from
                    .as_deref()
                    .map(|f| format!(" from {}", report::clean(f)))
                    .unwrap_or_default()
            ));
        }
    }
    out.emit()?;
    Ok(ExitCode::SUCCESS)
}

fn target(name: Option<&str>, id: Option<Uuid>) -> String {
    match (name, id) {
        (Some(name), Some(id)) => format!("{name} ({id})"),
        (Some(name), None) => name.to_owned(),
        (None, Some(id)) => id.to_string(),
        (None, None) => "-".to_owned(),
    }
}

async fn service(
    store: &StoreArg,
    keys: Option<&KeysDir>,
) -> Result<TokenService<AnyStore>, Failure> {
    let store = Arc::new(open_store(&store.store).await?);
    // Commands that sign nothing need no keys.
    let Some(dir) = keys else {
        return Ok(TokenService::without_issuer(store));
    };
    let ring = match KeyRing::load_dir(&dir.keys) {
        // The first use on one machine, as `tessera serve` does on a first start: a shared
        // store needs keys made once and copied to every instance, so only the embedded one.
        Err(KeyError::NoFolder(_) | KeyError::Empty(_))
            if matches!(*store, AnyStore::Embedded(_)) =>
        {
            let made = crate::keys::generate_into(&dir.keys, chrono::Utc::now())?;
            eprint_line(format_args!(
                "first use: generated the signing key {} in {} (the secret file is mode 0600)",
                made.id,
                dir.keys.display()
            ));
            KeyRing::load_dir(&dir.keys)?
        }
        other => other?,
    };
    let issuer = Issuer::new(Arc::new(ring)).map_err(|_| {
        Failure::new(format_args!(
            "no secret key in {}, so no token can be signed",
            dir.keys.display()
        ))
        .hint("create one with `tessera keys generate`")
    })?;
    Ok(TokenService::new(store, issuer))
}

/// Open the store a `--store` URL names, with an error that says what to check.
pub(crate) async fn open_store(url: &str) -> Result<AnyStore, Failure> {
    AnyStore::open(url).await.map_err(|e| {
        Failure::new(report::redact_url(&e.to_string()))
            .hint("check --store (or TESSERA_STORE): file:PATH or redis://HOST:PORT/DB")
    })
}

fn parse_expiry(text: &str) -> Result<Expiry, Failure> {
    text.parse::<Expiry>()
        .map_err(|e| Failure::new(format_args!("--expires: {}", message_of(&e))))
}

fn message_of(e: &LifecycleError) -> String {
    match e {
        LifecycleError::Invalid { message, .. } => message.clone(),
        e => e.to_string(),
    }
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
        Failure::new(format_args!(
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

fn minted_out(
    issued: &Issued,
    now: DateTime<Utc>,
    what: &str,
    json: bool,
) -> Result<ExitCode, Failure> {
    let record = &issued.record;
    let mut out = Out::default();
    if json {
        out.line(super::to_json(&json!({
            "token": issued.token.as_str(),
            "record": record.view(now),
        }))?);
    } else {
        out.line(issued.token.as_str());
    }
    out.emit()?;
    eprint_line(format_args!(
        "{what} token {} ({}), version {}, expires {}",
        report::clean(&record.name),
        record.id,
        record.version,
        expiry_text(record.expires_at, now)
    ));
    eprint_line(format_args!(
        "permissions: {}",
        report::clean(&record.permissions.summary())
    ));
    eprint_line(
        "the token is shown only this once and stored nowhere: keep it secret, send it as \
         `Authorization: Bearer <token>`",
    );
    if what == "regenerated" {
        eprint_line("the previous token no longer works: give scripts the new one");
    }
    Ok(ExitCode::SUCCESS)
}

fn expiry_text(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| report::time_and_relative(&at, &now),
    )
}

fn record_out(record: &TokenRecord, now: DateTime<Utc>, json: bool) -> Result<ExitCode, Failure> {
    let mut out = Out::default();
    if json {
        out.line(super::to_json(
            &serde_json::to_value(record.view(now))
                .map_err(|e| Failure::new(format_args!("cannot write JSON: {e}")))?,
        )?);
    } else {
        let status = match record.status(now) {
            Status::Active => "active",
            Status::Expired => "expired",
        };
        out.line(format_args!("id:           {}", record.id));
        out.line(format_args!(
            "name:         {}",
            report::clean(&record.name)
        ));
        let description = match record.description.as_str() {
            "" => "(none)".to_owned(),
            text => report::clean(text),
        };
        out.line(format_args!("description:  {description}"));
        out.line(format_args!("status:       {status}"));
        out.line(format_args!(
            "expires:      {}",
            expiry_text(record.expires_at, now)
        ));
        out.line(format_args!(
            "permissions:  {}",
            report::clean(&record.permissions.summary())
        ));
        out.line(format_args!("version:      {}", record.version));
        out.line(format_args!("revision:     {}", record.revision));
        out.line(format_args!(
            "created:      {} by {}",
            report::time(&record.created_at),
            report::clean(&record.created_by)
        ));
        out.line(format_args!(
            "updated:      {} by {}",
            report::time(&record.updated_at),
            report::clean(&record.updated_by)
        ));
    }
    out.emit()?;
    Ok(ExitCode::SUCCESS)
}

fn list_out(records: &[TokenRecord], now: DateTime<Utc>, json: bool) -> Result<ExitCode, Failure> {
    let mut out = Out::default();
    if json {
        let tokens: Vec<_> = records.iter().map(|r| r.view(now)).collect();
        out.line(super::to_json(
            &serde_json::to_value(json!({ "tokens": tokens }))
                .map_err(|e| Failure::new(format_args!("cannot write JSON: {e}")))?,
        )?);
        out.emit()?;
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        eprint_line("no tokens; create one with `tessera token create`");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|r| {
            let status = match r.status(now) {
                Status::Active => match r.expires_at {
                    Some(at) if at - now < chrono::Duration::days(7) => "expiring",
                    _ => "active",
                },
                Status::Expired => "expired",
            };
            [
                report::clean(&r.name),
                r.id.to_string(),
                status.to_owned(),
                r.expires_at
                    .map_or_else(|| "never".to_owned(), |at| report::time(&at)),
                report::clean(&r.permissions.summary()),
            ]
        })
        .collect();
    let header = ["NAME", "ID", "STATUS", "EXPIRES", "PERMISSIONS"].map(String::from);
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for [name, id, status, expires, perms] in std::iter::once(&header).chain(&rows) {
        out.line(format_args!(
            "{name:<w0$}  {id:<w1$}  {status:<w2$}  {expires:<w3$}  {perms}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        ));
    }
    out.emit()?;
    Ok(ExitCode::SUCCESS)
}

/// Report a refusal by the rules (exit 1): the same lines, and with `--json` the same
/// document, whether the store or the server refused.
fn refusal(code: &str, message: &str, json: bool) -> Result<ExitCode, Failure> {
    if json {
        let mut out = Out::default();
        out.line(super::to_json(&json!({
            "error": {"code": code, "message": message}
        }))?);
        out.emit()?;
    }
    eprint_line(format_args!(
        "refused: {} ({})",
        report::clean(code),
        report::clean(message)
    ));
    match code {
        "conflict" => eprint_line(
            "hint: read the token again (`tessera token show`) and retry with its revision",
        ),
        "forbidden" => eprint_line(format_args!(
            "hint: managing tokens needs a super-admin token in {}",
            remote::TOKEN_VAR
        )),
        _ => {}
    }
    Ok(ExitCode::from(EXIT_REFUSED))
}
