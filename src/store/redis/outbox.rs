//! The outbox on Redis: events leased and settled by script, listed and pruned from the hash.

use super::*;
use crate::outbox::{Delivery, OutboxEvent};

impl RedisStore {
    pub(super) async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let keys = &self.inner.keys;
        let now_ms = now.timestamp_millis();
        let until = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut invocation = CLAIM.call();
        invocation
            .key(&keys.outbox)
            .key(&keys.outbox_due)
            .arg(now_ms)
            .arg(until)
            .arg(limit);
        let reply = self.run_write("claiming events", &invocation).await?;
        reply
            .iter()
            .skip(1)
            .map(|event| decode("outbox event", event.as_bytes()))
            .collect()
    }

    pub(super) async fn settle(&self, event: &OutboxEvent) -> Result<(), StoreError> {
        let keys = &self.inner.keys;
        let due = match event.delivery {
            Delivery::Pending => event
                .next_attempt_at
                .unwrap_or(event.created_at)
                .timestamp_millis()
                .to_string(),
            Delivery::Delivered | Delivery::Failed => String::new(),
        };
        let mut invocation = SETTLE.call();
        invocation
            .key(&keys.outbox)
            .key(&keys.outbox_due)
            .arg(&event.id)
            .arg(encode(event)?)
            .arg(due);
        self.run_write("settling an event", &invocation).await?;
        Ok(())
    }

    pub(super) async fn notice(
        &self,
        marker: &str,
        keep_until: DateTime<Utc>,
        event: &OutboxEvent,
    ) -> Result<bool, StoreError> {
        let keys = &self.inner.keys;
        let due = event.next_attempt_at.unwrap_or(event.created_at);
        let mut invocation = NOTICE.call();
        invocation
            .key(&keys.notices)
            .key(&keys.outbox)
            .key(&keys.outbox_due)
            .arg(marker)
            .arg(keep_until.timestamp())
            .arg(&event.id)
            .arg(encode(event)?)
            .arg(due.timestamp_millis());
        let reply = self.run_write("adding a notice", &invocation).await?;
        Ok(reply.get(1).map(String::as_str) == Some("1"))
    }

    /// Every event kept: at most a day's worth, see [`crate::outbox::RETENTION`].
    pub(super) async fn all_events(&self) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut all = redis::cmd("HVALS");
        all.arg(&self.inner.keys.outbox);
        let raw: Vec<Vec<u8>> = self.read("reading the events", Read::Cmd(&all)).await?;
        raw.iter().map(|e| decode("outbox event", e)).collect()
    }

    pub(super) async fn prune_outbox(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let keys = &self.inner.keys;
        let old: Vec<String> = self
            .all_events()
            .await?
            .into_iter()
            .filter(|e| e.created_at < before)
            .map(|e| e.id)
            .collect();
        let mut markers = redis::cmd("HGETALL");
        markers.arg(&keys.notices);
        let markers: Vec<(String, i64)> = self
            .read("reading the notice markers", Read::Cmd(&markers))
            .await?;
        let stale: Vec<String> = markers
            .into_iter()
            .filter(|(_, keep_until)| *keep_until < before.timestamp())
            .map(|(marker, _)| marker)
            .collect();
        for batch in stale.chunks(500) {
            let mut pipe = redis::pipe();
            pipe.hdel(&keys.notices, batch).ignore();
            let mut conn = self.inner.conn.clone();
            let () = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.write_err("pruning notice markers", e))?;
        }
        for batch in old.chunks(500) {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .hdel(&keys.outbox, batch)
                .ignore()
                .zrem(&keys.outbox_due, batch)
                .ignore();
            let mut conn = self.inner.conn.clone();
            let () = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.write_err("pruning events", e))?;
        }
        Ok(old.len())
    }
}
