//! A throwaway Redis Cluster for tests: three primaries (without replicas, or with one each),
//! each a `redis-server` of the test's own on a free loopback port, in one temporary folder (a
//! subfolder per node), each with an append-only file synced on every write, joined with
//! `redis-cli --cluster create`, stopped on drop.
//!
//! Part of the harness (`support::redis_cluster`), beside the single server of
//! `support::redis_server`, whose rules it shares. It uses only `std` and `tempfile` besides.
//!
//! Where `redis-server` or `redis-cli` is not installed, [`RedisCluster::start_or_skip`] prints
//! why and returns `None`, so a plain `cargo test` still passes; with `CI=true` it panics
//! instead, so CI cannot go green by skipping.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a run without `redis-server` or `redis-cli` says.
pub const MISSING: &str = "redis-server or redis-cli not found on PATH: skipping Redis Cluster \
     tests (install them: apt-get install redis-server, which brings redis-tools)";

/// How long the nodes may take to start, and the cluster to agree on its slots.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How to run the cluster.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--requirepass` (and `--masterauth`) on every node.
    pub password: Option<String>,
    /// TLS only, clients and cluster bus alike (clients are not asked for certificates); the
    /// URLs are then `rediss+cluster://`.
    pub tls: Option<TlsFiles>,
    /// Give each primary a replica (six nodes instead of three), for failovers.
    pub replicas: bool,
}

/// One node of the cluster.
#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A running three-primary Redis Cluster of the test's own.
pub struct RedisCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    options: Options,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("ports", &self.ports())
            .field("dir", &self.dir.path())
            .finish()
    }
}

// The same rules as a single server.
pub use super::redis_server::TlsFiles;
use super::redis_server::{pings, url_encode};
use super::{free_port, in_ci, on_path};

/// A loopback port nothing listens on, whose cluster bus port (`port + 10000`) is free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    loop {
        let port = free_port();
        if port < 65535 - 10000
            && !taken.contains(&port)
            && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
        {
            return port;
        }
    }
}

impl RedisCluster {
    /// Whether `redis-server` and `redis-cli` can be run here.
    pub fn available() -> bool {
        on_path("redis-server") && on_path("redis-cli")
    }

    /// A cluster, or `None` (after saying why) when `redis-server` or `redis-cli` is missing
    /// outside CI.
    ///
    /// # Panics
    /// When either is missing and `CI=true`, or when the cluster does not come up.
    pub fn start_or_skip() -> Option<Self> {
        Self::start_with_or_skip(Options::default())
    }

