//! The Redis store: records, the live-name index, the state map, the revision counter, the
//! change feed and the audit trail in one Redis database, for several issuers and many
//! verifiers. The same code runs on a single Redis (self-run or managed) and on a Redis Cluster.
//!
//! # Keys
//! Every key carries one hash tag, `{tessera}` by default (or `{PREFIX}` with
//! [`RedisStore::open_with_prefix`]), so on a Redis Cluster every key lands in the same slot,
//! owned by one primary: every Lua script, MULTI/EXEC block and blocking read names only keys
//! of that slot, as the cluster requires. The store's data therefore lives on one shard (and
//! its replicas); the rest of the cluster is free for other data.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{tessera}:records` | hash | token id → record (JSON, as the embedded store encodes it) |
//! | `{tessera}:names` | hash | live token name → token id |
//! | `{tessera}:state` | hash | token id → state entry (JSON) |
//! | `{tessera}:drops` | sorted set | token id, scored by the entry's `drop_after` (unix seconds) |
//! | `{tessera}:rev` | string | the global state revision (absent: 0) |
//! | `{tessera}:feed` | stream | one entry per state change, with the id `<revision>-0` and the field `change`: `{"id", "tag", "entry"}` (JSON) |
//! | `{tessera}:audit` | list | audit entries (JSON); position `i` (from 0) is sequence `i + 1` |
//! | `{tessera}:usage` | hash | token id → its last use (JSON, after the time in Unix milliseconds) |
//! | `{tessera}:outbox` | hash | event id → event (JSON, [`crate::outbox::OutboxEvent`]) |
//! | `{tessera}:outbox_due` | sorted set | pending event ids, scored by when each may next be claimed (Unix ms) |
//! | `{tessera}:notices` | hash | marker of a notice sent (token id, version, threshold) → until when it is kept (Unix s) |
//!
//! No token string is ever stored: records, state entries and audit entries have no field for
//! one.
//!
//! # Atomicity
//! Every write (`commit`, `prune_state`, `append_audit`) is one Lua script, and Redis runs a
//! script with nothing else in between. A Redis script is not rolled back when a command in it
//! fails halfway, so each script first checks everything that could make a later command fail
//! (the type of every key, the revision counter, the feed's last id, the record and its revision)
//! and only then writes. Redis refuses a script for lack of memory only at its first write, and
//! writes a script's effects to the append-only file as one MULTI/EXEC block, which a restart
//! replays whole or not at all. So a write applies completely or not at all, and, with
//! `appendfsync always`, an acknowledged write survives a crash of Redis.
//! On a cluster the same holds on the primary that owns the slot; its replicas get the script's
//! effects afterwards, as one block, so a failover that promotes a replica which had not yet
//! received the last acknowledged writes loses them (Redis replication is asynchronous).
//!
//! Reads that need two keys at once (a page of the feed, a name lookup) are a MULTI/EXEC block
//! or a read-only script, so they see one consistent moment. A snapshot reads the revision,
//! then scans the map in batches: entries may show changes after that revision (which the feed
//! then repeats), as the trait allows, and Redis never builds one reply of a million entries.
//!
//! # Feed
//! The feed is a Redis Stream whose entry ids are the revisions themselves (`7-0` is revision
//! 7), written by the same script that bumps the counter, and trimmed to about
//! [`FEED_RETENTION`] entries (`MAXLEN ~`, so at least that many are kept). A follower asking
//! for the changes after `r` gets `XRANGE (r+1)-0 +`; if that does not start at `r + 1` the
//! change was trimmed and it must reload a snapshot. When there is nothing new, the follower
//! waits with `XREAD BLOCK` on a connection of its own: a blocking command on the shared,
//! multiplexed connection would hold up every other command behind it.
//!
//! # Connections and failures
//! The store URL says what to connect to:
//!
//! - `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (`rediss://…` for TLS): one Redis server, or a
//!   managed endpoint that behaves like one.
//! - `redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]` (`rediss+cluster://…` for
//!   TLS): a Redis Cluster, by one or more seed nodes (database 0 only). The client asks the
//!   first seed that answers for the cluster's layout, connects to the primaries, sends each
//!   command to the node that owns its slot, and learns the new layout when a node answers
//!   `MOVED` (the slot was moved, or a replica was promoted) or stops answering.
//!
//! - `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/DB]`
//!   (`rediss+sentinel://…` for TLS to the Sentinels and the nodes): a primary and its replicas
//!   under Redis Sentinel, by the Sentinels (port 26379 unless given) and the name they know the
//!   primary by. The credentials are the Redis nodes'; the Sentinels are asked without any. See
//!   the `sentinel` module: the store asks the Sentinels for the primary, and asks again when
//!   its connection to the primary fails, the node answers `READONLY`, or a Sentinel (asked
//!   every second) names another primary; meanwhile a request that surely did not run is sent
//!   again for up to 5 seconds, as on a cluster.
//!
//! One shared connection carries every non-blocking command; on a cluster it is a cluster
//! connection, which holds one multiplexed connection per primary. Both speak RESP3, so they
//! hear at once when a server goes away and reconnect in the background; a command issued
//! meanwhile waits for the new connection. A read that meets a connection that just died, and
//! any command refused a connection, is sent once more: after a longer outage the connection
//! manager answers the first command with its last failed reconnect even when Redis is back,
//! and that command was never sent.
//!
//! On a cluster, a command is sent again, for up to 5 seconds, when the cluster says it did
//! not run: `MOVED` (sent again at once, to the node the client has just learned of), `ASK` or
//! `TRYAGAIN` (a slot being moved: sent again after a short pause, until the move is over),
//! `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `READONLY` (a failover under way), or no connection
//! to the slot's node. A read is also sent again when its connection broke. A write whose
//! connection broke after it was sent is never sent again (the cluster client's own resending
//! is turned off for this reason): it is reported as possibly applied, as on a single Redis.
//! Scripts go by hash (`EVALSHA`), and by source (`EVAL`) to a node that does not know them
//! yet (a restarted node, a promoted replica, the new owner of a moved slot).
//!
//! A lost connection is [`StoreError::Unavailable`], naming `host:port` (on a cluster, the seed
//! nodes) and never the password. A write whose connection broke after the request was sent may
//! or may not have been applied (the message says so): a caller that retries a create may then
//! see [`StoreError::NameTaken`] for its own token.
//!
//! Besides the shared connection, a follower waiting with `XREAD BLOCK` uses a connection of
//! its own (see *Feed*); on a cluster it is a cluster connection of its own, which finds the
//! slot's node by itself, and it is dropped and made afresh (so the layout is looked up again)
//! when a read on it fails or is redirected. On a cluster a snapshot also scans the state map
//! on a connection of its own, which never reconnects behind its back: an `HSCAN` cursor is only
//! good on the server process that gave it, so when a scan meets a failure or a redirection (a
//! slot moved, a failover) it starts over on a fresh connection, instead of going on with the
//! cursor on another node and missing entries.
//!
//! # Waiting for replicas
//! With [`StoreOptions::redis_min_replicas`] above 0, each write script is followed, in the same
//! pipeline (so on the same connection), by `WAIT replicas timeout`. When fewer replicas than
//! asked acknowledge it in time, the write is [`StoreError::Unavailable`], saying it may have
//! been applied (it was, on the primary; a failover before the replicas catch up can lose it).
//! A refused write (a name taken, a conflict) changed nothing and waits for nothing. A `WAIT`
//! holds up the commands behind it on its connection, so writes then go over a second shared
//! connection of their own and reads never queue behind a wait.
//!
//! Needs Redis 6.0 or later (RESP3).

