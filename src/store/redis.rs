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
//! Needs Redis 6.0 or later (RESP3).

use super::{
    AuditEntry, AuditRecord, Committed, FeedPage, StateChange, StateDecoder, StateRecord,
    StateSnapshot, StoreError, TokenRecord, TokenStore, Usage, Write, FEED_RETENTION,
};
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
/// On a cluster, how long a command is sent again while the cluster says it did not run (a
/// redirection, a slot being moved, a failover).
const CLUSTER_RESEND_BUDGET: Duration = RESPONSE_TIMEOUT;
/// On a cluster, how many times a snapshot scan starts over after its connection failed or was
/// redirected.
const SCAN_RESTARTS: usize = 4;

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

/// One [`Write`]. KEYS: records, names, state, drops, rev, feed, audit, usage.
/// ARGV: op (create|replace|delete), id, name (create) or expected revision, record JSON,
/// audit JSON, state op (none|set|drop), state JSON, drop_after score or '', change JSON,
/// feed retention.
/// Returns {'ok', state revision or '0', audit seq}, {'name_taken'}, {'not_found'},
/// {'conflict', actual revision} or {'corrupt', why}.
const LUA_COMMIT: &str = r#"
local records, names, state, drops, revkey, feed, audit, usage =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local op, id = ARGV[1], ARGV[2]
local problem = wrong_type({{records, 'hash'}, {names, 'hash'}, {state, 'hash'},
  {drops, 'zset'}, {revkey, 'string'}, {feed, 'stream'}, {audit, 'list'}, {usage, 'hash'}})
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
  redis.call('HDEL', usage, id)
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

/// Record last uses. KEYS: records, usage. ARGV: triples of id, unix milliseconds, usage JSON.
/// A use is kept only for an existing record and only when not older than the one stored
/// (stored as `<milliseconds> <JSON>`).
const LUA_USAGE: &str = r#"
local records, usage = KEYS[1], KEYS[2]
local problem = wrong_type({{records, 'hash'}, {usage, 'hash'}})
if problem then return {'corrupt', problem} end
for i = 1, #ARGV, 3 do
  local id, ms = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('HEXISTS', records, id) == 1 then
    local old = redis.call('HGET', usage, id)
    local old_ms = old and tonumber(string.match(old, '^(%d+) '))
    if not old_ms or old_ms <= ms then
      redis.call('HSET', usage, id, ARGV[i + 1] .. ' ' .. ARGV[i + 2])
    end
  end
end
return {'ok'}
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

static COMMIT: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_COMMIT]));
static PRUNE: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_PRUNE]));
static AUDIT: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_AUDIT]));
static BY_NAME: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_BY_NAME]));
static USAGE: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_USAGE]));

/// A Lua script, sent by its hash (`EVALSHA`), or by its source (`EVAL`, which also caches it)
/// when the node that runs it does not know it: a restarted node, a promoted replica, or, on a
/// cluster, a node the slot has just moved to. Both are one command routed by its keys, so a
/// cluster sends them to the slot's node (`SCRIPT LOAD` would go to every node, and fail when
/// any one of them is down).
struct Lua {
    source: String,
    sha: String,
}

impl Lua {
    fn new(parts: &[&str]) -> Self {
        let source = parts.concat();
        let sha = Script::new(&source).get_hash().to_owned();
        Self { source, sha }
    }

    fn call(&'static self) -> LuaCall {
        LuaCall {
            lua: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One invocation of a [`Lua`] script: its keys and arguments.
struct LuaCall {
    lua: &'static Lua,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl LuaCall {
    fn key(&mut self, key: &str) -> &mut Self {
        self.keys.push(key.as_bytes().to_vec());
        self
    }

    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    fn cmd(&self, by_hash: bool) -> Cmd {
        let mut cmd = if by_hash {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.lua.sha);
            cmd
        } else {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(&self.lua.source);
            cmd
        };
        cmd.arg(self.keys.len());
        for part in self.keys.iter().chain(&self.args) {
            cmd.arg(part.as_slice());
        }
        cmd
    }

    async fn invoke<T: FromRedisValue>(&self, conn: &mut Conn) -> RedisResult<T> {
        match self.cmd(true).query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.cmd(false).query_async(conn).await
            }
            result => result,
        }
    }
}

