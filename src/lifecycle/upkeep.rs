//! What a server does to its store besides the lifecycle's changes: record when tokens were
//! last used, and ask whether the store answers. Neither reads or changes a token's record,
//! permissions or state, so the server can hold an [`Upkeep`] without holding the store.

use super::LifecycleError;
use crate::model::Usage;
use crate::store::{AnyStore, TokenStore};
use std::sync::Arc;

/// The token service on whichever store the configuration chose.
pub type Service = super::TokenService<AnyStore>;

/// The store's upkeep: last uses and a liveness probe, nothing else.
#[derive(Clone)]
pub struct Upkeep {
    store: Arc<AnyStore>,
}

impl std::fmt::Debug for Upkeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upkeep").finish_non_exhaustive()
    }
}

impl Upkeep {
    /// The upkeep of `store`.
    pub fn new(store: Arc<AnyStore>) -> Self {
        Self { store }
    }

    /// Record last uses (see [`TokenStore::record_usage`]).
    pub async fn record_usage(&self, uses: Vec<Usage>) -> Result<(), LifecycleError> {
        Ok(self.store.record_usage(uses).await?)
    }

    /// Whether the store answers: a cheap read.
    pub async fn ping(&self) -> Result<(), LifecycleError> {
        self.store.get(uuid::Uuid::nil()).await?;
        Ok(())
    }
}