mod codec;
mod connection;
mod feed;
mod outbox;
mod scripts;
mod sentinel;
#[cfg(test)]
mod tests;
mod token_store;
mod url;

use codec::*;
use connection::*;
use scripts::*;
use sentinel::*;
use url::*;

use super::{
    newest_first, on_this_history, Committed, FeedValue, KeyUse, StateDecoder, StoreError,
    StoreOptions, TokenStore, Write, FEED_RETENTION,
};
use crate::model::{
    AuditEntry, AuditRecord, FeedPage, FeedPosition, StateRecord, StateSnapshot, TokenRecord, Usage,
};
use crate::outbox::{EventFrame, OutboxEvent};
use chrono::{DateTime, Utc};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue,
    IntoConnectionInfo, Pipeline, ProtocolVersion, RedisError, RedisFuture, RedisResult, Script,
    ServerErrorKind, ToRedisArgs, Value,
};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The key prefix (hash tag) used by [`RedisStore::open`].
pub(super) const DEFAULT_PREFIX: &str = "tessera";
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command on the shared connection may take. Scripts are short, but with
/// `appendfsync always` each write waits for the disk.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time allowed, on top of the wait, for a feed read to come back.
const FEED_GRACE: Duration = Duration::from_secs(1);
/// At most this many changes per feed page (as the embedded store).
const PAGE: usize = 1000;
/// At most this many entries dropped per prune script, so one script never holds Redis long.
const PRUNE_BATCH: usize = 1000;
/// How many state entries a snapshot asks for per HSCAN.
const SCAN_BATCH: usize = 1000;
/// Idle blocking connections kept for feed followers.
const MAX_IDLE_BLOCKING: usize = 8;
/// On a cluster, how long a command is sent again while the cluster says it did not run (a
/// redirection, a slot being moved, a failover).
const CLUSTER_RESEND_BUDGET: Duration = RESPONSE_TIMEOUT;
/// On a cluster, how many times a snapshot scan starts over after its connection failed or was
/// redirected.
const SCAN_RESTARTS: usize = 4;

