//! `tessera token create|list|show|update|regenerate|delete|audit`: the token lifecycle run
//! directly on a store, for an operator on the machine that holds the store and the keys (and
//! to bootstrap the first super-admin token before any server runs).
//!
//! The rules live in [`crate::lifecycle`]; this module parses flags, calls it and shows the
//! result. A new token string goes to stdout alone (or inside `--json`); everything else goes
//! to stderr, so `TOKEN=$(tessera token create ...)` captures exactly the token.
//!
//! Exit codes: 0 done; 1 refused by the rules (invalid input, name taken, not found, conflict,
//! too large); 2 usage or configuration error (flags, keys, an unreachable store).

use super::keys::KeysDir;
use super::report::{self, eprint_line, Failure, Out, EXIT_REFUSED};
use crate::issuer::Issuer;
use crate::keys::{KeyError, KeyRing};
use crate::lifecycle::{
    Caller, Expiry, LifecycleError, Minted, NewToken, Policy, Status, TokenService, TokenUpdate,
};
use crate::permissions::Permissions;
use crate::store::{AnyStore, TokenRecord, DEFAULT_STORE_URL};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::Read as _;
use std::process::ExitCode;
use std::sync::Arc;
use uuid::Uuid;

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

#[derive(Debug, Args)]
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
    runtime.block_on(dispatch(command))
}

