//! `tessera token ... --server URL`: the token commands through a running server's HTTP API
//! instead of a store opened in this process.
//!
//! This module owns the `--server` options, the caller's token (from `TESSERA_TOKEN` only: a
//! flag would show in `ps` and in shell history), one request per lifecycle call through the
//! library's [`ApiClient`], and the mapping of the API's answers to the types the local mode
//! already uses ([`TokenRecord`], [`AuditRecord`]), so the token commands show both modes with
//! the same code and the output is the same.
//!
//! What an answer means for the exit code:
//! - the rules refused the request (400, 403, 404 for a token, 409, 412, 422): exit 1, with the
//!   server's code and message, as the local mode reports a refusal;
//! - the server refused the caller's token (401): exit 2, a configuration error: the command
//!   cannot work until `TESSERA_TOKEN` holds a valid token;
//! - the server could not be reached, did not answer in time, answered something that is not
//!   the Tessera API, or failed on its side (5xx): exit 2, naming the URL and what to check.
//!
//! The client keeps the token as [`crate::client`] promises: in the `Authorization` header only,
//! zeroized on drop, never in a message.

use super::outcome::{Issued, Stop};
use crate::cidr::CidrList;
use crate::cli::report::{eprint_line, Failure};
use crate::client::{ApiClient, ApiError, ClientError, ClientOptions};
use crate::lifecycle::{Expiry, NewToken, Status, TokenUpdate};
use crate::model::{AuditRecord, TokenRecord};
use crate::permissions::Permissions;
use chrono::{DateTime, Utc};
use clap::Args;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;
use zeroize::Zeroizing;

pub(crate) const TOKEN_VAR: &str = "TESSERA_TOKEN";

/// How long to wait for a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take from start to end of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most audit entries the server gives in one page (its `limit` ceiling).
const AUDIT_PAGE: u64 = 1000;

/// Where to send the commands instead of opening a store.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// Manage tokens through the server at this URL (`https://tessera.example.com`) instead of
    /// a store; the caller's super-admin token comes from TESSERA_TOKEN
    #[arg(
        long,
        value_name = "URL",
        env = "TESSERA_SERVER",
        conflicts_with = "store"
    )]
    pub(crate) server: Option<String>,
    /// With --server: also trust the CA certificates in this PEM file (a private CA)
    #[arg(long, value_name = "FILE", env = "TESSERA_SERVER_CA")]
    pub(crate) server_ca: Option<PathBuf>,
}

/// A token server's management API, with the caller's token.
#[derive(Debug)]
pub(crate) struct Remote {
    client: ApiClient,
}

/// Which kind of path a request goes to: a 404 from a collection means the server has no
/// such API (a verify-only instance, or not Tessera at all), not that a token is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Collection,
    Token,
}

/// A record as the API gives it (docs/http-api.md). `status` is left out: it is recomputed at the time
/// of showing, as the local mode does.
#[derive(Deserialize)]
struct RecordBody {
    id: Uuid,
    name: String,
    description: String,
    permissions: Permissions,
    #[serde(default)]
    allowed_cidrs: CidrList,
    version: u32,
    revision: u64,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    last_used_at: Option<DateTime<Utc>>,
    #[serde(default)]
    last_used_from: Option<String>,
}

impl From<RecordBody> for TokenRecord {
    fn from(body: RecordBody) -> Self {
        TokenRecord {
            id: body.id,
            name: body.name,
            description: body.description,
            permissions: body.permissions,
            allowed_cidrs: body.allowed_cidrs,
            // Not in the API: only the store's own lifecycle reads it.
            cidrs_updated: false,
            version: body.version,
            revision: body.revision,
            created_at: body.created_at,
            created_by: body.created_by,
            updated_at: body.updated_at,
            updated_by: body.updated_by,
            expires_at: body.expires_at,
            // The API does not say how long older versions stay valid; nothing a client shows
            // reads it, and the current expiry is its least value.
            issued_until: body.expires_at,
            kid: body.kid,
            last_used_at: body.last_used_at,
            last_used_from: body.last_used_from,
        }
    }
}

#[derive(Deserialize)]
struct MintedBody {
    token: String,
    record: RecordBody,
}

