//! `tessera keys generate|list|rotate|activate|retire`: the key folder seen from the command
//! line. Key files, their modes, the status file and the ring's order belong to
//! [`crate::keys`]; this module only calls it and shows the result, and for `retire` asks the
//! token store how many live tokens the key signed. Secret keys are never printed; public keys
//! are.

use super::report::{eprint_line, Failure, Out};
use super::token::StoreArg;
use crate::keys::{self, KeyRing, KeyStatus};
use crate::lifecycle::TokenService;
use crate::store::KeyUse;
use chrono::{SecondsFormat, Utc};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// What to do after a change of the key folder, for every process that loads it.
const RELOAD: &str = "copy the key folder to every instance that has its own copy (edges: the \
    public files and keys.status), then send SIGHUP to every `tessera serve` (`kill -HUP PID`): \
    each reloads the folder and logs `SIGHUP: reloaded the key folder`";

/// The key folder option, shared by every command that reads keys.
#[derive(Debug, Args)]
pub(crate) struct KeysDir {
    /// The key folder: one `<created>-<id>.k4.secret` / `.k4.public` pair per key. Secret
    /// files must be mode 0600
    #[arg(long, value_name = "DIR", env = "TESSERA_KEYS", default_value = "keys")]
    pub(crate) keys: PathBuf,
}

/// `tessera keys ...`
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a new Ed25519 key pair; it becomes the signing key
    #[command(
        long_about = "Generate a new Ed25519 key pair in the key folder (created, mode 0700, if \
                      missing). The new key becomes the signing key: new tokens are signed with \
                      it, and tokens signed by older keys still verify. With several instances, \
                      use `tessera keys rotate` instead: an instance that has not loaded the \
                      new key refuses its tokens. Prints the new key id alone on stdout; the \
                      secret file is mode 0600 and must stay private.",
        after_help = "Example:\n  tessera keys generate --keys /etc/tessera/keys\n  \
                      TESSERA_KEYS=/etc/tessera/keys tessera keys generate"
    )]
    Generate(GenerateArgs),
    /// List the keys in the key folder: id, status, creation time, public key
    #[command(
        long_about = "List the keys in the key folder, oldest first, retired keys last. STATUS \
                      is `signing` (new tokens are signed with it), `staged` (made by `tessera \
                      keys rotate`: it verifies but does not sign yet), `active` (its secret \
                      is here but another key signs; it verifies), `verify-only` (only its \
                      public half is here; it verifies) or `retired` (`tessera keys retire`: \
                      it no longer verifies). Public keys are printed: give them to services \
                      that verify tokens (`tessera verify --public-key`).",
        after_help = "Example:\n  tessera keys list --keys /etc/tessera/keys\n  \
                      tessera keys list --json | jq -r '.keys[] | select(.status == \"signing\") | .public_key'"
    )]
    List(ListArgs),
    /// Stage a new key pair: every instance verifies with it once reloaded, none signs with it
    #[command(
        long_about = "Make a new Ed25519 key pair in the key folder, staged: instances that \
                      load the folder (at start, or on SIGHUP) verify tokens signed by it and \
                      publish it at /v1/keys, but keep signing with the current signing key. \
                      Once every instance has reloaded it, make it the signing key with \
                      `tessera keys activate`. The status lives in the folder's keys.status \
                      file, so copy the whole folder. Prints the new key id alone on stdout.",
        after_help = "Example:\n  tessera keys rotate --keys /etc/tessera/keys\n  \
                      The whole procedure: docs/operations.md, \"Rotating keys\"."
    )]
    Rotate(GenerateArgs),
    /// Make a key the signing key
    #[command(
        long_about = "Make KID (a k4.pid, or a unique prefix of at least 8 characters) the \
                      signing key: instances sign new tokens with it once they reload the \
                      folder (SIGHUP). The key that signed before stays trusted (`active`). Do \
                      it only when every instance, edges included, has loaded the key (it shows \
                      as `staged` at their /v1/keys): an instance that has not refuses the new \
                      tokens as `unknown_key`.",
        after_help = "Example:\n  tessera keys activate --keys /etc/tessera/keys k4.pid.Yj9vij4p"
    )]
    Activate(KidArgs),
    /// Stop trusting a key; refused while tokens it signed may be live
    #[command(
        long_about = "Retire KID (a k4.pid, or a unique prefix of at least 8 characters): once \
                      instances reload the folder (SIGHUP), tokens signed by it are refused \
                      (`unknown_key`) and /v1/keys no longer lists it. Refused for the signing \
                      key, and while the token store holds tokens that it may have signed and \
                      that have not expired: the error says how many and until when. Records \
                      written before records kept their key id count against every key. Wait, \
                      regenerate or delete those tokens, or pass --force to retire the key \
                      anyway (its tokens then stop working). Opens the store named by --store, \
                      as `tessera token` does; the embedded store is held by a running \
                      `tessera serve`, so stop it for the check, or use --force.",
        after_help = "Example:\n  tessera keys retire --keys /etc/tessera/keys --store redis://127.0.0.1:6379/0 k4.pid.Yj9vij4p"
    )]
    Retire(RetireArgs),
}

