//! Redis Sentinel: a primary and its replicas, watched by Sentinels that promote a replica when
//! the primary fails. The store asks the Sentinels which node is the primary (the redis crate's
//! Sentinel client, which also checks with `ROLE` that the node it names is a primary), keeps
//! one connection to it, and drops it when it closes (the connection says so at once), fails,
//! or the node answers `READONLY` (it was demoted): the next command asks the Sentinels again,
//! so writes, the feed follower and snapshots find a new primary without a restart. It also asks a Sentinel every second
//! which node is the primary, and drops the connection when another one is named: a primary
//! that is cut off rather than dead goes on accepting writes until the Sentinels reach it to
//! demote it, seconds later.

use super::*;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use std::sync::atomic::{AtomicU64, Ordering};

/// The port of a Sentinel named without one.
const SENTINEL_PORT: u16 = 26379;

/// The node scheme (`redis` or `rediss`) and what follows `+sentinel://`, for a
/// `redis+sentinel://` or `rediss+sentinel://` URL.
pub(super) fn sentinel_scheme(url: &str) -> Option<(&'static str, &str)> {
    if let Some(rest) = url.strip_prefix("redis+sentinel://") {
        Some(("redis", rest))
    } else {
        url.strip_prefix("rediss+sentinel://")
            .map(|rest| ("rediss", rest))
    }
}

/// A `redis+sentinel://` URL, parsed.
pub(super) struct SentinelSpec {
    /// The name the Sentinels know the primary by.
    pub(super) master: String,
    /// Each Sentinel, with its `host:port` for messages.
    pub(super) sentinels: Vec<(String, ConnectionInfo)>,
    /// How to talk to the primary: credentials, database, TLS.
    pub(super) node: SentinelNodeConnectionInfo,
    pub(super) tls: bool,
    pub(super) db: i64,
    pub(super) has_password: bool,
}

/// Parse `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/DB]`
/// (`rediss+sentinel://` for TLS to the Sentinels and the nodes). The credentials are the
/// Redis nodes'; the Sentinels are asked without any.
pub(super) fn parse_sentinel_url(url: &str) -> Result<SentinelSpec, StoreError> {
    let invalid = |why: &str| {
        StoreError::Config(format!(
            "invalid Redis store URL {:?}: {why}; {URL_FORM}",
            redact(url)
        ))
    };
    let Some((scheme, rest)) = sentinel_scheme(url) else {
        return Err(invalid("not a Sentinel URL"));
    };
    let (auth, rest) = match rest.rfind('@') {
        Some(at) => rest.split_at(at + 1),
        None => ("", rest),
    };
    if rest.contains(['?', '#']) {
        return Err(invalid("a Sentinel URL takes no options after '?'"));
    }
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    if hosts.is_empty() || hosts.split(',').any(str::is_empty) {
        return Err(invalid(
            "name the Sentinels as HOST[:PORT], separated by commas",
        ));
    }
    let mut parts = path.split('/');
    let master = parts.next().unwrap_or_default();
    if master.is_empty()
        || !master
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(invalid(
            "name the primary as the Sentinels know it after the hosts: \
             redis+sentinel://HOST:PORT/MASTER_NAME/DB",
        ));
    }
    let db: i64 = match parts.next() {
        None => 0,
        Some(db) => db
            .parse()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| invalid("the database after the primary's name must be a number"))?,
    };
    if parts.next().is_some() {
        return Err(invalid("nothing may follow the database"));
    }
    let bad = |e: RedisError| invalid(&describe(&e));
    let mut sentinels = Vec::new();
    for host in hosts.split(',') {
        // `host` or `host:port`, `[v6]` or `[v6]:port`.
        let with_port = if host.ends_with(']') || !host.contains(':') {
            format!("{host}:{SENTINEL_PORT}")
        } else {
            host.to_owned()
        };
        let info = format!("{scheme}://{with_port}")
            .as_str()
            .into_connection_info()
            .map_err(bad)?;
        let name = match info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}")
            }
            other => return Err(invalid(&format!("unsupported address {other}"))),
        };
        sentinels.push((name, info));
    }
    // The nodes' credentials and database, read by the crate's own URL parser (which decodes
    // percent escapes), on a stand-in host.
    let node_url = format!("{scheme}://{auth}sentinel-node/{db}");
    let settings = node_url
        .as_str()
        .into_connection_info()
        .map_err(bad)?
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let has_password = settings.password().is_some();
    let tls = scheme == "rediss";
    let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
    if tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    Ok(SentinelSpec {
        master: master.to_owned(),
        sentinels,
        node,
        tls,
        db,
        has_password,
    })
}