/// The store's key names.
#[derive(Debug)]
struct Keys {
    prefix: String,
    records: String,
    names: String,
    state: String,
    drops: String,
    rev: String,
    feed: String,
    audit: String,
    usage: String,
    outbox: String,
    outbox_due: String,
    notices: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        let key = |name: &str| format!("{{{prefix}}}:{name}");
        Self {
            prefix: prefix.to_owned(),
            records: key("records"),
            names: key("names"),
            state: key("state"),
            drops: key("drops"),
            rev: key("rev"),
            feed: key("feed"),
            audit: key("audit"),
            usage: key("usage"),
            outbox: key("outbox"),
            outbox_due: key("outbox_due"),
            notices: key("notices"),
        }
    }
}

/// The Redis store. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Makes connections of their own: for blocking reads and, on a cluster, snapshot scans.
    connector: Connector,
    /// The shared connection for every non-blocking command; reconnects by itself.
    conn: Conn,
    /// With `redis_min_replicas` above 0, a second shared connection for writes: each write's
    /// `WAIT` holds up the commands behind it on its connection (Redis answers a client's
    /// commands in order), so reads must not queue behind it.
    writes: Option<Conn>,
    /// Connections of their own, kept for reuse: one per waiting follower for `XREAD BLOCK`,
    /// and on a cluster one per snapshot being scanned.
    blocking: Mutex<Vec<Conn>>,
    keys: Keys,
    /// `host:port` (on a cluster, the seed nodes), for messages (never the URL, which may hold
    /// the password).
    server: String,
    db: i64,
    tls: bool,
    cluster: bool,
    /// A primary found through Redis Sentinel.
    sentinel: bool,
    /// `redis_min_replicas` and `redis_wait_timeout` (see [`StoreOptions`]).
    options: StoreOptions,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.inner.server)
            .field("db", &self.inner.db)
            .field("tls", &self.inner.tls)
            .field("cluster", &self.inner.cluster)
            .field("sentinel", &self.inner.sentinel)
            .field("prefix", &self.inner.keys.prefix)
            .finish()
    }
}