/// A connection of any kind. Every command goes through [`ConnectionLike`], so scripts,
/// pipelines and plain commands take the same path on a single Redis and on a cluster.
#[derive(Clone)]
enum Conn {
    /// The shared connection to a single Redis: reconnects by itself.
    Managed(ConnectionManager),
    /// A connection to a single Redis for blocking reads.
    Direct(MultiplexedConnection),
    /// A Redis Cluster connection: sends each command to the node that owns its slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(c) => c.get_db(),
            Conn::Direct(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How to make a connection of one's own (for blocking reads; on a cluster, also for scans).
// One per store: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Connector {
    Single(Client),
    /// A cluster client whose connections have no response timeout (the caller bounds each
    /// read), do not resend anything by themselves, and speak RESP2, so they do not reconnect
    /// behind the caller's back either (see `scan_state`).
    Cluster(ClusterClient),
}

/// Whether `e` says the cluster did not run the request, which may then be sent again, even a
/// write: a redirection (the slot moved, or is moving), a cluster or primary that is down for
/// the moment, a node still loading or demoted by a failover, no connection to the slot's node,
/// or a refused connection (nothing was sent). A MULTI/EXEC block aborted for one of these
/// reasons counts too.
fn cluster_did_not_run(e: &RedisError) -> bool {
    match e.kind() {
        ErrorKind::ClusterConnectionNotFound => true,
        ErrorKind::Server(ServerErrorKind::ExecAbort) => aborted_by_cluster(e),
        ErrorKind::Server(kind) => cluster_refusal(kind),
        _ => e.is_connection_refusal(),
    }
}

/// A server error by which a cluster refuses to run a command for now.
fn cluster_refusal(kind: ServerErrorKind) -> bool {
    matches!(
        kind,
        ServerErrorKind::Moved
            | ServerErrorKind::Ask
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly
    )
}

/// Whether `e` is a MULTI/EXEC block the server aborted (so none of it ran) because the
/// cluster refused a command in it, say with `MOVED`. The cluster client does not look inside
/// such an error, so it does not learn the new layout from it.
fn aborted_by_cluster(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ExecAbort)
        && e.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, error)| error.kind().is_some_and(cluster_refusal))
        })
}

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
    usage: String,
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
            usage: key("usage"),
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
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.inner.server)
            .field("db", &self.inner.db)
            .field("tls", &self.inner.tls)
            .field("cluster", &self.inner.cluster)
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

const URL_FORM: &str = "use redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss://… for TLS), \
     or redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…] (rediss+cluster://… for TLS) \
     for a Redis Cluster";

/// The scheme of each node (`redis` or `rediss`) and what follows `+cluster://`, for a
/// `redis+cluster://` or `rediss+cluster://` URL.
fn cluster_scheme(url: &str) -> Option<(&'static str, &str)> {
    if let Some(rest) = url.strip_prefix("redis+cluster://") {
        Some(("redis", rest))
    } else {
        url.strip_prefix("rediss+cluster://")
            .map(|rest| ("rediss", rest))
    }
}

/// A store URL, parsed.
struct Endpoint {
    /// Each node the URL names (a single Redis, or the seed nodes of a cluster), with its
    /// `host:port` for messages. Never empty.
    nodes: Vec<(String, Client)>,
    cluster: bool,
    tls: bool,
    db: i64,
    has_password: bool,
}

