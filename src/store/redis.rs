//! The Redis store: records, the live-name index, the state map, the revision counter, the
//! change feed and the audit trail in one Redis database, for several issuers and many
//! verifiers.
//!
//! # Keys
//! Every key carries one hash tag, `{tessera}` by default (or `{PREFIX}` with
//! [`RedisStore::open_with_prefix`]), so every key lands in the same Redis Cluster slot and one
//! Lua script may touch them all:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{tessera}:records` | hash | token id → record (JSON, as the embedded store encodes it) |
//! | `{tessera}:names` | hash | live token name → token id |
//! | `{tessera}:state` | hash | token id → state entry (JSON) |
//! | `{tessera}:drops` | sorted set | token id, scored by the entry's `drop_after` (unix seconds) |
//! | `{tessera}:rev` | string | the global state revision (absent: 0) |
//! | `{tessera}:feed` | stream | one entry per state change, with the id `<revision>-0` |
//! | `{tessera}:audit` | list | audit entries (JSON); position `i` (from 0) is sequence `i + 1` |
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
//! One shared multiplexed connection carries every other command. It speaks RESP3, so it hears
//! at once when the server goes away and reconnects in the background (three retries, a few
//! hundred milliseconds); a command issued meanwhile waits for the new connection. A read that
//! meets a connection that just died, and any command refused a connection, is sent once more:
//! after a longer outage the connection manager answers the first command with its last failed
//! reconnect even when Redis is back, and that command was never sent. A lost connection is
//! [`StoreError::Unavailable`], naming `host:port` and never the password. A write whose
//! connection broke after the request was sent may or may not have been applied (the message
//! says so): a caller that retries a create may then see [`StoreError::NameTaken`] for its own
//! token.
//!
//! Needs Redis 6.0 or later (RESP3). The keys and scripts keep Redis Cluster's rules, but the
//! store talks to one node: for a cluster, point it at the node that owns the hash tag's slot.

use super::{
    AuditEntry, AuditRecord, Committed, FeedPage, StateChange, StateDecoder, StateRecord,
    StateSnapshot, StoreError, TokenRecord, TokenStore, Write, FEED_RETENTION,
};
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, IntoConnectionInfo, ProtocolVersion,
    RedisError, Script, Value,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The key prefix (hash tag) used by [`RedisStore::open`].
const DEFAULT_PREFIX: &str = "tessera";
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

/// Checks shared by the write scripts. Nothing in them writes.
const LUA_PRELUDE: &str = r#"
-- The type of each key, or why it is wrong: a command on a key of the wrong type fails, and a
-- failure after the first write would leave the write half-done.
local function wrong_type(expected)
  for _, want in ipairs(expected) do
    local t = redis.call('TYPE', want[1])['ok']
    if t ~= 'none' and t ~= want[2] then
      return want[1] .. ' holds a ' .. t .. ', not a ' .. want[2]
    end
  end
  return nil
end

-- The next state revision, checked against the feed so the XADD that follows cannot fail.
local function next_revision(revkey, feed)
  local cur = redis.call('GET', revkey)
  if cur == false then cur = '0' end
  if not string.match(cur, '^%d+$') then
    return nil, revkey .. ' is not a revision number'
  end
  local nxt = tonumber(cur) + 1
  if redis.call('EXISTS', feed) == 1 then
    local info = redis.call('XINFO', 'STREAM', feed)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then
        local ms = tonumber(string.match(info[i + 1], '^(%d+)-'))
        if ms == nil or ms >= nxt then
          return nil, feed .. ' already holds revision ' .. info[i + 1] ..
            ' but the counter is at ' .. cur
        end
      end
    end
  end
  return nxt
end

local function add_change(feed, retention, rev, change)
  redis.call('XADD', feed, 'MAXLEN', '~', retention, string.format('%d-0', rev), 'change', change)
end
"#;

