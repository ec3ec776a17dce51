//! The `tessera` command-line tool (feature `cli`): the clap definitions, dispatch and exit
//! codes. The binary's `main` only calls [`main`].
//!
//! | module | owns |
//! |---|---|
//! | `keys` | `tessera keys generate` and `tessera keys list` |
//! | `verify` | `tessera verify`: offline verification and `--require` |
//! | `inspect` | `tessera inspect`: decoding without verifying |
//! | `token` | `tessera token ...`: the token lifecycle, on a store or through a server |
//! | `remote` | `tessera token ... --server`: the HTTP client of the management API |
//! | `revoke` | `tessera revoke`: the holder of a token kills it through a server |
//! | `serve` | `tessera serve`: the HTTP service |
//! | `webhooks` | `tessera webhooks test`: a signed test event to a receiver |
//! | `input` | reading a token from the argument, `TESSERA_TOKEN` or stdin |
//! | `report` | usage failures, stdout/stderr, cleaning and redacting text, times |
//!
//! Exit codes, one rule for every command: 0 success; 1 refused by the rules (a token refused
//! or not allowed, a token request the rules refuse; for `inspect`, a token that cannot be
//! decoded) or invalid input (a token's name, permissions, role or expiry, a token that is not
//! found); 2 usage (a clap error), configuration, or an unreachable store or server. Every option also reads a `TESSERA_*` environment variable.
//! No token or secret key is ever printed except where a command's purpose is to output it.

mod input;
mod inspect;
mod keys;
mod report;
mod revoke;
mod serve;
mod token;
mod verify;
mod webhooks;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use report::{Failure, EXIT_USAGE};
use std::ffi::OsString;
use std::process::ExitCode;

/// API tokens as PASETO v4.public (Ed25519): keys, offline verification, inspection.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    long_about = "Tessera API tokens are PASETO v4.public (Ed25519) strings that any service \
                  verifies offline with public keys. This tool manages the key folder, verifies \
                  a token as a service would, and decodes one for debugging.",
    after_help = "Exit status: 0 success; 1 refused by the rules or invalid input (name, \
                  permissions, role, expiry, not found); 2 usage, configuration, or an \
                  unreachable store or server.\n\nExample:\n  tessera keys generate --keys keys\n  \
                  tessera verify --keys keys < token.txt"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the key folder: generate, list, rotate, activate and retire keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Verify a token offline against the key folder or one public key
    #[command(
        long_about = "Verify a token fully offline, as a service would: format, key id, \
                      signature, claims, issuer and times, against the key folder (--keys) or \
                      one public key (--public-key). Prints the token's id, name, version, key, \
                      times and permissions. No token state is consulted, so a deleted or \
                      regenerated token still verifies until it expires.",
        after_help = verify::AFTER_HELP
    )]
    Verify(verify::VerifyArgs),
    /// Decode a token WITHOUT verifying it, to see what it claims
    #[command(
        long_about = "Decode a token WITHOUT checking its signature: header, key id, payload \
                      and whether the payload parses as Tessera claims, with its times against \
                      now. Anyone can write a token that decodes: never trust what this shows.",
        after_help = inspect::AFTER_HELP
    )]
    Inspect(inspect::InspectArgs),
    /// Manage tokens on the store or through a server: create, list, show, update, regenerate,
    /// delete
    #[command(
        subcommand,
        long_about = "Manage tokens directly on the token store (--store, default the embedded \
                      file data/tessera.redb), as an operator on the machine that holds the \
                      store and the keys; this is how the first super-admin token is made. Or, \
                      with --server URL (TESSERA_SERVER), through a running server's HTTP API, \
                      with a super-admin token in TESSERA_TOKEN: the same commands, the same \
                      output and exit codes.",
        after_help = token::AFTER_HELP
    )]
    Token(token::TokenCommand),
    /// Revoke a token you hold, through the server that issued it (RFC 7009)
    #[command(
        long_about = "Revoke a token through the server's POST /v1/revoke: holding the token \
                      is the authority, no other credential is needed. For a token found \
                      where it should not be, or one no longer needed.",
        after_help = revoke::AFTER_HELP
    )]
    Revoke(revoke::RevokeArgs),
    /// Webhooks: send a signed test event to a receiver
    #[command(subcommand, after_help = webhooks::AFTER_HELP)]
    Webhooks(webhooks::WebhooksCommand),
    /// Run the HTTP service: management API, gateway forward-auth, introspection, public keys
    #[command(
        long_about = "Run the HTTP service on --listen (default 127.0.0.1:8080) with the token \
                      store (--store, default the embedded file data/tessera.redb) and the key \
                      folder (--keys). On a first start with the embedded store and no keys, a \
                      key pair is generated. SIGHUP reloads the key folder (a folder that does \
                      not load is refused and the keys in use stay); Ctrl-C or SIGTERM stops \
                      it after the requests in flight.",
        after_help = serve::AFTER_HELP
    )]
    Serve(serve::ServeArgs),
}

/// Run the command line of this process and give the exit code: 0 success, 1 refused or
/// invalid input, 2 usage, configuration or an unreachable store or server.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Run a command line (`args` starts with the program name) and give the exit code, as
/// [`main`] does.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(e) => return clap_exit(&e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    let result = match cli.command {
        Command::Keys(command) => keys::run(command),
        Command::Verify(args) => {
            let sub = matches.subcommand_matches("verify");
            let sources = verify::Sources {
                keys: sub.and_then(|m| m.value_source("keys")),
                public_key: sub.and_then(|m| m.value_source("public_key")),
            };
            verify::run(args, sources)
        }
        Command::Inspect(args) => inspect::run(args),
        Command::Token(command) => token::run(command),
        Command::Revoke(args) => revoke::run(args),
        Command::Webhooks(command) => webhooks::run(command),
        Command::Serve(args) => serve::run(args, matches.subcommand_matches("serve")),
    };
    result.unwrap_or_else(|failure| failure.report())
}

/// Report a clap error or print help/version. Errors may quote what was typed, so anything
/// that looks like a token or secret key is redacted first.
fn clap_exit(e: &clap::Error) -> ExitCode {
    if !e.use_stderr() {
        // --help or --version.
        return match e.print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(EXIT_USAGE),
        };
    }
    let text = report::redact(&e.render().to_string());
    report::eprint_line(text.trim_end());
    ExitCode::from(EXIT_USAGE)
}

/// Pretty JSON for stdout.
fn to_json(value: &serde_json::Value) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(format_args!("cannot write JSON: {e}")))
}