/// Options of `tessera keys activate`.
#[derive(Debug, Args)]
pub(crate) struct KidArgs {
    #[command(flatten)]
    dir: KeysDir,
    /// The key: its k4.pid, or a unique prefix of at least 8 characters (the part of the file
    /// name after the date will do)
    #[arg(value_name = "KID")]
    kid: String,
}

/// Options of `tessera keys retire`.
#[derive(Debug, Args)]
pub(crate) struct RetireArgs {
    #[command(flatten)]
    key: KidArgs,
    #[command(flatten)]
    store: StoreArg,
    /// Retire the key even though tokens it signed may still be live (they stop working), and
    /// without opening the store
    #[arg(long)]
    force: bool,
}

/// Options of `tessera keys generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    dir: KeysDir,
}

/// Options of `tessera keys list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    dir: KeysDir,
    /// Print `{"keys": [{"kid", "status", "created_at", "public_key"}]}` instead of a table
    #[arg(long, env = "TESSERA_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    json: bool,
}

/// Run a `keys` subcommand.
pub(crate) fn run(command: KeysCommand) -> Result<ExitCode, Failure> {
    match command {
        KeysCommand::Generate(args) => generate(&args.dir.keys),
        KeysCommand::List(args) => list(&args.dir.keys, args.json),
        KeysCommand::Rotate(args) => rotate(&args.dir.keys),
        KeysCommand::Activate(args) => activate(&args.dir.keys, &args.kid),
        KeysCommand::Retire(args) => retire(&args),
    }
}

fn rotate(dir: &Path) -> Result<ExitCode, Failure> {
    let made = keys::rotate_into(dir, Utc::now())?;
    let mut out = Out::default();
    out.line(&made.id);
    out.emit()?;
    eprint_line(format_args!(
        "staged {} (secret key {}, mode 0600): instances verify with it once they reload the \
         folder; the signing key has not changed",
        made.id,
        made.secret_path.display()
    ));
    eprint_line(format_args!(
        "next: {RELOAD}; when every instance lists it as `staged` at /v1/keys, run `tessera \
         keys activate {}`",
        made.id
    ));
    Ok(ExitCode::SUCCESS)
}

fn activate(dir: &Path, kid: &str) -> Result<ExitCode, Failure> {
    let kid = keys::activate(dir, kid)?;
    eprint_line(format_args!(
        "{kid} is now the signing key of {} (the key that signed before still verifies)",
        dir.display()
    ));
    eprint_line(format_args!(
        "next: {RELOAD}; until an instance reloads, it keeps signing with the old key"
    ));
    Ok(ExitCode::SUCCESS)
}

fn retire(args: &RetireArgs) -> Result<ExitCode, Failure> {
    let dir = &args.key.dir.keys;
    let kid = keys::retirable(dir, &args.key.kid)?;
    if args.force {
        eprint_line(format_args!(
            "--force: not asking the store; tokens {kid} signed stop working once instances \
             reload"
        ));
    } else {
        let used = key_use(&args.store.store, kid.as_str())?;
        if used.tokens > 0 {
            return Err(Failure::invalid(still_used(kid.as_str(), &used)).hint(
                "wait until they expire, regenerate them (`tessera token regenerate`: the new \
                 version is signed by the signing key) or delete them, then retire again; or \
                 retire with --force and they stop working",
            ));
        }
    }
    let kid = keys::retire(dir, kid.as_str())?;
    eprint_line(format_args!(
        "retired {kid}: instances stop trusting it and stop publishing it once they reload; \
         its files stay in {} (delete them when you wish)",
        dir.display()
    ));
    eprint_line(format_args!("next: {RELOAD}"));
    Ok(ExitCode::SUCCESS)
}