fn parse_url(url: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, StoreError> {
    let invalid = |e: RedisError| {
        StoreError::Config(format!(
            "invalid Redis store URL {:?}: {}; {URL_FORM}",
            redact(url),
            describe(&e)
        ))
    };
    let (node_urls, cluster) = if let Some((scheme, rest)) = cluster_scheme(url) {
        // One URL per seed node, each with the credentials, database and options of the whole.
        let (auth, rest) = match rest.rfind('@') {
            Some(at) => rest.split_at(at + 1),
            None => ("", rest),
        };
        let (hosts, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        if hosts.split(',').any(str::is_empty) {
            return Err(StoreError::Config(format!(
                "invalid Redis store URL {:?}: name the cluster's seed nodes as HOST[:PORT], \
                 separated by commas; {URL_FORM}",
                redact(url)
            )));
        }
        let urls: Vec<String> = hosts
            .split(',')
            .map(|host| format!("{scheme}://{auth}{host}{tail}"))
            .collect();
        (urls, true)
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        (vec![url.to_owned()], false)
    } else {
        return Err(StoreError::Config(format!(
            "unsupported Redis store URL {:?}: {URL_FORM}",
            redact(url)
        )));
    };
    let mut nodes = Vec::with_capacity(node_urls.len());
    for node_url in node_urls {
        let info = node_url.as_str().into_connection_info().map_err(invalid)?;
        let server = match info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}")
            }
            other => {
                return Err(StoreError::Config(format!(
                    "unsupported Redis address {other}: {URL_FORM}"
                )))
            }
        };
        // RESP3, so the shared connection hears at once when the server goes away and
        // reconnects in the background: the first command after a Redis restart then finds a
        // live connection instead of failing on the dead one.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let client = match ca_pem {
            None => Client::open(info),
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
        }
        .map_err(invalid)?;
        nodes.push((server, client));
    }
    let first = nodes[0].1.get_connection_info();
    let endpoint = Endpoint {
        cluster,
        tls: matches!(first.addr(), ConnectionAddr::TcpTls { .. }),
        db: first.redis_settings().db(),
        has_password: first.redis_settings().password().is_some(),
        nodes,
    };
    if cluster && endpoint.db != 0 {
        return Err(StoreError::Config(format!(
            "invalid Redis store URL {:?}: a Redis Cluster has database 0 only",
            redact(url)
        )));
    }
    Ok(endpoint)
}

/// A cluster client for the seed nodes: it resends nothing by itself (the store decides what
/// may be sent again, see the module doc).
fn cluster_builder(seeds: &[ConnectionInfo], ca_pem: Option<&[u8]>) -> ClusterClientBuilder {
    let builder = ClusterClientBuilder::new(seeds.iter().cloned())
        .connection_timeout(CONNECT_TIMEOUT)
        .retries(0);
    match ca_pem {
        None => builder,
        Some(pem) => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        }),
    }
}

/// A plain connection to one node, checked with PING, so a bad address or password fails at
/// once with a clear message (the connection manager would retry it for seconds, and the
/// cluster client would only say that no seed node answered).
async fn probe(
    client: &Client,
    server: &str,
    has_password: bool,
) -> Result<MultiplexedConnection, StoreError> {
    let mut probe = client
        .get_multiplexed_async_connection_with_config(&blocking_config())
        .await
        .map_err(|e| open_error(server, has_password, e))?;
    let ping_cmd = redis::cmd("PING");
    let ping = ping_cmd.query_async::<String>(&mut probe);
    match tokio::time::timeout(RESPONSE_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(probe),
        Ok(Err(e)) => Err(open_error(server, has_password, e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "Redis at {server} did not answer PING within {RESPONSE_TIMEOUT:?}"
        ))),
    }
}