#[derive(Deserialize)]
struct ListBody {
    tokens: Vec<RecordBody>,
}

#[derive(Deserialize)]
struct AuditBody {
    entries: Vec<AuditRecord>,
    next_after: Option<u64>,
}

/// The PEM bundle `--server-ca` names, if any.
pub(crate) fn read_server_ca(path: Option<&std::path::Path>) -> Result<Option<Vec<u8>>, Failure> {
    path.map(|path| {
        std::fs::read(path).map_err(|e| {
            Failure::new(format_args!(
                "cannot read --server-ca {}: {e}",
                path.display()
            ))
        })
    })
    .transpose()
}

impl Remote {
    /// The server at `url`, with the caller's token from `TESSERA_TOKEN` and, when given,
    /// the extra CA certificates in `ca`.
    pub(crate) fn from_env(args: &ServerArgs, url: &str) -> Result<Self, Failure> {
        let token = std::env::var(TOKEN_VAR).unwrap_or_default();
        Self::new(url, Zeroizing::new(token), args.server_ca.as_deref())
    }

    fn new(
        url: &str,
        token: Zeroizing<String>,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, Failure> {
        let hint = "e.g. --server https://tessera.example.com or --server http://127.0.0.1:8080";
        let ca_pem = read_server_ca(ca)?;
        let options = ClientOptions {
            connect_timeout: CONNECT_TIMEOUT,
            timeout: REQUEST_TIMEOUT,
            ca_pem,
        };
        let missing = token.trim().is_empty();
        let client = ApiClient::new(url, token, &options).map_err(|e| match e {
            ClientError::BadUrl(problem) => {
                let failure = Failure::new(format_args!("--server {problem}"));
                if problem.contains("credentials") {
                    failure.hint(format_args!("the caller's token goes in {TOKEN_VAR}"))
                } else {
                    failure.hint(hint)
                }
            }
            ClientError::BadToken if missing => Failure::new(format_args!(
                "--server needs the caller's token in {TOKEN_VAR}, which is not set"
            ))
            .hint(format_args!(
                "export {TOKEN_VAR} with a super-admin token (e.g. `read -rs {TOKEN_VAR} && \
                 export {TOKEN_VAR}`); it is never taken as a flag, which would show in `ps` \
                 and shell history"
            )),
            ClientError::BadToken => Failure::new(format_args!(
                "{TOKEN_VAR} is not a token: it holds spaces, control or non-ASCII characters"
            ))
            .hint(format_args!("set {TOKEN_VAR} to the token string alone")),
            ClientError::Setup(problem) if ca.is_some() => Failure::new(format_args!(
                "--server-ca {}: {problem}",
                ca.map(|p| p.display().to_string()).unwrap_or_default()
            )),
            e => Failure::new(e),
        })?;
        let remote = Self { client };
        remote.warn_if_cleartext();
        Ok(remote)
    }

    /// The token is a bearer credential: over plain HTTP anyone on the path can take it.
    fn warn_if_cleartext(&self) {
        let base = self.client.base();
        let Ok(url) = Url::parse(base) else {
            return;
        };
        let host = url.host_str().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if url.scheme() == "http" && !loopback {
            eprint_line(format_args!(
                "warning: {TOKEN_VAR} goes to {base} over plain http, readable on the way; use \
                 https:// beyond this machine"
            ));
        }
    }

    /// `POST /v1/tokens`.
    pub(crate) async fn create(&self, new: &NewToken) -> Result<Issued, Stop> {
        let body = json!({
            "name": new.name,
            "description": new.description,
            "expires": new.expires.to_string(),
            "permissions": new.permissions,
            "allowed_cidrs": new.allowed_cidrs,
        });
        let minted: MintedBody = self
            .call(
                Method::POST,
                "/v1/tokens",
                Scope::Collection,
                None,
                Some(&body),
            )
            .await?;
        Ok(issued(minted))
    }

    /// `GET /v1/tokens`, with the status filter.
    pub(crate) async fn list(&self, status: Option<Status>) -> Result<Vec<TokenRecord>, Stop> {
        let path = match status {
            None => "/v1/tokens",
            Some(Status::Active) => "/v1/tokens?status=active",
            Some(Status::Expired) => "/v1/tokens?status=expired",
        };
        let list: ListBody = self
            .call(Method::GET, path, Scope::Collection, None, None)
            .await?;
        Ok(list.tokens.into_iter().map(TokenRecord::from).collect())
    }

    /// The live token named `name`. The API looks tokens up by id only; names are unique among
    /// live tokens, so the listing has at most one.
    pub(crate) async fn get_by_name(&self, name: &str) -> Result<Option<TokenRecord>, Stop> {
        Ok(self.list(None).await?.into_iter().find(|r| r.name == name))
    }

    /// `GET /v1/tokens/{id}`.
    pub(crate) async fn get(&self, id: Uuid) -> Result<TokenRecord, Stop> {
        let record: RecordBody = self
            .call(Method::GET, &token_path(id, ""), Scope::Token, None, None)
            .await?;
        Ok(record.into())
    }

    /// `PATCH /v1/tokens/{id}`, with `If-Match` when `expect` names a revision.
    pub(crate) async fn update(
        &self,
        id: Uuid,
        update: &TokenUpdate,
        expect: Option<u64>,
    ) -> Result<TokenRecord, Stop> {
        let mut body = serde_json::Map::new();
        if let Some(description) = &update.description {
            body.insert("description".into(), Value::from(description.as_str()));
        }
        if let Some(permissions) = &update.permissions {
            body.insert("permissions".into(), json!(permissions));
        }
        if let Some(cidrs) = &update.allowed_cidrs {
            body.insert("allowed_cidrs".into(), json!(cidrs));
        }
        let record: RecordBody = self
            .change(Method::PATCH, id, "", expect, &Value::Object(body))
            .await?;
        Ok(record.into())
    }

    /// `POST /v1/tokens/{id}/regenerate`, with `If-Match` when `expect` names a revision.
    pub(crate) async fn regenerate(
        &self,
        id: Uuid,
        expires: Expiry,
        allowed_cidrs: Option<&CidrList>,
        expect: Option<u64>,
    ) -> Result<Issued, Stop> {
        let mut body = json!({ "expires": expires.to_string() });
        if let Some(cidrs) = allowed_cidrs {
            body["allowed_cidrs"] = json!(cidrs);
        }
        let minted: MintedBody = self
            .change(Method::POST, id, "/regenerate", expect, &body)
            .await?;
        Ok(issued(minted))
    }

    /// `DELETE /v1/tokens/{id}`, with `If-Match` when `expect` names a revision.
    pub(crate) async fn delete(&self, id: Uuid, expect: Option<u64>) -> Result<(), Stop> {
        let path = token_path(id, "");
        self.call(Method::DELETE, &path, Scope::Token, expect, None)
            .await
    }

    /// Up to `limit` audit entries after `after`, in as many `GET /v1/audit` pages as needed.
    pub(crate) async fn audit(&self, after: u64, limit: u64) -> Result<Vec<AuditRecord>, Stop> {
        let mut entries = Vec::new();
        let mut after = after;
        loop {
            let left = limit.saturating_sub(entries.len() as u64);
            if left == 0 {
                return Ok(entries);
            }
            let page: AuditBody = self
                .call(
                    Method::GET,
                    &format!("/v1/audit?after={after}&limit={}", left.min(AUDIT_PAGE)),
                    Scope::Collection,
                    None,
                    None,
                )
                .await?;
            entries.extend(page.entries);
            match page.next_after {
                // A full page; a server that does not move forward is not followed round.
                Some(next) if next > after => after = next,
                _ => return Ok(entries),
            }
        }
    }

    /// A change to one token, refused unless the record is at revision `expect` (when given).
    async fn change<T: DeserializeOwned>(
        &self,
        method: Method,
        id: Uuid,
        rest: &str,
        expect: Option<u64>,
        body: &Value,
    ) -> Result<T, Stop> {
        let path = token_path(id, rest);
        self.call(method, &path, Scope::Token, expect, Some(body))
            .await
    }

    /// Send a request; the decoded answer when it succeeds (`()` takes a 204), else the
    /// refusal or failure it means.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        scope: Scope,
        expect: Option<u64>,
        body: Option<&Value>,
    ) -> Result<T, Stop> {
        self.client
            .call(method, path, expect, body, None)
            .await
            .map_err(|e| self.stop(e, scope))
    }