impl RedisStore {
    /// Open the store at a URL, under the default key prefix `{tessera}`:
    ///
    /// - `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://…` for TLS: one Redis.
    /// - `redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]`, or
    ///   `rediss+cluster://…` for TLS: a Redis Cluster, by its seed nodes (any of its nodes;
    ///   the first that answers tells the client the rest).
    /// - `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/DB]`, or
    ///   `rediss+sentinel://…` for TLS: the primary the Sentinels name `MASTER_NAME`.
    ///
    /// A malformed URL is [`StoreError::Config`]; a server that cannot be reached (on a
    /// cluster: no seed node) is [`StoreError::Unavailable`]; a password the server refuses,
    /// or none where one is needed, is [`StoreError::Config`]. No message repeats the password.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_prefix(url, DEFAULT_PREFIX).await
    }

    /// Like [`RedisStore::open`], with every key under the hash tag `{prefix}`, so several
    /// stores (tenants, tests) can share one Redis database or cluster without seeing each
    /// other.
    pub async fn open_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect(url, prefix, None, StoreOptions::default()).await
    }

    /// Like [`RedisStore::open_with_prefix`], with [`StoreOptions`]: with
    /// `redis_min_replicas` above 0 every write is followed by `WAIT`, and fails as
    /// [`StoreError::Unavailable`] (saying it may have been applied) when fewer replicas than
    /// that acknowledge it within `redis_wait_timeout`.
    pub async fn open_with_options(
        url: &str,
        prefix: &str,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        options.check()?;
        Self::connect(url, prefix, None, options).await
    }

    /// Like [`RedisStore::open_with_prefix`] for a `rediss://` or `rediss+cluster://` URL whose
    /// server certificates are issued by a private CA: `ca_pem` holds the PEM certificates to
    /// trust instead of the public web roots.
    pub async fn open_with_ca(url: &str, prefix: &str, ca_pem: &[u8]) -> Result<Self, StoreError> {
        if !(url.starts_with("rediss://") || url.starts_with("rediss+cluster://")) {
            return Err(StoreError::Config(format!(
                "a CA certificate only applies to a rediss:// or rediss+cluster:// URL, not {:?}",
                redact(url)
            )));
        }
        Self::connect(url, prefix, Some(ca_pem), StoreOptions::default()).await
    }

    async fn connect(
        url: &str,
        prefix: &str,
        ca_pem: Option<&[u8]>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(StoreError::Config(format!(
                "invalid Redis key prefix {prefix:?}: use 1 to 64 letters, digits, '-', '_', '.' or ':'"
            )));
        }
        if sentinel_scheme(url).is_some() {
            return Self::connect_sentinel(url, prefix, options).await;
        }
        let Endpoint {
            nodes,
            cluster,
            tls,
            db,
            has_password,
        } = parse_url(url, ca_pem)?;
        if tls {
            // rustls needs a process-wide crypto provider; this crate builds with ring only.
            // Another part of the process may have installed one already, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }

        let (server, conn, writes, connector, blocking) = if cluster {
            let names: Vec<&str> = nodes.iter().map(|(name, _)| name.as_str()).collect();
            let server = format!("{} (cluster)", names.join(","));
            reach_a_seed(&nodes, has_password).await?;
            let seeds: Vec<ConnectionInfo> = nodes
                .iter()
                .map(|(_, client)| client.get_connection_info().clone())
                .collect();
            let config_error = |e: RedisError| open_error(&server, has_password, e);
            // The shared connection: RESP3 (as on a single Redis), every node's commands bounded
            // by the response timeout.
            let shared = cluster_builder(&seeds, ca_pem)
                .use_protocol(ProtocolVersion::RESP3)
                .response_timeout(RESPONSE_TIMEOUT)
                .build()
                .map_err(config_error)?;
            // Connections of their own: no response timeout (a blocking read waits as long as
            // asked, and the caller bounds it), and RESP2, so they never reconnect by themselves
            // and a scan sees every failure (see `snapshot`).
            let own = cluster_builder(&seeds, ca_pem)
                .use_protocol(ProtocolVersion::RESP2)
                .overall_response_timeout(None)
                .build()
                .map_err(config_error)?;
            let limit = CONNECT_TIMEOUT + RESPONSE_TIMEOUT;
            let connect =
                async || match tokio::time::timeout(limit, shared.get_async_connection()).await {
                    Ok(conn) => conn.map(Conn::Cluster).map_err(config_error),
                    Err(_) => Err(StoreError::Unavailable(format!(
                        "Redis at {server} did not tell its cluster layout within {limit:?}"
                    ))),
                };
            let conn = connect().await?;
            let writes = match options.redis_min_replicas {
                0 => None,
                _ => Some(connect().await?),
            };
            (
                server.clone(),
                conn,
                writes,
                Connector::Cluster(own),
                Vec::new(),
            )
        } else {
            let (server, client) = nodes.into_iter().next().expect("a URL names one node");
            // One plain connection first, checked with PING; it then serves as the first
            // blocking connection.
            let probe = probe(&client, &server, has_password).await?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(3)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_secs(1));
            let connect = async || {
                ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .map(Conn::Managed)
                    .map_err(|e| open_error(&server, has_password, e))
            };
            let conn = connect().await?;
            let writes = match options.redis_min_replicas {
                0 => None,
                _ => Some(connect().await?),
            };
            (
                server.clone(),
                conn,
                writes,
                Connector::Single(client),
                vec![Conn::Direct(probe)],
            )
        };

        let store = Self {
            inner: Arc::new(Inner {
                connector,
                conn,
                writes,
                blocking: Mutex::new(blocking),
                keys: Keys::new(prefix),
                server,
                db,
                tls,
                cluster,
                sentinel: false,
                options,
            }),
        };
        store.warn_if_not_durable().await;
        Ok(store)
    }

    /// [`RedisStore::connect`] for a `redis+sentinel://` URL.
    async fn connect_sentinel(
        url: &str,
        prefix: &str,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let spec = parse_sentinel_url(url)?;
        if spec.tls {
            // As in `connect`.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let names: Vec<&str> = spec.sentinels.iter().map(|(n, _)| n.as_str()).collect();
        let server = format!("{} via Sentinel {}", spec.master, names.join(","));
        let limit = CONNECT_TIMEOUT + RESPONSE_TIMEOUT;
        let connect = async || {
            let conn = SentinelConn::new(&spec, &server)?;
            match tokio::time::timeout(limit, conn.connect()).await {
                Ok(reached) => reached.map_err(|e| open_error(&server, spec.has_password, e))?,
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "Redis at {server}: the Sentinels did not name a primary that answered \
                         within {limit:?}"
                    )))
                }
            }
            Ok(conn)
        };
        let conn = connect().await?;
        let writes = match options.redis_min_replicas {
            0 => None,
            _ => Some(Conn::Sentinel(connect().await?)),
        };
        let store = Self {
            inner: Arc::new(Inner {
                connector: Connector::Sentinel(conn.clone()),
                conn: Conn::Sentinel(conn),
                writes,
                blocking: Mutex::new(Vec::new()),
                keys: Keys::new(prefix),
                server,
                db: spec.db,
                tls: spec.tls,
                cluster: false,
                sentinel: true,
                options,
            }),
        };
        store.warn_if_not_durable().await;
        Ok(store)
    }

    /// Durability is the server's to give: say so when it is configured not to.
    async fn warn_if_not_durable(&self) {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg("append*");
        let reply = match &self.inner.conn {
            // On a cluster, the primary that owns the store's slot.
            Conn::Cluster(conn) => {
                let route = Route::with_key(self.inner.keys.rev.as_bytes(), SlotAddr::Master);
                conn.clone()
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await
            }
            conn => cmd.query_async::<Value>(&mut conn.clone()).await,
        };
        // CONFIG is often disabled on managed Redis; then there is nothing to check.
        let Some(config) = reply
            .ok()
            .and_then(|v| redis::from_redis_value::<HashMap<String, String>>(v).ok())
        else {
            return;
        };
        if config.get("appendonly").map(String::as_str) == Some("no") {
            tracing::warn!(
                server = %self.inner.server,
                "Redis runs without its append-only file: acknowledged token changes can be \
                 lost if Redis stops (set appendonly yes, appendfsync always)"
            );
        } else if config.get("appendfsync").is_some_and(|v| v != "always") {
            tracing::warn!(
                server = %self.inner.server,
                "Redis syncs its append-only file less often than every write: the last \
                 acknowledged token changes can be lost if the machine stops (appendfsync always)"
            );
        }
    }

    /// The `host:port` this store talks to; for a cluster, its seed nodes,
    /// `host:port,host:port (cluster)`.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// A record with its last use filled in (a second read: the last use is advisory).
    async fn with_usage(&self, record: TokenRecord) -> Result<TokenRecord, StoreError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&self.inner.keys.usage).arg(record.id.to_string());
        let raw: Option<Vec<u8>> = self
            .read("reading a token's last use", Read::Cmd(&cmd))
            .await?;
        let used = raw.map(|raw| decode_usage(&raw)).transpose()?;
        Ok(record.with_usage(used))
    }

    fn err(&self, what: &str, e: RedisError) -> StoreError {
        map_error(&self.inner.server, what, false, e)
    }

    fn write_err(&self, what: &str, e: RedisError) -> StoreError {
        map_error(&self.inner.server, what, true, e)
    }

    async fn run_write(&self, what: &str, call: &LuaCall) -> Result<Vec<String>, StoreError> {
        let mut resend = Resend::new(self.inner.cluster || self.inner.sentinel);
        let wait = self.replica_wait();
        let (reply, acked): (Vec<String>, Option<i64>) = loop {
            let mut conn = self
                .inner
                .writes
                .as_ref()
                .unwrap_or(&self.inner.conn)
                .clone();
            match call.invoke_and_wait(&mut conn, wait).await {
                // Only when the request surely did not run (see `Resend::again`).
                Err(e) if resend.again(&e, true).await => {}
                result => break result.map_err(|e| self.write_err(what, e))?,
            }
        };
        match reply.first().map(String::as_str) {
            Some("corrupt") => {
                return Err(StoreError::Corrupt(format!(
                    "{what} refused: {}",
                    reply.get(1).map_or("(no reason)", String::as_str)
                )))
            }
            // Only a write that changed something has replicas to wait for.
            Some("ok") => {
                if let (Some((wanted, timeout_ms)), Some(acked)) = (wait, acked) {
                    if acked < i64::from(wanted) {
                        return Err(StoreError::Unavailable(format!(
                            "Redis at {}: {what}: only {acked} of the {wanted} replicas required \
                             (--redis-min-replicas) acknowledged the write within {timeout_ms} \
                             ms; the write may have been applied: the primary has it, and a \
                             failover before the replicas catch up can lose it",
                            self.inner.server
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(reply)
    }

    /// `(replicas, timeout in ms)` for the `WAIT` after each write, when the store waits.
    fn replica_wait(&self) -> Option<(u32, u64)> {
        let options = &self.inner.options;
        (options.redis_min_replicas > 0).then(|| {
            (
                options.redis_min_replicas,
                u64::try_from(options.redis_wait_timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
        })
    }

    /// Run a read, once more if the connection turned out to be dead (a read is safe to
    /// repeat), and on a cluster also while the cluster redirects it (see `Resend::again`).
    async fn read<T: FromRedisValue>(
        &self,
        what: &str,
        request: Read<'_>,
    ) -> Result<T, StoreError> {
        let mut resend = Resend::new(self.inner.cluster || self.inner.sentinel);
        loop {
            let mut conn = self.inner.conn.clone();
            let result = match &request {
                Read::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Read::Pipe(pipe) => pipe.query_async(&mut conn).await,
                Read::Script(call) => call.invoke(&mut conn).await,
            };
            match result {
                Err(e) if resend.again(&e, false).await => {
                    if aborted_by_cluster(&e) {
                        self.learn_layout().await;
                    }
                }
                result => return result.map_err(|e| self.err(what, e)),
            }
        }
    }

    /// Have the cluster client learn which node owns the store's slot now: a one-key command
    /// sent to the old owner is answered with `MOVED`, which the client learns from (it does
    /// not look inside an aborted MULTI/EXEC block for one).
    async fn learn_layout(&self) {
        let mut conn = self.inner.conn.clone();
        let mut cmd = redis::cmd("TYPE");
        cmd.arg(&self.inner.keys.rev);
        let _ = cmd.query_async::<Value>(&mut conn).await;
    }

    /// Every entry of the state map, scanned in batches (`HSCAN`).
    ///
    /// A cursor is only good on the server process that gave it. On a single Redis the scan
    /// uses the shared connection; on a cluster the shared connection may move to another node
    /// between two batches without this scan noticing (another task met the `MOVED`), so the
    /// scan takes a connection of its own, which never reconnects or re-routes behind its back,
    /// and starts over on a fresh one when a batch fails or is redirected.
    async fn scan_state(&self) -> Result<Vec<(Uuid, StateRecord)>, StoreError> {
        const WHAT: &str = "reading the state snapshot";
        let keys = &self.inner.keys;
        let mut restarts = 0;
        loop {
            // A connection of its own, which never reconnects behind the scan's back: an HSCAN
            // cursor means something only to the server process (and, on a cluster, the node)
            // that issued it, so after any failure the scan starts over on a fresh one.
            let (mut own, _) = self
                .own_connection("connecting to read the state snapshot")
                .await?;
            let mut entries = Vec::new();
            let mut decoder = StateDecoder::default();
            let mut cursor = String::from("0");
            let failure = loop {
                let mut scan = redis::cmd("HSCAN");
                scan.arg(&keys.state)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(SCAN_BATCH);
                let batch = scan.query_async::<(String, Vec<Vec<u8>>)>(&mut own);
                let (next, batch) = match tokio::time::timeout(RESPONSE_TIMEOUT, batch).await {
                    Ok(Ok(batch)) => batch,
                    Ok(Err(e)) => break e,
                    Err(_) => {
                        return Err(StoreError::Unavailable(format!(
                            "Redis at {}: {WHAT}: no answer within {RESPONSE_TIMEOUT:?}",
                            self.inner.server
                        )))
                    }
                };
                let mut fields = batch.into_iter();
                while let (Some(id), Some(raw)) = (fields.next(), fields.next()) {
                    let id = std::str::from_utf8(&id)
                        .ok()
                        .and_then(|id| Uuid::parse_str(id).ok())
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "{} holds {:?}, not a token id",
                                keys.state,
                                String::from_utf8_lossy(&id)
                            ))
                        })?;
                    entries.push((id, decoder.decode(&raw)?));
                }
                if next == "0" {
                    self.keep_own_connection(own);
                    return Ok(entries);
                }
                cursor = next;
            };
            if restarts < SCAN_RESTARTS && (cluster_did_not_run(&failure) || failure.is_io_error())
            {
                restarts += 1;
                self.drop_own_connections();
                tokio::time::sleep(pause(restarts as u32)).await;
                continue;
            }
            return Err(self.err(WHAT, failure));
        }
    }
}
