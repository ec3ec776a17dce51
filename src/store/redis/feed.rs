//! The feed: pages of changes after a revision, and waiting for the next with `XREAD BLOCK` on
//! a connection of the follower's own.

use super::*;

impl RedisStore {
    /// The current revision and the feed from `after.revision` (to check its tag) on, read in
    /// one step.
    async fn read_feed(&self, after: FeedPosition) -> Result<FeedPage, StoreError> {
        let keys = &self.inner.keys;
        let revision = after.revision;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .get(&keys.rev)
            .cmd("XRANGE")
            .arg(&keys.feed)
            .arg(format!("{}-0", revision.max(1)))
            .arg("+")
            .arg("COUNT")
            .arg(PAGE + 1);
        let (current, range): (Option<String>, redis::streams::StreamRangeReply) = self
            .read("reading the state feed", Read::Pipe(&pipe))
            .await?;
        let current = parse_revision(&keys.rev, current)?;
        let mut items = range.ids.iter().peekable();
        let mut tag_there = None;
        if revision > 0 {
            if let Some(item) = items.next_if(|i| i.id == format!("{revision}-0")) {
                tag_there = Some(feed_value(&keys.feed, item)?.tag);
            }
        }
        if !on_this_history(after, current, tag_there) {
            // The follower has seen changes this store does not hold: a different or reset
            // store, or a failover that lost the newest writes.
            return Ok(FeedPage::Reload);
        }
        if revision == current {
            return Ok(FeedPage::Changes(Vec::new()));
        }
        let mut changes = Vec::with_capacity(range.ids.len());
        for item in items.take(PAGE) {
            let rev = parse_stream_id(&keys.feed, &item.id)?;
            let expected = revision + 1 + changes.len() as u64;
            if rev != expected {
                if changes.is_empty() {
                    // The change right after `revision` was trimmed away.
                    return Ok(FeedPage::Reload);
                }
                // A hole in the middle: serve what is whole; the next page will say Reload.
                tracing::warn!(feed = %keys.feed, missing = expected, "the state feed has a gap");
                break;
            }
            changes.push(feed_value(&keys.feed, item)?.into_change(rev));
        }
        if changes.is_empty() {
            // The revision is behind the counter, yet the feed holds nothing after it.
            return Ok(FeedPage::Reload);
        }
        Ok(FeedPage::Changes(changes))
    }

    /// The feed page after `after`, waiting up to `wait` for one when there is none.
    pub(super) async fn follow(
        &self,
        after: FeedPosition,
        wait: Duration,
    ) -> Result<FeedPage, StoreError> {
        let page = self.read_feed(after).await?;
        if wait.is_zero() || !matches!(&page, FeedPage::Changes(c) if c.is_empty()) {
            return Ok(page);
        }
        // XREAD from `revision` returns at once if a change landed since the read above, so
        // nothing is missed between the two.
        if self.wait_for_feed(after.revision, wait).await? {
            self.read_feed(after).await
        } else {
            Ok(FeedPage::Changes(Vec::new()))
        }
    }

    /// Wait up to `wait` for a feed entry after `revision`. `true` when one came.
    async fn wait_for_feed(&self, revision: u64, wait: Duration) -> Result<bool, StoreError> {
        let deadline = Instant::now() + wait;
        let cluster = self.inner.cluster;
        // A kept connection may have died while idle (say, Redis restarted): then try once more
        // on a fresh one before reporting the failure. On a cluster any connection may also meet
        // a slot that has moved, or a failover: then try again on a fresh connection, which
        // looks the layout up afresh.
        let attempts = if cluster { 4 } else { 2 };
        for attempt in 0..attempts {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let (mut conn, reused) = self
                .own_connection("connecting to wait for state changes")
                .await?;
            let ms = u64::try_from(left.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, i64::MAX as u64);
            let mut xread = redis::cmd("XREAD");
            xread
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(ms)
                .arg("STREAMS")
                .arg(&self.inner.keys.feed)
                .arg(format!("{revision}-0"));
            let read = xread.query_async::<Value>(&mut conn);
            match tokio::time::timeout(left.saturating_add(FEED_GRACE), read).await {
                Ok(Ok(reply)) => {
                    self.keep_own_connection(conn);
                    return Ok(!matches!(reply, Value::Nil));
                }
                Ok(Err(e))
                    if (reused && (e.is_io_error() || e.is_unrecoverable_error()))
                        || (cluster && (cluster_did_not_run(&e) || e.is_io_error())) =>
                {
                    // What killed or misled this one (a restart, a failover, a slot moved)
                    // killed or misled the other kept ones too: drop them all, so the retry
                    // and later waits connect afresh.
                    self.drop_own_connections();
                    if cluster && attempt > 0 {
                        tokio::time::sleep(pause(attempt)).await;
                    }
                    continue;
                }
                Ok(Err(e)) => return Err(self.err("waiting for state changes", e)),
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "Redis at {} did not answer a {ms} ms XREAD BLOCK in time",
                        self.inner.server
                    )))
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "Redis at {} dropped the connection while waiting for state changes",
            self.inner.server
        )))
    }

    /// A connection of its own, for one blocking read (or, on a cluster, one snapshot scan): a
    /// kept one (`true`) or a new one. `what` names the connecting, for messages.
    pub(super) async fn own_connection(&self, what: &str) -> Result<(Conn, bool), StoreError> {
        let kept = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        if let Some(conn) = kept {
            return Ok((conn, true));
        }
        let conn = match &self.inner.connector {
            Connector::Single(client) => client
                .get_multiplexed_async_connection_with_config(&blocking_config())
                .await
                .map(Conn::Direct),
            Connector::Sentinel(sentinel) => sentinel.own().await.map(Conn::Direct),
            Connector::Cluster(client) => {
                let limit = CONNECT_TIMEOUT + RESPONSE_TIMEOUT;
                match tokio::time::timeout(limit, client.get_async_connection()).await {
                    Ok(conn) => conn.map(Conn::Cluster),
                    Err(_) => {
                        return Err(StoreError::Unavailable(format!(
                            "Redis at {} did not give a cluster connection within {limit:?} \
                             ({what})",
                            self.inner.server
                        )))
                    }
                }
            }
        };
        let conn = conn.map_err(|e| self.err(what, e))?;
        Ok((conn, false))
    }

    pub(super) fn keep_own_connection(&self, conn: Conn) {
        let mut idle = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_BLOCKING {
            idle.push(conn);
        }
    }

    pub(super) fn drop_own_connections(&self) {
        self.inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
