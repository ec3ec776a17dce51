//! The Lua scripts every write runs (one script, so Redis runs it with nothing in between),
//! each in a `.lua` file beside this one, and how they are called: by hash, or by source to a
//! node that does not know them yet.

use super::*;

/// Checks shared by the write scripts. Nothing in them writes.
pub(super) const LUA_PRELUDE: &str = include_str!("prelude.lua");

/// One [`Write`]. KEYS: records, names, state, drops, rev, feed, audit, usage, outbox,
/// outbox_due. ARGV: op (create|replace|delete), id, name (create) or expected revision, record
/// JSON, audit JSON, state op (none|set|drop), state JSON, drop_after score or '', change JSON,
/// feed retention, the time another super-admin must be live at or '' (`KeepSuperAdmin`), and
/// the event: its id, its JSON before and after the record, when it is due (Unix ms).
/// Returns {'ok', state revision or '0', audit seq}, {'name_taken'}, {'not_found'},
/// {'conflict', actual revision}, {'last_super_admin'} or {'corrupt', why}.
pub(super) const LUA_COMMIT: &str = include_str!("commit.lua");

/// Record last uses. KEYS: records, usage. ARGV: triples of id, unix milliseconds, usage JSON.
/// A use is kept only for an existing record and only when not older than the one stored
/// (stored as `<milliseconds> <JSON>`).
pub(super) const LUA_USAGE: &str = include_str!("usage.lua");

/// Drop due state entries. KEYS: state, drops, rev, feed. ARGV: now (unix seconds), batch
/// size, feed retention, a random tag below 2^52 (the i-th change gets tag + i). Returns {'ok', dropped} or {'corrupt', why}.
pub(super) const LUA_PRUNE: &str = include_str!("prune.lua");

/// Append one audit entry. KEYS: audit. ARGV: entry JSON. Returns {'ok', seq} or
/// {'corrupt', why}.
pub(super) const LUA_AUDIT: &str = include_str!("audit.lua");

/// The live token with a name, read in one step so a concurrent delete cannot make the name
/// seem to point nowhere. KEYS: names, records. ARGV: name. Returns {}, {id} (a dangling name)
/// or {id, record}.
pub(super) const LUA_BY_NAME: &str = include_str!("by_name.lua");

/// Lease due events. KEYS: outbox, outbox_due. ARGV: now, lease end (Unix ms), limit. Returns
/// {'ok', event JSON…} or {'corrupt', why}.
pub(super) const LUA_CLAIM: &str = include_str!("claim.lua");

/// Write an event's delivery. KEYS: outbox, outbox_due. ARGV: id, event JSON, when it is due
/// again (Unix ms) or '' (settled). Returns {'ok'} or {'corrupt', why}.
pub(super) const LUA_SETTLE: &str = include_str!("settle.lua");

/// Add a notice once. KEYS: notices, outbox, outbox_due. ARGV: marker, keep-until (Unix s),
/// event id, event JSON, due (Unix ms). Returns {'ok', '1'} (added), {'ok', '0'} (the marker
/// was there) or {'corrupt', why}.
pub(super) const LUA_NOTICE: &str = include_str!("notice.lua");

pub(super) static NOTICE: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_NOTICE]));
pub(super) static CLAIM: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_CLAIM]));
pub(super) static SETTLE: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_SETTLE]));
pub(super) static COMMIT: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_COMMIT]));
pub(super) static PRUNE: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_PRUNE]));
pub(super) static AUDIT: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_AUDIT]));
pub(super) static BY_NAME: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_BY_NAME]));
pub(super) static USAGE: LazyLock<Lua> = LazyLock::new(|| Lua::new(&[LUA_PRELUDE, LUA_USAGE]));

/// A Lua script, sent by its hash (`EVALSHA`), or by its source (`EVAL`, which also caches it)
/// when the node that runs it does not know it: a restarted node, a promoted replica, or, on a
/// cluster, a node the slot has just moved to. Both are one command routed by its keys, so a
/// cluster sends them to the slot's node (`SCRIPT LOAD` would go to every node, and fail when
/// any one of them is down).
pub(super) struct Lua {
    source: String,
    sha: String,
}

impl Lua {
    pub(super) fn new(parts: &[&str]) -> Self {
        let source = parts.concat();
        let sha = Script::new(&source).get_hash().to_owned();
        Self { source, sha }
    }

    pub(super) fn call(&'static self) -> LuaCall {
        LuaCall {
            lua: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One invocation of a [`Lua`] script: its keys and arguments.
pub(super) struct LuaCall {
    lua: &'static Lua,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl LuaCall {
    pub(super) fn key(&mut self, key: &str) -> &mut Self {
        self.keys.push(key.as_bytes().to_vec());
        self
    }

    pub(super) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
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

    /// Run the script and, with `wait` = `(replicas, timeout_ms)`, `WAIT replicas timeout_ms`
    /// right behind it in one pipeline, so both surely go over the same connection (`WAIT`
    /// counts the replicas that have this client's writes: on a connection made afresh it
    /// would count a write it never made). Returns the script's reply and, when asked, the
    /// number of replicas that acknowledged it.
    pub(super) async fn invoke_and_wait(
        &self,
        conn: &mut Conn,
        wait: Option<(u32, u64)>,
    ) -> RedisResult<(Vec<String>, Option<i64>)> {
        let Some((replicas, timeout_ms)) = wait else {
            return Ok((self.invoke(conn).await?, None));
        };
        let pipe = |by_hash: bool| {
            let mut pipe = redis::pipe();
            let mut wait = redis::cmd("WAIT");
            wait.arg(replicas).arg(timeout_ms);
            pipe.add_command(self.cmd(by_hash)).add_command(wait);
            pipe
        };
        let (reply, acked) = match pipe(true).query_async::<(Vec<String>, i64)>(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                pipe(false).query_async(conn).await?
            }
            result => result?,
        };
        Ok((reply, Some(acked)))
    }

    pub(super) async fn invoke<T: FromRedisValue>(&self, conn: &mut Conn) -> RedisResult<T> {
        match self.cmd(true).query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.cmd(false).query_async(conn).await
            }
            result => result,
        }
    }
}