/// The connection to the primary the Sentinels name, made afresh when it fails. Cheap to
/// clone; clones share it.
#[derive(Clone)]
pub(super) struct SentinelConn(Arc<Shared>);

struct Shared {
    master: String,
    /// `MASTER_NAME via Sentinel host:port,…`, for messages.
    server: String,
    db: i64,
    sentinel: tokio::sync::Mutex<Sentinel>,
    node: SentinelNodeConnectionInfo,
    current: Mutex<Option<Primary>>,
    generation: AtomicU64,
    /// The Sentinels, and a connection to the one that answered last, for [`WATCH_EVERY`].
    sentinels: Vec<ConnectionInfo>,
    watch: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

/// How often the store asks a Sentinel which node is the primary. A primary that is cut off
/// rather than dead goes on answering (and accepting writes) until the Sentinels demote it,
/// which they do only when they reach it again, seconds after they promoted a replica; asking
/// the Sentinels moves the store to the new primary within this time instead.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The primary as last resolved, and the shared connection to it.
#[derive(Clone)]
struct Primary {
    generation: u64,
    /// `host:port`.
    addr: String,
    client: Client,
    conn: MultiplexedConnection,
}

impl SentinelConn {
    pub(super) fn new(spec: &SentinelSpec, server: &str) -> Result<Self, StoreError> {
        let infos: Vec<ConnectionInfo> = spec
            .sentinels
            .iter()
            .map(|(_, info)| info.clone())
            .collect();
        let sentinel = Sentinel::build(infos).map_err(|e| {
            StoreError::Config(format!(
                "cannot use the Sentinels {server}: {}",
                describe(&e)
            ))
        })?;
        let shared = Arc::new(Shared {
            master: spec.master.clone(),
            server: server.to_owned(),
            db: spec.db,
            sentinel: tokio::sync::Mutex::new(sentinel),
            node: spec.node.clone(),
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
            sentinels: spec.sentinels.iter().map(|(_, i)| i.clone()).collect(),
            watch: tokio::sync::Mutex::new(None),
        });
        // Ends once the store is dropped.
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let Some(shared) = weak.upgrade() else { return };
                let conn = SentinelConn(shared);
                let _ = tokio::time::timeout(WATCH_EVERY, conn.watch()).await;
            }
        });
        Ok(Self(shared))
    }

    /// Ask a Sentinel which node is the primary; when it names another than the one in use,
    /// stop using that one (the next command asks the Sentinels again).
    async fn watch(&self) {
        let Some(primary) = self.current() else {
            return;
        };
        let mut watch = self.0.watch.lock().await;
        let mut ask = redis::cmd("SENTINEL");
        ask.arg("get-master-addr-by-name").arg(&self.0.master);
        if let Some(conn) = watch.as_mut() {
            match ask.query_async::<Option<(String, u16)>>(conn).await {
                Ok(named) => return self.compare(&primary, named),
                Err(_) => *watch = None,
            }
        }
        for info in &self.0.sentinels {
            let Ok(client) = Client::open(info.clone()) else {
                continue;
            };
            let Ok(mut conn) = client
                .get_multiplexed_async_connection_with_config(&blocking_config())
                .await
            else {
                continue;
            };
            if let Ok(named) = ask.query_async::<Option<(String, u16)>>(&mut conn).await {
                *watch = Some(conn);
                return self.compare(&primary, named);
            }
        }
    }

    fn compare(&self, primary: &Primary, named: Option<(String, u16)>) {
        if let Some((host, port)) = named {
            if format!("{host}:{port}") != primary.addr {
                self.forget(primary.generation);
            }
        }
    }

    fn current(&self) -> Option<Primary> {
        self.0
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The primary: the one in use, or, when there is none, the one the Sentinels name now.
    /// Errors are the crate's own (for `open_error` at start).
    async fn primary(&self) -> RedisResult<Primary> {
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        // One task asks the Sentinels; the others wait for its answer.
        let mut sentinel = self.0.sentinel.lock().await;
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        let limit = CONNECT_TIMEOUT + RESPONSE_TIMEOUT;
        let generation = self.0.generation.fetch_add(1, Ordering::Relaxed) + 1;
        // The connection says when it closes (RESP3): then the primary is forgotten at once,
        // so the next command asks the Sentinels instead of failing on the dead connection.
        let (pushes, mut heard) = tokio::sync::mpsc::unbounded_channel::<redis::PushInfo>();
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            while let Some(push) = heard.recv().await {
                if push.kind == redis::PushKind::Disconnection {
                    if let Some(shared) = weak.upgrade() {
                        SentinelConn(shared).forget(generation);
                    }
                    return;
                }
            }
        });
        let resolve = async {
            let client = sentinel
                .async_master_for(&self.0.master, Some(&self.0.node))
                .await?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_push_sender(pushes);
            let conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            Ok::<_, RedisError>((client, conn))
        };
        let (client, conn) = match tokio::time::timeout(limit, resolve).await {
            Ok(resolved) => resolved?,
            Err(_) => {
                return Err(RedisError::from((
                    ErrorKind::MasterNameNotFoundBySentinel,
                    "no primary found in time",
                    format!(
                        "the Sentinels did not name a reachable primary {} within {limit:?}",
                        self.0.master
                    ),
                )))
            }
        };
        let addr = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}")
            }
            other => other.to_string(),
        };
        if generation > 1 {
            tracing::info!(server = %self.0.server, primary = %addr, "Redis Sentinel: using the primary it names now");
        }
        let primary = Primary {
            generation,
            addr,
            client,
            conn,
        };
        *self.0.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(primary.clone());
        drop(sentinel);
        Ok(primary)
    }

    /// Stop using the primary of `generation` (if it is still the one in use): the next
    /// command asks the Sentinels again.
    fn forget(&self, generation: u64) {
        let mut current = self.0.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|p| p.generation == generation) {
            tracing::warn!(
                server = %self.0.server,
                primary = %current.as_ref().map_or("", |p| p.addr.as_str()),
                "Redis Sentinel: lost the primary; asking the Sentinels again"
            );
            *current = None;
        }
    }

    /// Reach the primary at start: errors as the crate gives them (see `open_error`).
    pub(super) async fn connect(&self) -> RedisResult<()> {
        let mut primary = self.primary().await?;
        let ping = redis::cmd("PING");
        ping.query_async::<String>(&mut primary.conn)
            .await
            .map(drop)
    }

    /// A connection of its own to the current primary (blocking reads, snapshot scans).
    pub(super) async fn own(&self) -> RedisResult<MultiplexedConnection> {
        let primary = self.primary().await.map_err(not_sent)?;
        let result = primary
            .client
            .get_multiplexed_async_connection_with_config(&blocking_config())
            .await;
        self.check(&primary, &result);
        result
    }

    /// After a request to `primary`: forget it when the request says it is no good.
    fn check<T>(&self, primary: &Primary, result: &RedisResult<T>) {
        if let Err(e) = result {
            if primary_lost(e) {
                self.forget(primary.generation);
            }
        }
    }
}

/// A failure to find or reach the primary: nothing was sent, so anything may be sent again
/// (see `cluster_did_not_run`).
fn not_sent(e: RedisError) -> RedisError {
    if e.kind() == ErrorKind::MasterNameNotFoundBySentinel || is_auth_error(&e) {
        return e;
    }
    RedisError::from((
        ErrorKind::MasterNameNotFoundBySentinel,
        "no reachable primary",
        describe(&e),
    ))
}

/// Whether `e` says the connection to the primary is no good any more: it broke or timed out,
/// or the node is no longer (or not yet) a primary.
fn primary_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
            )
        )
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut primary = self.primary().await.map_err(not_sent)?;
            let result = primary.conn.req_packed_command(cmd).await;
            self.check(&primary, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut primary = self.primary().await.map_err(not_sent)?;
            let result = primary
                .conn
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.check(&primary, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}