/// One [`Write`]. KEYS: records, names, state, drops, rev, feed, audit.
/// ARGV: op (create|replace|delete), id, name (create) or expected revision, record JSON,
/// audit JSON, state op (none|set|drop), state JSON, drop_after score or '', change JSON,
/// feed retention.
/// Returns {'ok', state revision or '0', audit seq}, {'name_taken'}, {'not_found'},
/// {'conflict', actual revision} or {'corrupt', why}.
const LUA_COMMIT: &str = r#"
local records, names, state, drops, revkey, feed, audit =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local op, id = ARGV[1], ARGV[2]
local problem = wrong_type({{records, 'hash'}, {names, 'hash'}, {state, 'hash'},
  {drops, 'zset'}, {revkey, 'string'}, {feed, 'stream'}, {audit, 'list'}})
if problem then return {'corrupt', problem} end

local rev = nil
if ARGV[6] ~= 'none' then
  local why
  rev, why = next_revision(revkey, feed)
  if not rev then return {'corrupt', why} end
end

-- Preconditions: nothing has been written yet.
local name = nil
if op == 'create' then
  if redis.call('HEXISTS', names, ARGV[3]) == 1 then return {'name_taken'} end
  if redis.call('HEXISTS', records, id) == 1 then return {'conflict', '0'} end
elseif op == 'replace' or op == 'delete' then
  local raw = redis.call('HGET', records, id)
  if not raw then return {'not_found'} end
  local ok, rec = pcall(cjson.decode, raw)
  if not ok or type(rec) ~= 'table' or type(rec.revision) ~= 'number'
      or type(rec.name) ~= 'string' then
    return {'corrupt', 'the record of ' .. id .. ' in ' .. records .. ' is not readable'}
  end
  if rec.revision ~= tonumber(ARGV[3]) then
    return {'conflict', string.format('%d', rec.revision)}
  end
  name = rec.name
else
  return {'corrupt', 'unknown write ' .. tostring(op)}
end

-- Writes: every one of them is on a key of the right type, so none can fail.
if op == 'create' then
  redis.call('HSET', records, id, ARGV[4])
  redis.call('HSET', names, ARGV[3], id)
elseif op == 'replace' then
  redis.call('HSET', records, id, ARGV[4])
else
  redis.call('HDEL', records, id)
  -- Free the name only if it is this token's (as the embedded store does).
  if redis.call('HGET', names, name) == id then redis.call('HDEL', names, name) end
end
if rev then
  redis.call('ZREM', drops, id)
  if ARGV[6] == 'set' then
    redis.call('HSET', state, id, ARGV[7])
    if ARGV[8] ~= '' then redis.call('ZADD', drops, ARGV[8], id) end
  else
    redis.call('HDEL', state, id)
  end
  redis.call('SET', revkey, string.format('%d', rev))
  add_change(feed, ARGV[10], rev, ARGV[9])
end
local seq = redis.call('RPUSH', audit, ARGV[5])
return {'ok', string.format('%d', rev or 0), string.format('%d', seq)}
"#;

/// Drop due state entries. KEYS: state, drops, rev, feed. ARGV: now (unix seconds), batch
/// size, feed retention. Returns {'ok', dropped} or {'corrupt', why}.
const LUA_PRUNE: &str = r#"
local state, drops, revkey, feed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local problem = wrong_type({{state, 'hash'}, {drops, 'zset'}, {revkey, 'string'},
  {feed, 'stream'}})
if problem then return {'corrupt', problem} end
-- drop_after < now, at second granularity.
local due = redis.call('ZRANGEBYSCORE', drops, '-inf', '(' .. ARGV[1], 'LIMIT', 0,
  tonumber(ARGV[2]))
if #due == 0 then return {'ok', '0'} end
for _, id in ipairs(due) do
  if not string.match(id, '^%x+%-%x+%-%x+%-%x+%-%x+$') then
    return {'corrupt', drops .. ' holds ' .. id .. ', not a token id'}
  end
end
local rev, why = next_revision(revkey, feed)
if not rev then return {'corrupt', why} end
for i, id in ipairs(due) do
  redis.call('ZREM', drops, id)
  redis.call('HDEL', state, id)
  add_change(feed, ARGV[3], rev + i - 1, '{"id":"' .. id .. '","entry":null}')
