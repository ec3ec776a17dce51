//! The token state over HTTP: `GET /v1/state` serves an issuer's state map and its change feed
//! to verifiers that should not hold store credentials, and [`HttpStateSource`] is the
//! verifier's side, a [`StateSource`] for the state mirror.
//!
//! `GET /v1/state` gives the snapshot `{"revision", "entries": [{"id", "entry"}]}`;
//! `GET /v1/state?since=REV&wait=SECONDS` long-polls for the changes after `REV`:
//! `{"changes": [{"revision", "id", "entry"}]}` (empty after the wait when nothing changed), or
//! `{"reload": true}` when the follower must load the snapshot again. Entries are the store's
//! own ([`StateRecord`]), so the follower applies exactly what the store holds. Reading the
//! state takes a `tessera` `read-state` token (or a super-admin): it names every deleted token
//! and every updated permission, but it changes nothing, so an edge needs no more.

use super::auth::StateReader;
use super::error::ApiError;
use super::handlers::Params;
use super::openapi::{errors, schemas};
use crate::client::{ApiClient, ClientOptions};
use crate::mirror::StateSource;
use crate::model::{FeedPage, StateChange, StateRecord, StateSnapshot};
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use axum::Json;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use zeroize::Zeroizing;

/// The longest a long-poll waits, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    #[param(format = "uint64", minimum = 0, maximum = 18446744073709551615_u64)]
    since: Option<u64>,
    /// Seconds to wait for a change (with `since`); default 0.
    #[param(format = "uint64", minimum = 0, maximum = 30)]
    wait: Option<u64>,
}

// `#[param]` takes literals only: `wait`'s `maximum` above must be the constant.
const _: () = assert!(MAX_WAIT_SECS == 30);

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = StateSnapshot)]
#[serde(deny_unknown_fields)]
pub(super) struct SnapshotBody {
    #[schema(format = "uint64")]
    revision: u64,
    #[schema(inline)]
    entries: Vec<EntryBody>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    id: Uuid,
    entry: StateRecord,
}

/// The changes after a revision, or a reload; its schema is `StateChanges`
/// (`openapi::schemas`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangesBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changes: Option<Vec<StateChange>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    reload: bool,
}

/// `GET /v1/state[?since=REV&wait=SECONDS]`
#[utoipa::path(
    get,
    path = "/v1/state",
    operation_id = "tokenState",
    tag = "state",
    summary = "The token state, for verifiers that should not hold store credentials \
               (tessera read-state, or super-admin).",
    description = format!(
        "Without `since`: the snapshot of the state map. With `since`: the changes after that \
         revision, waiting up to `wait` seconds (at most {MAX_WAIT_SECS}) for one, or \
         `{{\"reload\": true}}` when the follower must load the snapshot again."
    ),
    security(("bearer" = []), ("token" = [])),
    params(StateQuery),
    responses(
        (status = OK, description = "The snapshot (without `since`) or the changes.",
         body = inline(schemas::SnapshotOrChanges)),
        errors::Management, errors::BadRequest
    )
)]
pub async fn state(
    reader: StateReader,
    Params(query): Params<StateQuery>,
) -> Result<Response, ApiError> {
    let Some(since) = query.since else {
        if query.wait.is_some() {
            return Err(ApiError::bad_request(
                "wait goes with since: a snapshot does not wait",
            ));
        }
        let snapshot = reader.snapshot().await?;
        let entries = snapshot
            .entries
            .into_iter()
            .map(|(id, entry)| EntryBody { id, entry })
            .collect();
        return Ok(Json(SnapshotBody {
            revision: snapshot.revision,
            entries,
        })
        .into_response());
    };
    let wait = query.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::bad_request(format!(
            "wait is at most {MAX_WAIT_SECS} seconds"
        )));
    }
    let body = match reader.changes(since, Duration::from_secs(wait)).await? {
        FeedPage::Changes(changes) => ChangesBody {
            changes: Some(changes),
            reload: false,
        },
        FeedPage::Reload => ChangesBody {
            changes: None,
            reload: true,
        },
    };
    Ok(Json(body).into_response())
}

/// A verifier's view of an issuer's `/v1/state`.
pub struct HttpStateSource {
    client: ApiClient,
}

impl std::fmt::Debug for HttpStateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStateSource")
            .field("base", &self.client.base())
            .finish_non_exhaustive()
    }
}

impl HttpStateSource {
    /// Follow the issuer at `base` (`http(s)://host:port`) with a token allowed to read the
    /// state.
    pub fn new(base: &str, token: &str) -> Result<Self, StoreError> {
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(3),
            ..ClientOptions::default()
        };
        let client = ApiClient::new(base, Zeroizing::new(token.to_owned()), &options)
            .map_err(|e| StoreError::Config(format!("the state source {base:?}: {e}")))?;
        Ok(Self { client })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        timeout: Duration,
    ) -> Result<T, StoreError> {
        let path = format!("/v1/state{query}");
        // A refused token is a configuration problem, not an outage, but the mirror treats
        // both alike: it keeps trying and fails closed past its bound.
        self.client
            .call(Method::GET, &path, None, None, Some(timeout))
            .await
            .map_err(|e| StoreError::Unavailable(format!("{path}: {e}")))
    }
}

impl StateSource for HttpStateSource {
    async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        let body: SnapshotBody = self.get("", Duration::from_secs(60)).await?;
        Ok(StateSnapshot {
            revision: body.revision,
            entries: body.entries.into_iter().map(|e| (e.id, e.entry)).collect(),
        })
    }

    async fn changes_since(&self, revision: u64, wait: Duration) -> Result<FeedPage, StoreError> {
        // Whole seconds, rounded up so a short wait still waits rather than spins.
        let secs = wait
            .as_millis()
            .div_ceil(1000)
            .min(u128::from(MAX_WAIT_SECS)) as u64;
        let body: ChangesBody = self
            .get(
                &format!("?since={revision}&wait={secs}"),
                Duration::from_secs(secs + 5),
            )
            .await?;
        match (body.reload, body.changes) {
            (true, _) => Ok(FeedPage::Reload),
            (false, Some(changes)) => {
                // The contract says in order and without gaps; a server that breaks it is
                // treated as a gap, which makes the mirror reload.
                let in_order = changes
                    .iter()
                    .enumerate()
                    .all(|(i, c)| c.revision == revision + 1 + i as u64);
                Ok(if in_order {
                    FeedPage::Changes(changes)
                } else {
                    FeedPage::Reload
                })
            }
            (false, None) => Ok(FeedPage::Reload),
        }
    }
}
