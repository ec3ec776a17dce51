//! Issue one token from a key folder: the README's offline demo, and an example of the
//! library's issuing API. (`tessera token create`, on a token store, will replace it.)
//!
//! ```text
//! cargo run --example issue_token -- --keys keys --name ci-bot --expires-days 30 --super-admin
//! cargo run --example issue_token -- --keys keys --name ci-bot --expires-days 30 \
//!     --permissions '{"grants": [{"resource": "devtron-app", "role": "trigger",
//!                     "project": "payments", "environments": ["prod"], "apps": ["*"]}]}'
//! ```
//!
//! The token alone goes to stdout, so it can be piped straight into `tessera verify`; a short
//! summary goes to stderr. The arguments are parsed by hand so that the example builds without
//! the `cli` feature too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tessera::{Issuer, KeyRing, Permissions, TokenSpec};

const USAGE: &str = "usage: issue_token [--keys DIR] --name NAME [--expires-days N] \
                     (--super-admin | --permissions JSON)";

fn main() -> ExitCode {
    match run(std::env::args().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (mut keys, mut name, mut days) = (PathBuf::from("keys"), None, 30_i64);
    let mut permissions: Option<Permissions> = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--keys" => keys = value()?.into(),
            "--name" => name = Some(value()?),
            "--expires-days" => {
                days = value()?
                    .parse()
                    .map_err(|_| "--expires-days takes a number of days")?
            }
            "--super-admin" => permissions = Some(Permissions::SuperAdmin),
            "--permissions" => {
                let json = value()?;
                let parsed =
                    serde_json::from_str(&json).map_err(|e| format!("--permissions: {e}"))?;
                permissions = Some(parsed);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let name = name.ok_or("--name is required")?;
    let permissions = permissions.ok_or("give --super-admin or --permissions JSON")?;
    let expires_at = chrono::Duration::try_days(days)
        .and_then(|d| chrono::Utc::now().checked_add_signed(d))
        .ok_or("--expires-days is out of range")?;

    // Every key in the folder verifies; the newest one with a secret half signs.
    let ring = Arc::new(KeyRing::load_dir(&keys).map_err(|e| e.to_string())?);
    let token = Issuer::new(ring)
        .and_then(|issuer| {
            issuer.issue(&TokenSpec {
                id: uuid::Uuid::new_v4(),
                version: 1,
                name: &name,
                expires_at: Some(expires_at),
                permissions: &permissions,
                allowed_cidrs: &Default::default(),
            })
        })
        .map_err(|e| e.to_string())?;

    println!("{}", token.expose());
    let claims = token.claims();
    eprintln!(
        "issued token {:?}: id {}, expires {}, signed by {}",
        claims.name(),
        claims.jti,
        tessera::claims::format_time(&expires_at),
        token.key_id()
    );
    Ok(())
}