end
redis.call('SET', revkey, string.format('%d', rev + #due - 1))
return {'ok', string.format('%d', #due)}
"#;

/// Append one audit entry. KEYS: audit. ARGV: entry JSON. Returns {'ok', seq} or
/// {'corrupt', why}.
const LUA_AUDIT: &str = r#"
local problem = wrong_type({{KEYS[1], 'list'}})
if problem then return {'corrupt', problem} end
return {'ok', string.format('%d', redis.call('RPUSH', KEYS[1], ARGV[1]))}
"#;

/// The live token with a name, read in one step so a concurrent delete cannot make the name
/// seem to point nowhere. KEYS: names, records. ARGV: name. Returns {}, {id} (a dangling name)
/// or {id, record}.
const LUA_BY_NAME: &str = r#"
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return {} end
local rec = redis.call('HGET', KEYS[2], id)
if not rec then return {id} end
return {id, rec}
"#;

static COMMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[LUA_PRELUDE, LUA_COMMIT].concat()));
static PRUNE: LazyLock<Script> = LazyLock::new(|| Script::new(&[LUA_PRELUDE, LUA_PRUNE].concat()));
static AUDIT: LazyLock<Script> = LazyLock::new(|| Script::new(&[LUA_PRELUDE, LUA_AUDIT].concat()));
static BY_NAME: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_BY_NAME));

/// A feed entry as stored (the revision is the stream id); the same shape as the embedded
/// store's.
#[derive(Serialize, Deserialize)]
struct FeedValue {
    id: Uuid,
    entry: Option<StateRecord>,
}

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
}

impl Keys {
    fn new(prefix: &str) -> Self {
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
        }
    }
}

/// The Redis store. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// The shared connection for every non-blocking command; reconnects by itself.
    conn: ConnectionManager,
    /// Connections for `XREAD BLOCK`, one per waiting follower, kept for reuse.
    blocking: Mutex<Vec<MultiplexedConnection>>,
    keys: Keys,
    /// `host:port`, for messages (never the URL, which may hold the password).
    server: String,
    db: i64,
    tls: bool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.inner.server)
            .field("db", &self.inner.db)
            .field("tls", &self.inner.tls)
            .field("prefix", &self.inner.keys.prefix)
            .finish()
    }
}

/// `url` with any user and password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".to_owned();
    };
    // Up to the last '@' anywhere: a password with an unescaped '/' or '#' must not leak, and
    // hiding a little too much of an odd URL costs nothing.
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

const URL_FORM: &str = "use redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss://… for TLS";

fn parse_url(url: &str, ca_pem: Option<&[u8]>) -> Result<Client, StoreError> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(StoreError::Config(format!(
            "unsupported Redis store URL {:?}: {URL_FORM}",
            redact(url)
        )));
    }
    let invalid = |e: RedisError| {
        StoreError::Config(format!(
            "invalid Redis store URL {:?}: {}; {URL_FORM}",
            redact(url),
            describe(&e)
        ))
    };
    let info = url.into_connection_info().map_err(invalid)?;
    // RESP3, so the shared connection hears at once when the server goes away and reconnects
    // in the background: the first command after a Redis restart then finds a live connection
    // instead of failing on the dead one.
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    match ca_pem {
        None => Client::open(info),
        Some(pem) => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
    }
    .map_err(invalid)
}