    /// What a failed call means for the command (see the module docs).
    fn stop(&self, error: ClientError, scope: Scope) -> Stop {
        match error {
            ClientError::Status { status, error, .. } => self.refused(status, error, scope),
            ClientError::Unreachable { .. } => Stop::Failed(Failure::new(error).hint(
                "check --server (or TESSERA_SERVER): the URL, that `tessera serve` runs there, \
                 and for https:// its certificate (--server-ca for a private CA)",
            )),
            ClientError::Unreadable { .. } => Stop::Failed(
                Failure::new(error)
                    .hint("check that --server names a Tessera server of the same version"),
            ),
            other => Stop::Failed(Failure::new(other)),
        }
    }

    /// What an unsuccessful answer means (see the module docs).
    fn refused(&self, status: StatusCode, error: Option<ApiError>, scope: Scope) -> Stop {
        let base = self.client.base();
        if status.is_redirection() {
            return Stop::Failed(
                Failure::new(format_args!(
                    "the server at {base} answered {status}, a redirect, which is not followed"
                ))
                .hint("point --server at the URL the server is reached at (https:// if it redirects there)"),
            );
        }
        let Some(ApiError { code, message }) = error else {
            return Stop::Failed(
                Failure::new(format_args!(
                    "the server at {base} answered {status} without a Tessera error"
                ))
                .hint("check that --server (or TESSERA_SERVER) names a Tessera server"),
            );
        };
        match status {
            StatusCode::UNAUTHORIZED => Stop::Failed(
                // The message only repeats the code ("the token was refused: <code>").
                Failure::new(format_args!(
                    "the server at {base} refused the token in {TOKEN_VAR}: {code}"
                ))
                .hint(format_args!(
                    "set {TOKEN_VAR} to a valid super-admin token (deleted, regenerated and \
                     expired tokens are refused)"
                )),
            ),
            StatusCode::NOT_FOUND if scope == Scope::Collection => Stop::Failed(
                Failure::new(format_args!(
                    "the server at {base} has no token management API: {message}"
                ))
                .hint("a verify-only instance serves none: point --server at an issuer"),
            ),
            StatusCode::BAD_REQUEST
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::CONFLICT
            | StatusCode::PRECONDITION_FAILED
            | StatusCode::UNPROCESSABLE_ENTITY => Stop::Refused { code, message },
            _ => {
                let hint = if status.is_server_error() {
                    "the server failed on its side: see its log"
                } else {
                    "check that --server names a Tessera server of the same version"
                };
                Stop::Failed(
                    Failure::new(format_args!(
                        "the server at {base} could not complete the request: {status}, {code} \
                         ({message})"
                    ))
                    .hint(hint),
                )
            }
        }
    }
}

