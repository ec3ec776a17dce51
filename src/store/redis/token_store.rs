//! The [`TokenStore`] contract, kept on Redis.

use super::*;

impl TokenStore for RedisStore {
    async fn commit(&self, write: Write) -> Result<Committed, StoreError> {
        let keys = &self.inner.keys;
        // op, id, name or expect, record, audit, state op, state, drop score, change
        let (op, id, third, record, audit, state, keep) = match &write {
            Write::Create { record, audit } => (
                "create",
                record.id,
                record.name.clone(),
                encode(record)?,
                audit,
                None,
                None,
            ),
            Write::Replace {
                expect,
                record,
                state,
                audit,
                keep,
            } => (
                "replace",
                record.id,
                expect.to_string(),
                encode(record)?,
                audit,
                state.as_ref().map(Option::as_ref),
                *keep,
            ),
            Write::Delete {
                id,
                expect,
                state,
                audit,
                keep,
            } => (
                "delete",
                *id,
                expect.to_string(),
                String::new(),
                audit,
                Some(Some(state)),
                *keep,
            ),
        };
        // The script compares `expires_at` as text: both sides in whole seconds, UTC, with Z.
        let keep = keep
            .map(|k| k.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let (state_op, state_json, score, change) = match state {
            None => ("none", String::new(), String::new(), String::new()),
            Some(entry) => (
                if entry.is_some() { "set" } else { "drop" },
                entry.map(encode).transpose()?.unwrap_or_default(),
                entry
                    .and_then(|e| e.drop_after)
                    .map(|t| t.timestamp().to_string())
                    .unwrap_or_default(),
                encode(&FeedValue {
                    id,
                    tag: FeedPosition::new_tag(),
                    entry: entry.cloned(),
                })?,
            ),
        };
        let event = EventFrame::for_change(audit);
        let mut invocation = COMMIT.call();
        invocation
            .key(&keys.records)
            .key(&keys.names)
            .key(&keys.state)
            .key(&keys.drops)
            .key(&keys.rev)
            .key(&keys.feed)
            .key(&keys.audit)
            .key(&keys.usage)
            .key(&keys.outbox)
            .key(&keys.outbox_due)
            .arg(op)
            .arg(id.to_string())
            .arg(&third)
            .arg(record)
            .arg(encode(audit)?)
            .arg(state_op)
            .arg(state_json)
            .arg(score)
            .arg(change)
            .arg(FEED_RETENTION)
            .arg(keep)
            .arg(&event.id)
            .arg(&event.prefix)
            .arg(event.suffix)
            .arg(event.due_ms);
        let reply = self
            .run_write("committing a token change", &invocation)
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                let rev = parse_u64("commit", reply.get(1))?;
                Ok(Committed {
                    state_revision: (rev > 0).then_some(rev),
                })
            }
            Some("name_taken") => Err(StoreError::NameTaken(third)),
            Some("not_found") => Err(StoreError::NotFound(id)),
            Some("last_super_admin") => Err(StoreError::LastSuperAdmin(id)),
            Some("conflict") => Err(StoreError::Conflict {
                id,
                expected: if op == "create" {
                    0
                } else {
                    third.parse().unwrap_or(0)
                },
                actual: parse_u64("commit", reply.get(1))?,
            }),
            _ => Err(StoreError::Corrupt(format!(
                "unexpected reply to a commit: {reply:?}"
            ))),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&self.inner.keys.records).arg(id.to_string());
        let raw: Option<Vec<u8>> = self.read("reading a token record", Read::Cmd(&cmd)).await?;
        match raw {
            Some(raw) => Ok(Some(self.with_usage(decode("token record", &raw)?).await?)),
            None => Ok(None),
        }
    }

    async fn get_by_name(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let keys = &self.inner.keys;
        let mut script = BY_NAME.call();
        script.key(&keys.names).key(&keys.records).arg(name);
        let reply: Vec<Vec<u8>> = self
            .read("reading a token by name", Read::Script(&script))
            .await?;
        match reply.as_slice() {
            [] => Ok(None),
            [_] => Err(StoreError::Corrupt(format!(
                "the name {name:?} points at a missing record"
            ))),
            [_, record, ..] => Ok(Some(
                self.with_usage(decode("token record", record)?).await?,
            )),
        }
    }

    async fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut cmd = redis::cmd("HVALS");
        cmd.arg(&self.inner.keys.records);
        let raw: Vec<Vec<u8>> = self.read("listing token records", Read::Cmd(&cmd)).await?;
        let mut all = redis::cmd("HGETALL");
        all.arg(&self.inner.keys.usage);
        let usage: HashMap<String, Vec<u8>> =
            self.read("reading the last uses", Read::Cmd(&all)).await?;
        raw.iter()
            .map(|r| {
                let record: TokenRecord = decode("token record", r)?;
                let used = usage
                    .get(&record.id.to_string())
                    .map(|u| decode_usage(u))
                    .transpose()?;
                Ok(record.with_usage(used))
            })
            .collect()
    }

    async fn key_use(&self, kid: &str, after: DateTime<Utc>) -> Result<KeyUse, StoreError> {
        // One HVALS: a consistent read of every record.
        let mut cmd = redis::cmd("HVALS");
        cmd.arg(&self.inner.keys.records);
        let raw: Vec<Vec<u8>> = self
            .read("counting the tokens a key signed", Read::Cmd(&cmd))
            .await?;
        let records = raw
            .iter()
            .map(|r| decode::<TokenRecord>("token record", r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyUse::count(&records, kid, after))
    }

    async fn record_usage(&self, uses: Vec<Usage>) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut invocation = USAGE.call();
        invocation
            .key(&self.inner.keys.records)
            .key(&self.inner.keys.usage);
        for usage in &uses {
            invocation
                .arg(usage.id.to_string())
                .arg(usage.at.timestamp_millis().max(0))
                .arg(encode(usage)?);
        }
        self.run_write("recording token use", &invocation)
            .await
            .map(drop)
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        let mut invocation = AUDIT.call();
        invocation.key(&self.inner.keys.audit).arg(encode(&entry)?);
        let reply = self
            .run_write("appending to the audit trail", &invocation)
            .await?;
        parse_u64("audit append", reply.get(1))
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        // List index i holds sequence i + 1, so the entries after `after` start at index `after`.
        let Ok(start) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = start.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX) - 1);
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(&self.inner.keys.audit).arg(start).arg(stop);
        let raw: Vec<Vec<u8>> = self
            .read("reading the audit trail", Read::Cmd(&cmd))
            .await?;
        raw.iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(AuditRecord {
                    seq: after + 1 + i as u64,
                    entry: decode("audit entry", r)?,
                })
            })
            .collect()
    }

    async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        let keys = &self.inner.keys;
        // The revision first, then the map in batches (HSCAN): Redis is never blocked by one
        // huge reply, and a verifier never holds the whole map twice over in reply buffers.
        // An entry changed during the scan shows that later change, which is ahead of
        // `revision`, never behind it; the follower then applies the feed after `revision`
        // and ends exact (the contract allows this).
        // The revision and the newest feed entry (the change that made it) in one step.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .get(&keys.rev)
            .cmd("XREVRANGE")
            .arg(&keys.feed)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let (revision, newest): (Option<String>, redis::streams::StreamRangeReply) = self
            .read("reading the state revision", Read::Pipe(&pipe))
            .await?;
        let revision = parse_revision(&keys.rev, revision)?;
        let mut tag = 0;
        if let Some(item) = newest.ids.first() {
            if parse_stream_id(&keys.feed, &item.id)? == revision {
                tag = feed_value(&keys.feed, item)?.tag;
            }
        }
        let entries = self.scan_state().await?;
        Ok(StateSnapshot {
            revision,
            tag,
            entries,
        })
    }

    async fn changes_since(
        &self,
        after: FeedPosition,
        wait: Duration,
    ) -> Result<FeedPage, StoreError> {
        // Within about `wait` either way, even while the shared connection is still trying to
        // reconnect to a Redis that is down.
        let limit = wait.saturating_add(FEED_GRACE);
        tokio::time::timeout(limit, self.follow(after, wait))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "Redis at {} did not answer a feed read within {limit:?}",
                    self.inner.server
                )))
            })
    }

    async fn prune_state(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let keys = &self.inner.keys;
        let mut total = 0;
        loop {
            let mut invocation = PRUNE.call();
            invocation
                .key(&keys.state)
                .key(&keys.drops)
                .key(&keys.rev)
                .key(&keys.feed)
                .arg(now.timestamp())
                .arg(PRUNE_BATCH)
                .arg(FEED_RETENTION)
                .arg(FeedPosition::new_tag());
            let reply = self.run_write("pruning the state map", &invocation).await?;
            let dropped = usize::try_from(parse_u64("prune", reply.get(1))?).unwrap_or(usize::MAX);
            total += dropped;
            if dropped < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    async fn claim_events(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        self.claim(now, lease, limit).await
    }

    async fn settle_event(&self, event: OutboxEvent) -> Result<(), StoreError> {
        self.settle(&event).await
    }

    async fn events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(newest_first(self.all_events().await?, limit))
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.prune_outbox(before).await
    }

    async fn add_notice(
        &self,
        marker: String,
        keep_until: DateTime<Utc>,
        event: OutboxEvent,
    ) -> Result<bool, StoreError> {
        self.notice(&marker, keep_until, &event).await
    }
}