impl RedisStore {
    /// Open the store at a `redis://` or `rediss://` URL (a password may be in it:
    /// `redis://:PASSWORD@HOST:PORT/DB`), under the default key prefix `{tessera}`.
    ///
    /// A malformed URL is [`StoreError::Config`]; a server that cannot be reached is
    /// [`StoreError::Unavailable`]; a password the server refuses, or none where one is needed,
    /// is [`StoreError::Config`]. No message repeats the password.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_prefix(url, DEFAULT_PREFIX).await
    }

    /// Like [`RedisStore::open`], with every key under the hash tag `{prefix}`, so several
    /// stores (tenants, tests) can share one Redis database without seeing each other.
    pub async fn open_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect(url, prefix, None).await
    }

    /// Like [`RedisStore::open_with_prefix`] for a `rediss://` URL whose server certificate is
    /// issued by a private CA: `ca_pem` holds the PEM certificates to trust instead of the
    /// public web roots.
    pub async fn open_with_ca(url: &str, prefix: &str, ca_pem: &[u8]) -> Result<Self, StoreError> {
        if !url.starts_with("rediss://") {
            return Err(StoreError::Config(format!(
                "a CA certificate only applies to a rediss:// URL, not {:?}",
                redact(url)
            )));
        }
        Self::connect(url, prefix, Some(ca_pem)).await
    }

    async fn connect(url: &str, prefix: &str, ca_pem: Option<&[u8]>) -> Result<Self, StoreError> {
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
        let client = parse_url(url, ca_pem)?;
        let info = client.get_connection_info();
        let (server, tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (format!("{host}:{port}"), false),
            ConnectionAddr::TcpTls { host, port, .. } => (format!("{host}:{port}"), true),
            other => {
                return Err(StoreError::Config(format!(
                    "unsupported Redis address {other}: {URL_FORM}"
                )))
            }
        };
        let db = info.redis_settings().db();
        let has_password = info.redis_settings().password().is_some();
        if tls {
            // rustls needs a process-wide crypto provider; this crate builds with ring only.
            // Another part of the process may have installed one already, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }

        // One plain connection first, checked with PING, so a bad address or password fails
        // at once with a clear message (the connection manager would retry it for seconds).
        // It then serves as the first blocking connection.
        let mut probe = client
            .get_multiplexed_async_connection_with_config(&blocking_config())
            .await
            .map_err(|e| open_error(&server, has_password, e))?;
        let ping_cmd = redis::cmd("PING");
        let ping = ping_cmd.query_async::<String>(&mut probe);
        match tokio::time::timeout(RESPONSE_TIMEOUT, ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(open_error(&server, has_password, e)),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "Redis at {server} did not answer PING within {RESPONSE_TIMEOUT:?}"
                )))
            }
        }

        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| open_error(&server, has_password, e))?;

        let store = Self {
            inner: Arc::new(Inner {
                client,
                conn,
                blocking: Mutex::new(vec![probe]),
                keys: Keys::new(prefix),
                server,
                db,
                tls,
            }),
        };
        store.warn_if_not_durable().await;
        Ok(store)
    }

    /// Durability is the server's to give: say so when it is configured not to.
    async fn warn_if_not_durable(&self) {
        let mut conn = self.inner.conn.clone();
        // CONFIG is often disabled on managed Redis; then there is nothing to check.
        let Ok(config) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async::<HashMap<String, String>>(&mut conn)
            .await
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

    /// The `host:port` this store talks to.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    fn err(&self, what: &str, e: RedisError) -> StoreError {
        map_error(&self.inner.server, what, false, e)
    }

    fn write_err(&self, what: &str, e: RedisError) -> StoreError {
        map_error(&self.inner.server, what, true, e)
    }

    async fn run_write(
        &self,
        what: &str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<String>, StoreError> {
        let mut retried = false;
        let reply: Vec<String> = loop {
            let mut conn = self.inner.conn.clone();
            match invocation.invoke_async(&mut conn).await {
                // A refusal can be the connection manager reporting its last failed reconnect
                // from an outage that is over; the request was never sent, so sending it again
                // (once, on the fresh reconnect this error triggered) is safe even for a write.
                Err(e) if !retried && e.is_connection_refusal() => retried = true,
                result => break result.map_err(|e| self.write_err(what, e))?,
            }
        };
        if reply.first().map(String::as_str) == Some("corrupt") {
            return Err(StoreError::Corrupt(format!(
                "{what} refused: {}",
                reply.get(1).map_or("(no reason)", String::as_str)
            )));
        }
        Ok(reply)
    }

    /// Run a read, once more if the connection turned out to be dead: a read is safe to repeat,
    /// and the shared connection reconnects on such an error.
    async fn read<T: redis::FromRedisValue>(
        &self,
        what: &str,
        request: Read<'_, '_>,
    ) -> Result<T, StoreError> {
        let mut retried = false;
        loop {
            let mut conn = self.inner.conn.clone();
            let result = match &request {
                Read::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Read::Pipe(pipe) => pipe.query_async(&mut conn).await,
                Read::Script(script) => script.invoke_async(&mut conn).await,
            };
            match result {
                // Once more on a dead connection, or on a refusal: that can be the connection
                // manager reporting its last failed reconnect from an outage that is over, and
                // the retry waits on the fresh reconnect the error triggered. While Redis is
                // really down this doubles the time to fail (about 2 s instead of 1).
                Err(e) if !retried && (e.is_connection_dropped() || e.is_connection_refusal()) => {
                    retried = true
                }
                result => return result.map_err(|e| self.err(what, e)),
            }
        }
    }

    /// The current revision and the feed from `revision + 1`, read in one step.
    async fn read_feed(&self, revision: u64) -> Result<FeedPage, StoreError> {
        let keys = &self.inner.keys;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .get(&keys.rev)
            .cmd("XRANGE")
            .arg(&keys.feed)
            .arg(format!("{}-0", revision.saturating_add(1)))
            .arg("+")
            .arg("COUNT")
            .arg(PAGE);
        let (current, range): (Option<String>, redis::streams::StreamRangeReply) = self
            .read("reading the state feed", Read::Pipe(&pipe))
            .await?;
        let current = parse_revision(&keys.rev, current)?;
        if revision > current {
            // The follower has seen revisions this store never gave: a different or reset store.
            return Ok(FeedPage::Reload);
        }
        if revision == current {
            return Ok(FeedPage::Changes(Vec::new()));
        }
        let mut changes = Vec::with_capacity(range.ids.len());
        for item in range.ids {
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
            let bytes = match item.map.get("change") {
                Some(Value::BulkString(bytes)) => bytes,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "feed entry {} in {} has no change",
                        item.id, keys.feed
                    )))
                }
            };
            let value: FeedValue = decode("feed entry", bytes)?;
            changes.push(StateChange {
                revision: rev,
                id: value.id,
                entry: value.entry,
            });
        }
        if changes.is_empty() {
            // The revision is behind the counter, yet the feed holds nothing after it.
            return Ok(FeedPage::Reload);
        }
        Ok(FeedPage::Changes(changes))
    }

    /// The feed page after `revision`, waiting up to `wait` for one when there is none.
    async fn follow(&self, revision: u64, wait: Duration) -> Result<FeedPage, StoreError> {
        let page = self.read_feed(revision).await?;
        if wait.is_zero() || !matches!(&page, FeedPage::Changes(c) if c.is_empty()) {
            return Ok(page);
        }
        // XREAD from `revision` returns at once if a change landed since the read above, so
        // nothing is missed between the two.
        if self.wait_for_feed(revision, wait).await? {
            self.read_feed(revision).await
        } else {
            Ok(FeedPage::Changes(Vec::new()))
        }
    }

    /// Wait up to `wait` for a feed entry after `revision`. `true` when one came.
    async fn wait_for_feed(&self, revision: u64, wait: Duration) -> Result<bool, StoreError> {
        let deadline = Instant::now() + wait;
        // A kept connection may have died while idle (say, Redis restarted): then try once more
        // on a fresh one before reporting the failure.
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let (mut conn, reused) = self.blocking_connection().await?;
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
                    self.keep_blocking_connection(conn);
                    return Ok(!matches!(reply, Value::Nil));
                }
                Ok(Err(e)) if reused && (e.is_io_error() || e.is_unrecoverable_error()) => {
                    // What killed this one (a restart, most likely) killed the other kept ones
                    // too: drop them all, so the retry and later waits connect afresh.
                    self.inner
                        .blocking
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
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

    /// A connection for one blocking read: a kept one (`true`) or a new one.
    async fn blocking_connection(&self) -> Result<(MultiplexedConnection, bool), StoreError> {
        let kept = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        if let Some(conn) = kept {
            return Ok((conn, true));
        }
        let conn = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&blocking_config())
            .await
            .map_err(|e| self.err("connecting to wait for state changes", e))?;
        Ok((conn, false))
    }

    fn keep_blocking_connection(&self, conn: MultiplexedConnection) {
        let mut idle = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_BLOCKING {
            idle.push(conn);
        }
    }
}

