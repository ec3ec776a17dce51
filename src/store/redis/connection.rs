//! Connections: the kinds of connection, which cluster errors mean a command did not run,
//! when a command is sent again, and how Redis errors become store errors.

use super::*;

/// A connection of any kind. Every command goes through [`ConnectionLike`], so scripts,
/// pipelines and plain commands take the same path on a single Redis and on a cluster.
#[derive(Clone)]
pub(super) enum Conn {
    /// The shared connection to a single Redis: reconnects by itself.
    Managed(ConnectionManager),
    /// A connection to a single Redis for blocking reads.
    Direct(MultiplexedConnection),
    /// A Redis Cluster connection: sends each command to the node that owns its slot.
    Cluster(ClusterConnection),
    /// The shared connection to the primary Redis Sentinel names; made afresh when it fails.
    Sentinel(SentinelConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
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
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(c) => c.get_db(),
            Conn::Direct(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// How to make a connection of one's own (for blocking reads; on a cluster, also for scans).
// One per store: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Connector {
    Single(Client),
    /// A cluster client whose connections have no response timeout (the caller bounds each
    /// read), do not resend anything by themselves, and speak RESP2, so they do not reconnect
    /// behind the caller's back either (see `scan_state`).
    Cluster(ClusterClient),
    /// Connections to the primary Redis Sentinel names now.
    Sentinel(SentinelConn),
}

/// Whether `e` says the cluster did not run the request, which may then be sent again, even a
/// write: a redirection (the slot moved, or is moving), a cluster or primary that is down for
/// the moment, a node still loading or demoted by a failover, no connection to the slot's node,
/// or a refused connection (nothing was sent). A MULTI/EXEC block aborted for one of these
/// reasons counts too.
pub(super) fn cluster_did_not_run(e: &RedisError) -> bool {
    match e.kind() {
        // No connection to the slot's node; or (Sentinel) no primary found or reached.
        ErrorKind::ClusterConnectionNotFound | ErrorKind::MasterNameNotFoundBySentinel => true,
        ErrorKind::Server(ServerErrorKind::ExecAbort) => aborted_by_cluster(e),
        ErrorKind::Server(kind) => cluster_refusal(kind),
        _ => e.is_connection_refusal(),
    }
}

/// A server error by which a cluster refuses to run a command for now.
pub(super) fn cluster_refusal(kind: ServerErrorKind) -> bool {
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
pub(super) fn aborted_by_cluster(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ExecAbort)
        && e.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, error)| error.kind().is_some_and(cluster_refusal))
        })
}

/// When a request that failed is sent again.
pub(super) struct Resend {
    /// A cluster, or a primary found through Sentinel: a failover can make a request fail
    /// that then succeeds on the new primary, so requests that did not run are sent again
    /// for a while.
    cluster: bool,
    started: Instant,
    attempts: u32,
}

impl Resend {
    pub(super) fn new(cluster: bool) -> Self {
        Self {
            cluster,
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// Whether to send again a request (a write, or a read) that failed with `e`; on a
    /// cluster, after a pause when the cluster needs time (a slot being moved, a failover).
    pub(super) async fn again(&mut self, e: &RedisError, write: bool) -> bool {
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
pub(super) fn pause(attempt: u32) -> Duration {
    Duration::from_millis(10u64 << attempt.min(5)).min(Duration::from_millis(250))
}

/// A read request, for [`RedisStore::read`].
pub(super) enum Read<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
    Script(&'a LuaCall),
}

/// Blocking reads wait as long as asked; the caller bounds them with its own timeout.
pub(super) fn blocking_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
}

pub(super) fn is_auth_error(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// An error while opening: credentials and configuration are the operator's to fix.
pub(super) fn open_error(server: &str, has_password: bool, e: RedisError) -> StoreError {
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
pub(super) fn describe(e: &RedisError) -> String {
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

pub(super) fn map_error(server: &str, what: &str, write: bool, e: RedisError) -> StoreError {
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
