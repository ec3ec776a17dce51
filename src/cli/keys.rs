//! `tessera keys generate` and `tessera keys list`: the key folder seen from the command
//! line. Key files, their modes and the ring's order belong to [`crate::keys`]; this module
//! only calls it and shows the result. Secret keys are never printed; public keys are.

use super::report::{eprint_line, Failure, Out};
use crate::keys::{self, KeyRing};
use chrono::{SecondsFormat, Utc};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
                      it, and tokens signed by older keys still verify. Prints the new key id \
                      alone on stdout; the secret file is mode 0600 and must stay private.",
        after_help = "Example:\n  tessera keys generate --keys /etc/tessera/keys\n  \
                      TESSERA_KEYS=/etc/tessera/keys tessera keys generate"
    )]
    Generate(GenerateArgs),
    /// List the keys in the key folder: id, status, creation time, public key
    #[command(
        long_about = "List the keys in the key folder, oldest first. STATUS is `signing` (new \
                      tokens are signed with it), `active` (its secret is here but a newer key \
                      signs; it still verifies) or `verify-only` (only its public half is \
                      here). Public keys are printed: give them to services that verify \
                      tokens (`tessera verify --public-key`).",
        after_help = "Example:\n  tessera keys list --keys /etc/tessera/keys\n  \
                      tessera keys list --json | jq -r '.keys[] | select(.status == \"signing\") | .public_key'"
    )]
    List(ListArgs),
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
    }
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
    let rows: Vec<[String; 4]> = ring
        .iter()
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
