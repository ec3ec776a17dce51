//! Redis under Sentinel for tests: a primary, replicas of it, and three Sentinels watching it
//! (quorum 2, the primary taken as down after 1 s), each its own process on free loopback
//! ports in temporary folders, stopped on drop.
//!
//! Where `redis-server` is not installed, [`SentinelSetup::start_or_skip`] prints why and
//! returns `None`; with `CI=true` it panics instead (see [`RedisServer::start_with_or_skip`]).
//! A Sentinel runs as `redis-server sentinel.conf --sentinel`.

use super::redis_server::{pings, Options, RedisServer};
use super::{free_port, Process};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The name the Sentinels know the primary by.
pub const MASTER: &str = "tessera";

/// How long the Sentinels wait before they take an unanswering primary as down.
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);

/// A primary, its replicas and three Sentinels.
pub struct SentinelSetup {
    /// The first primary (a failover test kills it: see [`RedisServer::kill`]).
    pub primary: RedisServer,
    /// Its replicas.
    pub replicas: Vec<RedisServer>,
    sentinels: Vec<Sentinel>,
}

struct Sentinel {
    port: u16,
    _dir: tempfile::TempDir,
    _process: Process,
}

/// One command over a plain connection to `127.0.0.1:port`.
pub fn query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    query_as(port, None, args)
}

/// [`query`] after `AUTH password`.
pub fn query_as<T: redis::FromRedisValue>(
    port: u16,
    password: Option<&str>,
    args: &[&str],
) -> redis::RedisResult<T> {
    let auth = password
        .map(|p| format!(":{}@", super::redis_server::url_encode(p)))
        .unwrap_or_default();
    let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut conn)
}

/// `INFO replication` of the Redis on `port`, as a map.
pub fn replication(port: u16) -> HashMap<String, String> {
    replication_as(port, None)
}

/// [`replication`] after `AUTH password`.
pub fn replication_as(port: u16, password: Option<&str>) -> HashMap<String, String> {
    query_as::<String>(port, password, &["INFO", "replication"])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Wait until `check` holds, or panic with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A replica of `primary`, started and in sync with it.
pub fn start_replica(primary: &RedisServer) -> RedisServer {
    start_replica_as(primary, None)
}

/// [`start_replica`], with `password` required of clients and given to the primary.
pub fn start_replica_as(primary: &RedisServer, password: Option<&str>) -> RedisServer {
    let mut args = vec![
        "--replicaof".to_owned(),
        "127.0.0.1".to_owned(),
        primary.port().to_string(),
    ];
    if let Some(password) = password {
        args.extend(["--masterauth".to_owned(), password.to_owned()]);
    }
    let replica = RedisServer::start_with(Options {
        password: password.map(str::to_owned),
        args,
        ..Options::default()
    });
    wait_until("the replica syncs", Duration::from_secs(15), || {
        replication_as(replica.port(), password)
            .get("master_link_status")
            .map(String::as_str)
            == Some("up")
    });
    replica
}

impl SentinelSetup {
    /// A primary with `replicas` replicas and three Sentinels that all know each other and the
    /// replicas (so a failover can start at once), or `None` (after saying why) when
    /// `redis-server` is missing outside CI.
    pub fn start_or_skip(replicas: usize) -> Option<Self> {
        Self::start_as_or_skip(replicas, None)
    }

    /// [`SentinelSetup::start_or_skip`], with `password` required by every Redis node (and
    /// given by the replicas and the Sentinels; the Sentinels themselves require none).
    pub fn start_as_or_skip(replicas: usize, password: Option<&str>) -> Option<Self> {
        let mut args = Vec::new();
        if let Some(password) = password {
            args.extend(["--masterauth".to_owned(), password.to_owned()]);
        }
        let primary = RedisServer::start_with_or_skip(Options {
            password: password.map(str::to_owned),
            args,
            ..Options::default()
        })?;
        let replicas: Vec<RedisServer> = (0..replicas)
            .map(|_| start_replica_as(&primary, password))
            .collect();
        let sentinels = (0..3)
            .map(|_| Sentinel::start(primary.port(), password))
            .collect();
        let setup = Self {
            primary,
            replicas,
            sentinels,
        };
        let want = setup.replicas.len().to_string();
        for sentinel in &setup.sentinels {
            wait_until(
                "each Sentinel knows the others and the replicas",
                Duration::from_secs(30),
                || {
                    let master = sentinel.master();
                    master.get("num-other-sentinels").map(String::as_str) == Some("2")
                        && master.get("num-slaves") == Some(&want)
                },
            );
        }
        Some(setup)
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/tessera/0`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER}/0", hosts.join(","))
    }

    /// [`SentinelSetup::url`] with `password` for the Redis nodes, URL-encoded.
    pub fn url_with_password(&self, password: &str) -> String {
        let hosts = self.url();
        let hosts = hosts.strip_prefix("redis+sentinel://").unwrap_or(&hosts);
        format!(
            "redis+sentinel://:{}@{hosts}",
            super::redis_server::url_encode(password)
        )
    }

    /// The port of the primary the first Sentinel that answers names.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            query::<Vec<String>>(s.port, &["SENTINEL", "get-master-addr-by-name", MASTER])
                .ok()
                .and_then(|addr| addr.get(1).and_then(|p| p.parse().ok()))
        })
    }
}

impl Sentinel {
    fn start(primary: u16, password: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tessera-sentinel-")
            .tempdir()
            .expect("cannot create a temporary folder for a Sentinel");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile sentinel.log\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} {down}\n\
                 sentinel failover-timeout {MASTER} 5000\n\
                 sentinel parallel-syncs {MASTER} 2\n{auth}",
                dir = dir.path().display(),
                down = DOWN_AFTER.as_millis(),
                auth = password
                    .map(|p| format!("sentinel auth-pass {MASTER} {p}\n"))
                    .unwrap_or_default(),
            );
            std::fs::write(&conf, text).expect("cannot write sentinel.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot run redis-server --sentinel");
            let mut process = Process(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if pings(port, None) {
                    return Self {
                        port,
                        _dir: dir,
                        _process: process,
                    };
                }
                if matches!(process.0.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            last_error =
                std::fs::read_to_string(dir.path().join("sentinel.log")).unwrap_or_default();
            let _ = process.0.kill();
        }
        panic!("a Sentinel did not start; its log:\n{last_error}");
    }

    fn master(&self) -> HashMap<String, String> {
        query(self.port, &["SENTINEL", "master", MASTER]).unwrap_or_default()
    }
}
