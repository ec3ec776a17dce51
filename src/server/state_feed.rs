//! The token state over HTTP: `GET /v1/state` serves an issuer's state map and its change feed
//! to verifiers that should not hold store credentials (`crate::http_state_source` is the
//! verifier's side).
//!
//! `GET /v1/state` gives the snapshot `{"revision", "tag", "entries": [{"id", "entry"}]}`;
//! `GET /v1/state?since=REV&tag=TAG&wait=SECONDS` long-polls for the changes after `REV`:
//! `{"changes": [{"revision", "id", "tag", "entry"}]}` (empty after the wait when nothing
//! changed), or `{"reload": true}` when the follower must load the snapshot again, which
//! includes when the change at `REV` is not the one tagged `TAG` (the store's history forked:
//! see [`FeedPosition`]). Entries are the store's
//! own ([`StateRecord`]), so the follower applies exactly what the store holds. Reading the
//! state takes a `tessera` `read-state` token (or a super-admin): it names every deleted token
//! and every updated permission, but it changes nothing, so an edge needs no more.

use super::auth::StateReader;
use super::error::ApiError;
use super::handlers::Params;
use super::openapi::{errors, schemas};
use crate::model::{FeedPage, FeedPosition, StateChange, StateRecord};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The longest a long-poll waits, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    #[param(format = "uint64", minimum = 0, maximum = 18446744073709551615_u64)]
    since: Option<u64>,
    /// The tag of the change at `since`, as the snapshot or the last change gave it (with
    /// `since`; absent means 0, the tag of changes written before tags existed).
    #[param(format = "uint64", minimum = 0, maximum = 18446744073709551615_u64)]
    tag: Option<u64>,
    /// Seconds to wait for a change (with `since`); default 0.
    #[param(format = "uint64", minimum = 0, maximum = 30)]
    wait: Option<u64>,
}

// `#[param]` takes literals only: `wait`'s `maximum` above must be the constant.
const _: () = assert!(MAX_WAIT_SECS == 30);

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = StateSnapshot)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotBody {
    #[schema(format = "uint64")]
    pub(crate) revision: u64,
    /// The tag of the change at `revision` (absent from issuers older than tags: 0).
    #[serde(default)]
    #[schema(format = "uint64")]
    pub(crate) tag: u64,
    #[schema(inline)]
    pub(crate) entries: Vec<EntryBody>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntryBody {
    pub(crate) id: Uuid,
    pub(crate) entry: StateRecord,
}

/// The changes after a revision, or a reload; its schema is `StateChanges`
/// (`openapi::schemas`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangesBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) changes: Option<Vec<StateChange>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) reload: bool,
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
        "Without `since`: the snapshot of the state map. With `since` (and `tag`, the tag of \
         the change at `since`): the changes after that revision, waiting up to `wait` seconds \
         (at most {MAX_WAIT_SECS}) for one, or `{{\"reload\": true}}` when the follower must \
         load the snapshot again: the changes it needs were trimmed, or the store no longer \
         holds the change it stands on (a failover lost it, or a backup was restored)."
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
        if query.wait.is_some() || query.tag.is_some() {
            return Err(ApiError::bad_request(
                "wait and tag go with since: a snapshot starts nowhere and does not wait",
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
            tag: snapshot.tag,
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
    let after = FeedPosition {
        revision: since,
        tag: query.tag.unwrap_or(0),
    };
    let body = match reader.changes(after, Duration::from_secs(wait)).await? {
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