async fn dispatch(command: TokenCommand) -> Result<ExitCode, Failure> {
    let caller = Caller::local();
    match command {
        TokenCommand::Create(args) => {
            let service = service(&args.common.store, Some(&args.keys))
                .await?
                .with_policy(args.policy.policy());
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
            match service.create(&caller, new).await {
                Ok(minted) => {
                    prune(&service).await;
                    minted_out(&service, &minted, "created", args.common.json)
                }
                Err(e) => refusal(e, args.common.json),
            }
        }
        TokenCommand::List(args) => {
            let service = service(&args.common.store, None).await?;
            let records = match service.list().await {
                Ok(records) => records,
                Err(e) => return refusal(e, args.common.json),
            };
            let now = service.now();
            let records: Vec<_> = records
                .iter()
                .filter(|r| match args.status.as_deref() {
                    Some("active") => r.status(now) == Status::Active,
                    Some("expired") => r.status(now) == Status::Expired,
                    _ => true,
                })
                .collect();
            list_out(&records, now, args.common.json)
        }
        TokenCommand::Show(args) => {
            let service = service(&args.common.store, None).await?;
            match find(&service, &args.token).await {
                Ok(record) => record_out(&record, service.now(), args.common.json),
                Err(e) => refusal(e, args.common.json),
            }
        }
        TokenCommand::Update(args) => {
            let service = service(&args.common.store, Some(&args.keys)).await?;
            let update = TokenUpdate {
                description: args.description,
                permissions: permissions_arg(args.super_admin, args.permissions.as_deref())?,
            };
            if update.description.is_none() && update.permissions.is_none() {
                return Err(Failure::new("nothing to update")
                    .hint("give --description, --permissions or --super-admin"));
            }
            let result = async {
                let record = find(&service, &args.token).await?;
                service
                    .update(&caller, record.id, update, args.if_revision)
                    .await
            }
            .await;
            match result {
                Ok(record) => {
                    prune(&service).await;
                    eprint_line(format_args!(
                        "updated {} (revision {}); verifiers following the token state apply it now",
                        report::clean(&record.name),
                        record.revision
                    ));
                    record_out(&record, service.now(), args.common.json)
                }
                Err(e) => refusal(e, args.common.json),
            }
        }
        TokenCommand::Regenerate(args) => {
            let service = service(&args.common.store, Some(&args.keys))
                .await?
                .with_policy(args.policy.policy());
            let expires = parse_expiry(&args.expires)?;
            let result = async {
                let record = find(&service, &args.token).await?;
                service
                    .regenerate(&caller, record.id, expires, args.if_revision)
                    .await
            }
            .await;
            match result {
                Ok(minted) => {
                    prune(&service).await;
                    minted_out(&service, &minted, "regenerated", args.common.json)
                }
                Err(e) => refusal(e, args.common.json),
            }
        }
        TokenCommand::Delete(args) => {
            let service = service(&args.common.store, None).await?;
            let result = async {
                let record = find(&service, &args.token).await?;
                service.delete(&caller, record.id, args.if_revision).await
            }
            .await;
            match result {
                Ok(record) => {
                    prune(&service).await;
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
                Err(e) => refusal(e, args.common.json),
            }
        }
        TokenCommand::Audit(args) => {
            let service = service(&args.common.store, None).await?;
            let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
            match service.audit(args.after, limit).await {
                Ok(entries) => {
                    let mut out = Out::default();
                    if args.common.json {
                        out.line(super::to_json(&json!({ "entries": entries }))?);
                    } else {
                        for r in &entries {
                            let e = &r.entry;
                            out.line(format_args!(
                                "{:>6}  {}  {:<10}  {:<16}  {}  by {}{}",
                                r.seq,
                                report::time(&e.at),
                                e.action.as_str(),
                                e.outcome,
                                report::clean(&target(e.target_name.as_deref(), e.target)),
                                e.actor,
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
                Err(e) => refusal(e, args.common.json),
            }
        }
    }
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

async fn find(service: &TokenService<AnyStore>, key: &str) -> Result<TokenRecord, LifecycleError> {
    if let Ok(id) = Uuid::parse_str(key) {
        return service.get(id).await;
    }
    match service.get_by_name(key).await? {
        Some(record) => Ok(record),
        None => Err(LifecycleError::Invalid {
            field: "token",
            message: format!(
                "no live token is named {:?} (give a name or an id; `tessera token list` shows them)",
                crate::permissions::shorten(key)
            ),
        }),
    }
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

/// Drop state entries nothing can need any more. Best effort: the command's own work is done.
async fn prune(service: &TokenService<AnyStore>) {
    if let Err(e) = service.prune().await {
        eprint_line(format_args!(
            "warning: could not prune the token state: {e}"
        ));
    }
}

fn minted_out(
    service: &TokenService<AnyStore>,
    minted: &Minted,
    what: &str,
    json: bool,
) -> Result<ExitCode, Failure> {
    let now = service.now();
    let record = &minted.record;
    let mut out = Out::default();
    if json {
        out.line(super::to_json(&json!({
            "token": minted.token.expose(),
            "record": record.view(now),
        }))?);
    } else {
        out.line(minted.token.expose());
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

fn list_out(records: &[&TokenRecord], now: DateTime<Utc>, json: bool) -> Result<ExitCode, Failure> {
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

/// Report a refused operation: exit 1 for a rule the request broke, 2 when the store failed.
fn refusal(error: LifecycleError, json: bool) -> Result<ExitCode, Failure> {
    if let LifecycleError::Store(e) = &error {
        return Err(Failure::new(report::redact_url(&e.to_string()))
            .hint("check that the store is reachable (--store / TESSERA_STORE)"));
    }
    if matches!(error, LifecycleError::NoSigningKey) {
        return Err(Failure::new(&error).hint("create one with `tessera keys generate`"));
    }
    if json {
        let mut out = Out::default();
        out.line(super::to_json(&json!({
            "error": {"code": error.code(), "message": error.to_string()}
        }))?);
        out.emit()?;
    }
    eprint_line(format_args!(
        "refused: {} ({})",
        error.code(),
        report::clean(&error.to_string())
    ));
    if let LifecycleError::Conflict { .. } = error {
        eprint_line(
            "hint: read the token again (`tessera token show`) and retry with its revision",
        );
    }
    Ok(ExitCode::from(EXIT_REFUSED))
}