/// Reach the first seed node that answers and check that it is a cluster node. When none
/// answers, a configuration error (a refused password, say) is reported before the others.
async fn reach_a_seed(nodes: &[(String, Client)], has_password: bool) -> Result<(), StoreError> {
    let mut failures = Vec::new();
    for (server, client) in nodes {
        let mut conn = match probe(client, server, has_password).await {
            Ok(conn) => conn,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        let reply = tokio::time::timeout(RESPONSE_TIMEOUT, info.query_async::<Value>(&mut conn));
        if let Ok(Err(e)) = reply.await {
            if e.to_string().contains("cluster support disabled") {
                return Err(StoreError::Config(format!(
                    "Redis at {server} is not a Redis Cluster node (its cluster support is \
                     disabled): use a redis:// URL for a single Redis"
                )));
            }
        }
        // Anything else (CLUSTER INFO not allowed, say) is for the cluster client to find out.
        return Ok(());
    }
    if let Some(i) = failures
        .iter()
        .position(|e| matches!(e, StoreError::Config(_)))
    {
        return Err(failures.swap_remove(i));
    }
    if failures.len() == 1 {
        return Err(failures.remove(0));
    }
    let reasons: Vec<String> = failures
        .iter()
        .map(|e| match e {
            StoreError::Unavailable(why) => why.clone(),
            other => other.to_string(),
        })
        .collect();
    Err(StoreError::Unavailable(format!(
        "no seed node of the Redis Cluster answered: {}",
        reasons.join("; ")
    )))
}

/// When a request that failed is sent again.
struct Resend {
    cluster: bool,
    started: Instant,
    attempts: u32,
}

impl Resend {
    fn new(cluster: bool) -> Self {
        Self {
            cluster,
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// Whether to send again a request (a write, or a read) that failed with `e`; on a
    /// cluster, after a pause when the cluster needs time (a slot being moved, a failover).
    async fn again(&mut self, e: &RedisError, write: bool) -> bool {
        self.attempts += 1;
        if !self.cluster {
            // Once, on a refusal: that can be the connection manager reporting its last failed
            // reconnect from an outage that is over; the request was never sent, so sending it
            // again (on the fresh reconnect this error triggered) is safe even for a write. A
            // read, which is safe to repeat, also once more on a connection that just died
            // (the shared connection reconnects on such an error). While Redis is really down
            // this doubles the time to fail (about 2 s instead of 1).
            return self.attempts == 1
                && (e.is_connection_refusal() || (!write && e.is_connection_dropped()));
        }
        // A request the cluster did not run, or a read whose connection failed.
        let again = cluster_did_not_run(e)
            || (!write && (e.is_io_error() || e.is_connection_dropped()) && !e.is_timeout());
        if !again || self.started.elapsed() >= CLUSTER_RESEND_BUDGET {
            return false;
        }
        // After MOVED the client already knows the new layout: at once. Otherwise the cluster
        // needs a moment (a slot move to finish, a replica to be promoted, a reconnect).
        if e.kind() != ErrorKind::Server(ServerErrorKind::Moved) {
            tokio::time::sleep(pause(self.attempts)).await;
        }
        true
    }
}

/// A pause that grows with each attempt: 20 ms, 40 ms, … up to 250 ms.
fn pause(attempt: u32) -> Duration {
    Duration::from_millis(10u64 << attempt.min(5)).min(Duration::from_millis(250))
}

impl RedisStore {
    /// Open the store at a URL, under the default key prefix `{tessera}`:
    ///
    /// - `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://…` for TLS: one Redis.
    /// - `redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]`, or
    ///   `rediss+cluster://…` for TLS: a Redis Cluster, by its seed nodes (any of its nodes;
    ///   the first that answers tells the client the rest).
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
        Self::connect(url, prefix, None).await
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

        let (server, conn, connector, blocking) = if cluster {
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
            let conn = match tokio::time::timeout(limit, shared.get_async_connection()).await {
                Ok(conn) => conn.map_err(config_error)?,
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "Redis at {server} did not tell its cluster layout within {limit:?}"
                    )))
                }
            };
            (
                server,
                Conn::Cluster(conn),
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
            let conn = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(|e| open_error(&server, has_password, e))?;
            (
                server,
                Conn::Managed(conn),
                Connector::Single(client),
                vec![Conn::Direct(probe)],
            )
        };

        let store = Self {
            inner: Arc::new(Inner {
                connector,
                conn,
                blocking: Mutex::new(blocking),
                keys: Keys::new(prefix),
                server,
                db,
                tls,
                cluster,
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
        let mut resend = Resend::new(self.inner.cluster);
        let reply: Vec<String> = loop {
            let mut conn = self.inner.conn.clone();
            match call.invoke(&mut conn).await {
                // Only when the request surely did not run (see `Resend::again`).
                Err(e) if resend.again(&e, true).await => {}
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

    /// Run a read, once more if the connection turned out to be dead (a read is safe to
    /// repeat), and on a cluster also while the cluster redirects it (see `Resend::again`).
    async fn read<T: FromRedisValue>(
        &self,
        what: &str,
        request: Read<'_>,
    ) -> Result<T, StoreError> {
        let mut resend = Resend::new(self.inner.cluster);
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
    async fn own_connection(&self, what: &str) -> Result<(Conn, bool), StoreError> {
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

    fn keep_own_connection(&self, conn: Conn) {
        let mut idle = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_BLOCKING {
            idle.push(conn);
        }
    }

    fn drop_own_connections(&self) {
        self.inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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

/// A read request, for [`RedisStore::read`].
enum Read<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
    Script(&'a LuaCall),
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

/// A stored last use: `<milliseconds> <JSON>`.
fn decode_usage(raw: &[u8]) -> Result<Usage, StoreError> {
    let json = raw
        .iter()
        .position(|&b| b == b' ')
        .map(|at| &raw[at + 1..])
        .ok_or_else(|| StoreError::Corrupt("a last-use entry has no time prefix".into()))?;
    decode("last-use entry", json)
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
        let mut get = redis::cmd("GET");
        get.arg(&keys.rev);
        let revision: Option<String> = self
            .read("reading the state revision", Read::Cmd(&get))
            .await?;
        let revision = parse_revision(&keys.rev, revision)?;
        let entries = self.scan_state().await?;
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
            let mut invocation = PRUNE.call();
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
    fn a_cluster_url_names_each_seed_with_the_credentials_of_the_whole() {
        let endpoint = parse_url("redis+cluster://:p%40ss@h1:7000,h2,10.0.0.3:7002/0", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(endpoint.cluster && !endpoint.tls && endpoint.has_password);
        let names: Vec<&str> = endpoint.nodes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["h1:7000", "h2:6379", "10.0.0.3:7002"]);
        for (_, client) in &endpoint.nodes {
            let info = client.get_connection_info();
            assert_eq!(info.redis_settings().password(), Some("p@ss"));
            assert_eq!(info.redis_settings().db(), 0);
        }
        let endpoint = parse_url("rediss+cluster://u:pw@h1:7000", None).unwrap();
        assert!(endpoint.cluster && endpoint.tls && endpoint.has_password);
        let single = parse_url("redis://h:1/2", None).unwrap();
        assert!(!single.cluster && single.db == 2 && single.nodes.len() == 1);
        for bad in [
            "redis+cluster://",
            "redis+cluster://:pw@h1:1,,h2:2",
            "redis+cluster://h1:1,",
            "redis+cluster://:pw@h1:1/2",
            "redis+cluster+x://h1:1",
        ] {
            match parse_url(bad, None) {
                Err(StoreError::Config(message)) => {
                    assert!(!message.contains("pw@"), "{message}")
                }
                Err(e) => panic!("{bad}: {e:?}"),
                Ok(_) => panic!("{bad} parsed"),
            }
        }
        assert_eq!(
            redact("redis+cluster://:pw@h1:1,h2:2"),
            "redis+cluster://***@h1:1,h2:2"
        );
    }

    #[test]
    fn the_cluster_refusals_that_mean_nothing_ran() {
        let error = |reply: &str| {
            redis::parse_redis_value(reply.as_bytes())
                .unwrap()
                .extract_error()
                .unwrap_err()
        };
        for reply in [
            "-MOVED 4452 127.0.0.1:7001\r\n",
            "-ASK 4452 127.0.0.1:7001\r\n",
            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            "-CLUSTERDOWN The cluster is down\r\n",
            "-LOADING Redis is loading the dataset in memory\r\n",
            "-READONLY You can't write against a read only replica.\r\n",
        ] {
            assert!(cluster_did_not_run(&error(reply)), "{reply}");
        }
        for reply in [
            "-ERR Error running script\r\n",
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            "-NOSCRIPT No matching script\r\n",
        ] {
            assert!(!cluster_did_not_run(&error(reply)), "{reply}");
        }
        assert!(!aborted_by_cluster(&error("-MOVED 1 h:1\r\n")));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!cluster_did_not_run(&timeout));
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