/// A read request, for [`RedisStore::read`].
enum Read<'a, 'b> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
    Script(&'a redis::ScriptInvocation<'b>),
}

/// Blocking reads wait as long as asked; the caller bounds them with its own timeout.
fn blocking_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
}

fn is_auth_error(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// An error while opening: credentials and configuration are the operator's to fix.
fn open_error(server: &str, has_password: bool, e: RedisError) -> StoreError {
    if is_auth_error(&e) {
        return StoreError::Config(if has_password {
            format!(
                "Redis at {server} refused the user or password in the store URL \
                 (check the password; it is not shown here)"
            )
        } else {
            format!(
                "Redis at {server} requires a password: put it in the store URL, \
                 redis://:PASSWORD@{server}/DB"
            )
        });
    }
    if e.kind() == ErrorKind::RESP3NotSupported {
        return StoreError::Config(format!(
            "Redis at {server} is older than 6.0, which the Redis store needs"
        ));
    }
    if e.kind() == ErrorKind::InvalidClientConfig {
        return StoreError::Config(format!(
            "cannot connect to Redis at {server}: {}",
            describe(&e)
        ));
    }
    if e.is_connection_refusal() {
        return StoreError::Unavailable(format!(
            "cannot reach Redis at {server}: connection refused (is it running, on this port?)"
        ));
    }
    if e.is_io_error() || e.is_timeout() {
        return StoreError::Unavailable(format!("cannot reach Redis at {server}: {e}"));
    }
    map_error(server, "connecting", false, e)
}

/// A redis error without the error-kind name the crate appends to its own messages.
fn describe(e: &RedisError) -> String {
    match e.detail() {
        Some(detail) => detail.to_owned(),
        None => {
            let text = e.to_string();
            match text.rsplit_once(" - ") {
                Some((head, _kind)) => head.to_owned(),
                None => text,
            }
        }
    }
}

fn map_error(server: &str, what: &str, write: bool, e: RedisError) -> StoreError {
    if matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
        || e.code() == Some("WRONGTYPE")
    {
        return StoreError::Corrupt(format!(
            "{what}: Redis at {server} holds or sent something unreadable: {e}"
        ));
    }
    if is_auth_error(&e) {
        return StoreError::Unavailable(format!(
            "Redis at {server}: {what}: the server refused the credentials in the store URL"
        ));
    }
    if e.is_connection_refusal() {
        // Nothing was sent, so nothing was applied.
        return StoreError::Unavailable(format!(
            "Redis at {server} refused the connection ({what}): is it running? {e}"
        ));
    }
    let ambiguous = if write && (e.is_io_error() || e.is_timeout()) {
        "; if the request reached Redis before the connection failed, the write may have been applied"
    } else {
        ""
    };
    StoreError::Unavailable(format!("Redis at {server}: {what}: {e}{ambiguous}"))
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn parse_revision(key: &str, value: Option<String>) -> Result<u64, StoreError> {
    match value {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("{key} holds {v:?}, not a revision"))),
    }
}

