//! `tessera revoke`: the holder of a token kills it through a server's `POST /v1/revoke`
//! (RFC 7009). Holding the token is the authority: no other credential is needed, so a
//! leaked token can be killed by whoever finds it in their logs.

use super::input;
use super::report::{eprint_line, Failure};
use crate::client::{ApiClient, ClientError, ClientOptions};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Options of `tessera revoke`.
#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The token to revoke; omit it or give `-` to read it from stdin (kept out of shell
    /// history and `ps`)
    token: Option<String>,

    /// The server that issued it (`https://tessera.example.com`)
    #[arg(long, value_name = "URL", env = "TESSERA_SERVER")]
    server: String,

    /// Also trust the CA certificates in this PEM file (a private CA)
    #[arg(long, value_name = "FILE", env = "TESSERA_SERVER_CA")]
    server_ca: Option<PathBuf>,
}

pub(crate) const AFTER_HELP: &str = "\
The server answers alike whether or not the token was valid, so the answer tells nothing about
it: a valid token is refused everywhere from then on, as on delete, and the audit trail records
`revoked` by the token itself.

Examples:
  tessera revoke --server https://tessera.example.com < leaked.txt
  echo \"$TOKEN\" | tessera revoke - --server http://127.0.0.1:8080";

/// Run `tessera revoke`.
pub(crate) fn run(args: RevokeArgs) -> Result<ExitCode, Failure> {
    let server = args.server.as_str();
    let token = Zeroizing::new(input::token(args.token.as_deref())?);
    let ca_pem = super::token::read_server_ca(args.server_ca.as_deref())?;
    let options = ClientOptions {
        ca_pem,
        ..ClientOptions::default()
    };
    let client = ApiClient::new(server, token, &options).map_err(|e| match e {
        ClientError::BadUrl(problem) => Failure::new(format_args!("--server {problem}")),
        ClientError::BadToken => Failure::invalid(
            "that is not a token: it holds spaces, control or non-ASCII characters",
        ),
        e => Failure::new(e),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format_args!("cannot start the async runtime: {e}")))?;
    runtime.block_on(client.revoke_own()).map_err(|e| match e {
        ClientError::Status {
            error: Some(error), ..
        } => Failure::new(format_args!(
            "the server at {server} did not revoke: {} ({})",
            error.code, error.message
        ))
        .hint("try again later"),
        e => Failure::new(e),
    })?;
    eprint_line(format_args!(
        "sent to {server}: if the token was valid, it is now refused everywhere"
    ));
    Ok(ExitCode::SUCCESS)
}