    /// Like [`RedisCluster::start_or_skip`], with options.
    pub fn start_with_or_skip(options: Options) -> Option<Self> {
        if !Self::available() {
            if in_ci() {
                panic!("{MISSING}");
            }
            // Straight to stderr, not through `eprintln!`, which the test harness captures
            // and hides for a passing test; once per test binary is enough.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let _ = writeln!(std::io::stderr(), "{MISSING}");
            });
            return None;
        }
        Some(Self::start_with(options))
    }

    /// Start a cluster; panics when it does not come up.
    pub fn start_with(options: Options) -> Self {
        let mut last_error = String::new();
        // A port found free can be taken by someone else before redis-server binds it: then
        // start again on other ports.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("tessera-redis-cluster-")
                .tempdir()
                .expect("cannot create a temporary folder for the Redis Cluster");
            let mut ports = Vec::new();
            let nodes = if options.replicas { 6 } else { 3 };
            for _ in 0..nodes {
                ports.push(free_cluster_port(&ports));
            }
            let mut cluster = Self {
                nodes: ports
                    .iter()
                    .map(|&port| Node {
                        port,
                        dir: dir.path().join(port.to_string()),
                        child: None,
                    })
                    .collect(),
                dir,
                options: options.clone(),
            };
            match cluster.spawn_and_join() {
                Ok(()) => return cluster,
                Err(e) => {
                    last_error = e;
                    cluster.kill_all();
                }
            }
        }
        panic!("the Redis Cluster did not start: {last_error}");
    }

    /// `redis+cluster://[:PASSWORD@]127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` (`rediss+cluster`
    /// with TLS).
    pub fn url(&self) -> String {
        self.url_with(&self.ports())
    }

    /// A `redis+cluster://` (or `rediss+cluster://`) URL, with the password if any, naming
    /// `ports` as the seed nodes, in that order (any port: one nothing listens on, too).
    pub fn url_with(&self, ports: &[u16]) -> String {
        let auth = self
            .options
            .password
            .as_deref()
            .map(|p| format!(":{}@", url_encode(p)))
            .unwrap_or_default();
        let seeds: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let scheme = match self.options.tls {
            Some(_) => "rediss",
            None => "redis",
        };
        format!("{scheme}+cluster://{auth}{}", seeds.join(","))
    }

    /// The nodes' ports, in the order they were created.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The folder of the node on `port` (its append-only file, `nodes-PORT.conf`, its log).
    pub fn dir(&self, port: u16) -> &Path {
        &self.node(port).dir
    }

    /// The log so far of the node on `port`.
    pub fn log(&self, port: u16) -> String {
        std::fs::read_to_string(self.dir(port).join("redis.log")).unwrap_or_default()
    }

    /// Run `redis-cli` against the node on `port` (with the password, if any) and return what
    /// it printed, trimmed.
    ///
    /// # Panics
    /// When it cannot run, fails, or prints an error reply.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        match self.try_cli(port, args) {
            Ok(out) => out,
            Err(e) => panic!("redis-cli -p {port} {args:?}: {e}"),
        }
    }

    fn try_cli(&self, port: u16, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
        self.cli_options(&mut command);
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let error_reply = [
            "ERR",
            "WRONGTYPE",
            "NOAUTH",
            "WRONGPASS",
            "MOVED",
            "ASK",
            "CLUSTERDOWN",
        ]
        .iter()
        .any(|code| stdout.starts_with(code));
        if !output.status.success() || error_reply {
            return Err(format!("{stdout}\n{stderr}"));
        }
        Ok(stdout)
    }

    /// `redis-cli`'s options for the password and TLS.
    fn cli_options(&self, command: &mut Command) {
        if let Some(password) = &self.options.password {
            command.args(["--no-auth-warning", "-a", password]);
        }
        if let Some(tls) = &self.options.tls {
            command.arg("--tls").arg("--cacert").arg(&tls.ca);
        }
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        self.cli(self.nodes[0].port, &["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }

    /// The node id of the node on `port` (`CLUSTER MYID`).
    pub fn node_id(&self, port: u16) -> String {
        self.cli(port, &["CLUSTER", "MYID"])
    }

    /// The port of the node that owns `slot`, as the node on `asked` sees it (`CLUSTER NODES`).
    pub fn owner_of(&self, slot: u16, asked: u16) -> u16 {
        let nodes = self.cli(asked, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <epoch> <link> <slot>…
            if fields.len() < 9 || !fields[2].contains("master") {
                continue;
            }
            let owns = fields[8..].iter().any(|range| {
                if range.starts_with('[') {
                    return false; // a slot being imported or migrated: not owned by this entry
                }
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                match (lo.parse::<u16>(), hi.parse::<u16>()) {
                    (Ok(lo), Ok(hi)) => (lo..=hi).contains(&slot),
                    _ => false,
                }
            });
            if owns {
                let addr = fields[1].split('@').next().unwrap_or_default();
                return addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .unwrap_or_else(|| panic!("CLUSTER NODES: bad address in {line:?}"));
            }
        }
        panic!("no node owns slot {slot}:\n{nodes}");
    }

    /// The port of the replica of the primary on `primary` (with [`Options::replicas`]).
    pub fn replica_of(&self, primary: u16) -> u16 {
        let id = self.node_id(primary);
        let nodes = self.cli(primary, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 4 && fields[2].contains("slave") && fields[3] == id {
                let addr = fields[1].split('@').next().unwrap_or_default();
                if let Some(port) = addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
                    return port;
                }
            }
        }
        panic!("the node on {primary} has no replica:\n{nodes}");
    }

    /// Promote the replica on `replica` in place of its primary (`CLUSTER FAILOVER`: the replica
    /// first catches up, so no acknowledged write is lost), and wait until every node sees it
    /// own `slot`.
    pub fn failover(&self, replica: u16, slot: u16) {
        self.cli(replica, &["CLUSTER", "FAILOVER"]);
        let deadline = Instant::now() + START_TIMEOUT;
        for port in self.ports() {
            while self.owner_of(slot, port) != replica {
                assert!(
                    Instant::now() < deadline,
                    "the node on {port} does not see {replica} own slot {slot}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Start moving `slot` to the node on `to`: the target imports it, its owner migrates it.
    /// Keys stay where they are until [`SlotMove::migrate_keys`]; clients meet `ASK` and
    /// `TRYAGAIN` meanwhile.
    pub fn begin_slot_move(&self, slot: u16, to: u16) -> SlotMove<'_> {
        let from = self.owner_of(slot, to);
        assert_ne!(from, to, "slot {slot} is on {to} already");
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let slot_text = slot.to_string();
        self.cli(
            to,
            &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from_id],
        );
        self.cli(
            from,
            &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to_id],
        );
        SlotMove {
            cluster: self,
            slot,
            from,
            to,
            to_id,
        }
    }

    /// Move `slot`, with its keys, to the node on `to` (as `redis-cli --cluster reshard` does,
    /// for one slot); returns the port of its former owner.
    pub fn move_slot(&self, slot: u16, to: u16) -> u16 {
        let mut moving = self.begin_slot_move(slot, to);
        moving.migrate_keys(usize::MAX);
        moving.finish()
    }

    /// How many keys of `slot` the node on `port` holds (`CLUSTER COUNTKEYSINSLOT`).
    pub fn keys_in_slot(&self, port: u16, slot: u16) -> usize {
        self.cli(port, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
            .parse()
            .expect("CLUSTER COUNTKEYSINSLOT answers a number")
    }

    /// Kill every node with SIGKILL and reap them.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn args(&self, node: &Node) -> Vec<String> {
        let port = node.port.to_string();
        // With TLS, no plain port: the TLS port takes its place, and the bus speaks TLS too.
        let plain_port = match self.options.tls {
            Some(_) => "0",
            None => &port,
        };
        let mut args: Vec<String> = [
            "--port",
            plain_port,
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &format!("nodes-{port}.conf"),
            // Nodes gossip at least every half of this: a failover or a moved slot is known
            // everywhere within a second or two, not seven.
            "--cluster-node-timeout",
            "3000",
            "--dir",
            &node.dir.display().to_string(),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--logfile",
            "redis.log",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(password) = &self.options.password {
            args.extend([
                "--requirepass".into(),
                password.clone(),
                "--masterauth".into(),
                password.clone(),
            ]);
        }
        if let Some(tls) = &self.options.tls {
            args.extend([
                "--tls-port".into(),
                port,
                "--tls-cluster".into(),
                "yes".into(),
                "--tls-replication".into(),
                "yes".into(),
                "--tls-cert-file".into(),
                tls.cert.display().to_string(),
                "--tls-key-file".into(),
                tls.key.display().to_string(),
                "--tls-ca-cert-file".into(),
                tls.ca.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]);
        }
        args
    }

    fn spawn_and_join(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            let args = self.args(&self.nodes[i]);
            let node = &mut self.nodes[i];
            std::fs::create_dir_all(&node.dir)
                .map_err(|e| format!("cannot create {}: {e}", node.dir.display()))?;
            let child = Command::new("redis-server")
                .args(args)
                .current_dir(&node.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run redis-server: {e}"))?;
            node.child = Some(child);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for i in 0..self.nodes.len() {
            let port = self.nodes[i].port;
            while !self.answers_ping(port) {
                let running = self.nodes[i]
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
                if !running || Instant::now() > deadline {
                    return Err(format!(
                        "redis-server on {port} did not come up; its log:\n{}",
                        self.log(port)
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        let mut create = Command::new("redis-cli");
        self.cli_options(&mut create);
        create.args(["--cluster", "create"]);
        for port in self.ports() {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args([
                "--cluster-replicas",
                if self.options.replicas { "1" } else { "0" },
            ])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }

        // Every node must see every slot served before a client may rely on any of them.
        for port in self.ports() {
            loop {
                let info = self.try_cli(port, &["CLUSTER", "INFO"]).unwrap_or_default();
                if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "the node on {port} did not reach cluster_state:ok within \
                         {START_TIMEOUT:?}:\n{info}"
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if self.options.replicas {
            // And, with replicas, every node must know every replica, and every replica be in
            // sync with its primary, before a failover can be asked for.
            for port in self.ports() {
                loop {
                    let nodes = self
                        .try_cli(port, &["CLUSTER", "NODES"])
                        .unwrap_or_default();
                    let replicas = nodes.lines().filter(|l| l.contains("slave")).count();
                    let role = self.try_cli(port, &["ROLE"]).unwrap_or_default();
                    let synced = role.starts_with("master")
                        || self
                            .try_cli(port, &["INFO", "replication"])
                            .unwrap_or_default()
                            .lines()
                            .any(|l| l.trim() == "master_link_status:up");
                    if replicas == self.nodes.len() / 2 && synced {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(format!(
                            "the node on {port} did not see its replicas in sync within \
                             {START_TIMEOUT:?}:\n{nodes}"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        Ok(())
    }

    /// Whether the node answers PING with PONG (not LOADING, not a refusal).
    fn answers_ping(&self, port: u16) -> bool {
        if self.options.tls.is_some() {
            return self.try_cli(port, &["PING"]).is_ok_and(|out| out == "PONG");
        }
        pings(port, self.options.password.as_deref())
    }
}

/// A slot being moved from one node to another (see [`RedisCluster::begin_slot_move`]).
pub struct SlotMove<'a> {
    cluster: &'a RedisCluster,
    slot: u16,
    from: u16,
    to: u16,
    to_id: String,
}

impl SlotMove<'_> {
    /// The port of the node the slot is leaving.
    pub fn from(&self) -> u16 {
        self.from
    }

    /// Move up to `limit` of the slot's keys to the target (`MIGRATE`, a few at a time);
    /// returns how many moved.
    pub fn migrate_keys(&mut self, limit: usize) -> usize {
        let c = self.cluster;
        let slot = self.slot.to_string();
        let to_port = self.to.to_string();
        let mut moved = 0;
        while moved < limit {
            let batch = (limit - moved).min(10).to_string();
            let keys = c.cli(self.from, &["CLUSTER", "GETKEYSINSLOT", &slot, &batch]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let mut args: Vec<&str> = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000"];
            if let Some(password) = &c.options.password {
                args.extend(["AUTH", password.as_str()]);
            }
            args.push("KEYS");
            args.extend(&keys);
            let reply = c.cli(self.from, &args);
            assert!(reply == "OK" || reply == "NOKEY", "MIGRATE: {reply}");
            moved += keys.len();
        }
        moved
    }

    /// Give the slot to the target on every node (target first, then the source, then the
    /// rest, as `redis-cli --cluster` does); returns the port of its former owner.
    pub fn finish(self) -> u16 {
        let c = self.cluster;
        let slot = self.slot.to_string();
        let mut order = vec![self.to, self.from];
        order.extend(
            c.ports()
                .into_iter()
                .filter(|p| *p != self.to && *p != self.from),
        );
        for port in order {
            c.cli(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &self.to_id]);
        }
        self.from
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