/// The live tokens `kid` may have signed, from the store at `url`.
fn key_use(url: &str, kid: &str) -> Result<KeyUse, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format_args!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let store = super::token::open_store(url, Default::default(), LOCKED_FOR_RETIRE).await?;
        TokenService::without_issuer(Arc::new(store))
            .key_use(kid)
            .await
            .map_err(|e| Failure::new(crate::redact::url(&e.to_string())))
    })
}

/// The way round the embedded store's lock for `retire`.
const LOCKED_FOR_RETIRE: &str = "`tessera serve` holds the embedded store: stop it for the \
    check (retire, then start it again), or look at `tessera token list --server URL` yourself \
    and retire with --force";

/// Why a key cannot be retired yet.
fn still_used(kid: &str, used: &KeyUse) -> String {
    let until = match (used.never_expires, used.latest_expiry) {
        (true, _) => "at least one never expires".to_owned(),
        (false, Some(at)) => format!(
            "the last expires at {}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        (false, None) => "expiry unknown".to_owned(),
    };
    let legacy = match used.unattributed {
        0 => String::new(),
        n => format!(
            " ({n} of them from before records kept their key id, so they count against every \
             key; regenerating them records the key)"
        ),
    };
    let (plural, them) = if used.tokens == 1 {
        ("", "it")
    } else {
        ("s", "them")
    };
    format!(
        "{kid} may have signed {} live token{plural}{legacy}: {until}; retiring it now would \
         make {them} fail",
        used.tokens,
    )
}

fn generate(dir: &Path) -> Result<ExitCode, Failure> {
    let made = keys::generate_into(dir, Utc::now())?;
    let mut out = Out::default();
    out.line(&made.id);
    out.emit()?;
    eprint_line(format_args!(
        "wrote the secret key to {} (mode 0600: keep it private; whoever reads it can sign tokens)",
        made.secret_path.display()
    ));
    eprint_line(format_args!(
        "wrote the public key to {} (public: give it to the services that verify tokens)",
        made.public_path.display()
    ));
    // Say which key signs as the folder now loads, rather than assume it.
    let ring = KeyRing::load_dir(dir).map_err(|e| {
        Failure::new(format_args!(
            "the new key was written, but the key folder does not load: {e}"
        ))
    })?;
    match ring.signing() {
        Some(signer) if signer.public.id() == &made.id => eprint_line(format_args!(
            "{} is now the signing key: new tokens are signed with it; tokens signed by older keys still verify",
            made.id
        )),
        Some(signer) => eprint_line(format_args!(
            "warning: {} still signs: it is dated later than the new key (check this machine's clock)",
            signer.public.id()
        )),
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn list(dir: &Path, json: bool) -> Result<ExitCode, Failure> {
    let ring = KeyRing::load_dir(dir)?;
    let retired = ring.retired().map(|key| (key, KeyStatus::Retired));
    let rows: Vec<[String; 4]> = ring
        .iter()
        .chain(retired)
        .map(|(key, status)| {
            [
                key.public.id().to_string(),
                status.to_string(),
                key.created.to_rfc3339_opts(SecondsFormat::Secs, true),
                key.public.to_paserk(),
            ]
        })
        .collect();
    let mut out = Out::default();
    if json {
        let keys: Vec<_> = rows
            .iter()
            .map(|[kid, status, created, public]| {
                serde_json::json!({
                    "kid": kid, "status": status, "created_at": created, "public_key": public,
                })
            })
            .collect();
        out.line(super::to_json(&serde_json::json!({ "keys": keys }))?);
    } else {
        let header = ["KEY ID", "STATUS", "CREATED", "PUBLIC KEY"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let [kid, status, created, public] = row;
            out.line(format_args!(
                "{kid:<w0$}  {status:<w1$}  {created:<w2$}  {public}",
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            ));
        }
    }
    out.emit()?;
    Ok(ExitCode::SUCCESS)
}
