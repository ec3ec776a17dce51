//! A verifier's side of an issuer's `GET /v1/state`: a [`StateSource`] for the state mirror of
//! a verify-only edge, through the one API client. Its errors are the mirror's (a source is a
//! backend of the mirror, as a store is).

use crate::client::{ApiClient, ClientOptions};
use crate::mirror::StateSource;
use crate::model::{FeedPage, FeedPosition, StateSnapshot};
use crate::server::state_feed::{ChangesBody, SnapshotBody, MAX_WAIT_SECS};
use crate::store::StoreError;
use reqwest::Method;
use std::time::Duration;
use zeroize::Zeroizing;

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
            tag: body.tag,
            entries: body.entries.into_iter().map(|e| (e.id, e.entry)).collect(),
        })
    }

    async fn changes_since(
        &self,
        after: FeedPosition,
        wait: Duration,
    ) -> Result<FeedPage, StoreError> {
        let revision = after.revision;
        // Whole seconds, rounded up so a short wait still waits rather than spins.
        let secs = wait
            .as_millis()
            .div_ceil(1000)
            .min(u128::from(MAX_WAIT_SECS)) as u64;
        let body: ChangesBody = self
            .get(&since_query(after, secs), Duration::from_secs(secs + 5))
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

/// The query for the changes after `after`. Tag 0 is left out, so that a follower that loaded
/// a snapshot from an issuer older than tags can still follow it.
fn since_query(after: FeedPosition, wait_secs: u64) -> String {
    match after.tag {
        0 => format!("?since={}&wait={wait_secs}", after.revision),
        tag => format!("?since={}&tag={tag}&wait={wait_secs}", after.revision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_asked_for_unless_the_issuer_gave_none() {
        let at = |revision, tag| FeedPosition { revision, tag };
        assert_eq!(since_query(at(7, 42), 3), "?since=7&tag=42&wait=3");
        assert_eq!(since_query(at(7, 0), 3), "?since=7&wait=3");
    }
}