/// The revision in a feed entry id `<revision>-0`.
fn parse_stream_id(key: &str, id: &str) -> Result<u64, StoreError> {
    id.strip_suffix("-0")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{key} holds entry {id}, not <revision>-0")))
}

fn parse_u64(what: &str, s: Option<&String>) -> Result<u64, StoreError> {
    s.and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: unexpected reply {s:?}")))
}

impl TokenStore for RedisStore {
    async fn commit(&self, write: Write) -> Result<Committed, StoreError> {
        let keys = &self.inner.keys;
        // op, id, name or expect, record, audit, state op, state, drop score, change
        let (op, id, third, record, audit, state) = match &write {
            Write::Create { record, audit } => (
                "create",
                record.id,
                record.name.clone(),
                encode(record)?,
                audit,
                None,
            ),
            Write::Replace {
                expect,
                record,
                state,
                audit,
            } => (
                "replace",
                record.id,
                expect.to_string(),
                encode(record)?,
                audit,
                state.as_ref().map(Option::as_ref),
            ),
            Write::Delete {
                id,
                expect,
                state,
                audit,
            } => (
                "delete",
                *id,
                expect.to_string(),
                String::new(),
                audit,
                Some(Some(state)),
            ),
        };
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
                    entry: entry.cloned(),
                })?,
            ),
        };
        let mut invocation = COMMIT.prepare_invoke();
        invocation
            .key(&keys.records)
            .key(&keys.names)
            .key(&keys.state)
            .key(&keys.drops)
            .key(&keys.rev)
            .key(&keys.feed)
            .key(&keys.audit)
            .arg(op)
            .arg(id.to_string())
            .arg(&third)
            .arg(record)
            .arg(encode(audit)?)
            .arg(state_op)
            .arg(state_json)
            .arg(score)
            .arg(change)
            .arg(FEED_RETENTION);
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
        raw.map(|r| decode("token record", &r)).transpose()
    }

    async fn get_by_name(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let keys = &self.inner.keys;
        let mut script = BY_NAME.prepare_invoke();
        script.key(&keys.names).key(&keys.records).arg(name);
        let reply: Vec<Vec<u8>> = self
            .read("reading a token by name", Read::Script(&script))
            .await?;
        match reply.as_slice() {
            [] => Ok(None),
            [_] => Err(StoreError::Corrupt(format!(
                "the name {name:?} points at a missing record"
            ))),
            [_, record, ..] => Ok(Some(decode("token record", record)?)),
        }
    }

    async fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut cmd = redis::cmd("HVALS");
        cmd.arg(&self.inner.keys.records);
        let raw: Vec<Vec<u8>> = self.read("listing token records", Read::Cmd(&cmd)).await?;
        raw.iter().map(|r| decode("token record", r)).collect()
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        let mut invocation = AUDIT.prepare_invoke();
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
        let mut get = redis::cmd("GET");
        get.arg(&keys.rev);
        let revision: Option<String> = self
            .read("reading the state revision", Read::Cmd(&get))
            .await?;
        let revision = parse_revision(&keys.rev, revision)?;
        let mut entries = Vec::new();
        let mut decoder = StateDecoder::default();
        let mut cursor = String::from("0");
        loop {
            let mut scan = redis::cmd("HSCAN");
            scan.arg(&keys.state)
                .arg(&cursor)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, batch): (String, Vec<Vec<u8>>) = self
                .read("reading the state snapshot", Read::Cmd(&scan))
                .await?;
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
                break;
            }
            cursor = next;
        }
        Ok(StateSnapshot { revision, entries })
    }

    async fn changes_since(&self, revision: u64, wait: Duration) -> Result<FeedPage, StoreError> {
        // Within about `wait` either way, even while the shared connection is still trying to
        // reconnect to a Redis that is down.
        let limit = wait.saturating_add(FEED_GRACE);
        tokio::time::timeout(limit, self.follow(revision, wait))
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
            let mut invocation = PRUNE.prepare_invoke();
            invocation
                .key(&keys.state)
                .key(&keys.drops)
                .key(&keys.rev)
                .key(&keys.feed)
                .arg(now.timestamp())
                .arg(PRUNE_BATCH)
                .arg(FEED_RETENTION);
            let reply = self.run_write("pruning the state map", &invocation).await?;
            let dropped = usize::try_from(parse_u64("prune", reply.get(1))?).unwrap_or(usize::MAX);
            total += dropped;
            if dropped < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_credentials() {
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("rediss://u:pw@h/0?x#y"), "rediss://***@h/0?x#y");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact("redis://:p/w@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("nope"), "(not a URL)");
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("t1");
        for key in [
            &keys.records,
            &keys.names,
            &keys.state,
            &keys.drops,
            &keys.rev,
            &keys.feed,
            &keys.audit,
        ] {
            assert!(key.starts_with("{t1}:"), "{key}");
        }
    }

    #[test]
    fn stream_ids_are_revisions() {
        assert_eq!(parse_stream_id("f", "42-0").unwrap(), 42);
        assert!(parse_stream_id("f", "42-1").is_err());
        assert!(parse_stream_id("f", "x-0").is_err());
    }
}