fn issued(minted: MintedBody) -> Issued {
    Issued {
        token: Zeroizing::new(minted.token),
        record: minted.record.into(),
    }
}

fn token_path(id: Uuid, rest: &str) -> String {
    format!("/v1/tokens/{id}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_url_with_credentials_is_refused_without_showing_them() {
        let token = Zeroizing::new("v4.public.abc".to_owned());
        let failure =
            Remote::new("https://admin:hunter2@tessera.example.com", token, None).unwrap_err();
        let text = format!("{failure:?}");
        assert!(text.contains("holds credentials"), "{text}");
        assert!(text.contains(TOKEN_VAR), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_missing_or_malformed_token_is_a_usage_error_that_does_not_quote_it() {
        let missing = Remote::new("http://127.0.0.1:1", Zeroizing::new("  ".into()), None);
        let text = format!("{:?}", missing.unwrap_err());
        assert!(text.contains("TESSERA_TOKEN, which is not set"), "{text}");
        let bad = Remote::new(
            "http://127.0.0.1:1",
            Zeroizing::new("v4.public.secret part".into()),
            None,
        );
        let text = format!("{:?}", bad.unwrap_err());
        assert!(text.contains("is not a token"), "{text}");
        assert!(!text.contains("secret part"), "{text}");
    }
}
