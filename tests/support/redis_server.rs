//! A throwaway `redis-server` for tests and benches: its own process on a free loopback port,
//! its own temporary folder, an append-only file synced on every write, stopped on drop.
//!
//! Part of the harness (`support::redis_server`), for the benches too. Besides the harness's
//! own helpers it uses `std`, `tempfile` and (for TLS certificates) `rcgen`.
//!
//! Where `redis-server` is not installed, [`RedisServer::start_or_skip`] prints why and returns
//! `None`, so a plain `cargo test` still passes; with `CI=true` it panics instead, so CI cannot
//! go green by skipping.

use super::{free_port, in_ci, on_path};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a run without `redis-server` says.
pub const MISSING: &str =
    "redis-server not found on PATH: skipping Redis tests (install it: apt-get install redis-server)";

/// How long a start (including loading the append-only file) may take.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Certificate files for a TLS listener (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that issued it.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// A CA, and a certificate it issued for `localhost` and `127.0.0.1` (the address cluster
    /// nodes announce), written to `dir`; with the CA's PEM for clients.
    pub fn generate(dir: &Path) -> (Self, String) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tessera test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca).unwrap();
        let files = Self {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            ca: dir.join("ca.crt"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(&files.ca, ca.pem()).unwrap();
        (files, ca.pem())
    }
}

/// How to run the server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--requirepass`.
    pub password: Option<String>,
    /// Also listen with TLS on a second port (clients are not asked for certificates).
    pub tls: Option<TlsFiles>,
    /// More `redis-server` arguments.
    pub args: Vec<String>,
}

/// A running `redis-server` of the test's own.
pub struct RedisServer {
    port: u16,
    tls_port: Option<u16>,
    dir: tempfile::TempDir,
    options: Options,
    child: Option<Child>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("tls_port", &self.tls_port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// `s` percent-encoded for the user-info part of a URL.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether a plain (not TLS) Redis on loopback `port` answers PING with PONG, after `AUTH`
/// with `password` when there is one (not LOADING, not a refusal).
pub fn pings(port: u16, password: Option<&str>) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut request = Vec::new();
    if let Some(password) = password {
        request.extend(resp(&["AUTH", password]));
    }
    request.extend(resp(&["PING"]));
    if stream.write_all(&request).is_err() {
        return false;
    }
    let mut reader = BufReader::new(stream);
    let replies = if password.is_some() { 2 } else { 1 };
    let mut line = String::new();
    for _ in 0..replies {
        line.clear();
        if reader.read_line(&mut line).is_err() {
            return false;
        }
    }
    line.starts_with("+PONG")
}

/// One command in RESP.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

impl RedisServer {
    /// Whether `redis-server` can be run here.
    pub fn available() -> bool {
        on_path("redis-server")
    }

    /// A plain server, or `None` (after saying why) when `redis-server` is missing outside CI.
    ///
    /// # Panics
    /// When `redis-server` is missing and `CI=true`, or when it does not start.
    pub fn start_or_skip() -> Option<Self> {
        Self::start_with_or_skip(Options::default())
    }

    /// Like [`RedisServer::start_or_skip`], with options.
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

    /// Start a server; panics when it does not come up.
    pub fn start_with(options: Options) -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("tessera-redis-")
            .tempdir()
            .expect("cannot create a temporary folder for redis-server");
        let mut last_error = String::new();
        // A port found free can be taken by someone else before redis-server binds it: then
        // try another.
        for _ in 0..5 {
            let mut server = Self {
                port: free_port(),
                tls_port: options.tls.as_ref().map(|_| free_port()),
                dir,
                options: options.clone(),
                child: None,
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
                    server.kill();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// `redis://[:PASSWORD@]127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        let auth = self
            .options
            .password
            .as_deref()
            .map(|p| format!(":{}@", url_encode(p)))
            .unwrap_or_default();
        format!("redis://{auth}127.0.0.1:{}/0", self.port)
    }

    /// `rediss://[:PASSWORD@]localhost:TLS_PORT/0`, when the server listens with TLS.
    pub fn tls_url(&self) -> Option<String> {
        let auth = self
            .options
            .password
            .as_deref()
            .map(|p| format!(":{}@", url_encode(p)))
            .unwrap_or_default();
        self.tls_port
            .map(|port| format!("rediss://{auth}localhost:{port}/0"))
    }

    /// The plain port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the append-only file and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kill the server with SIGKILL (no shutdown, no final save) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze the server with SIGSTOP: it reads nothing, answers nothing and sends nothing
    /// until [`RedisServer::resume`], while the kernel still buffers what is sent to it.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Let a server frozen by [`RedisServer::pause`] run on (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("the server is not running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits a pid_t");
        // SAFETY: kill(2) with the pid of a child this value owns and has not reaped.
        let done = unsafe { libc::kill(pid, signal) };
        assert_eq!(done, 0, "kill({pid}, {signal}) failed");
    }

    /// Start the server again on the same ports and folder (killing it first if it runs), so
    /// what its append-only file holds survives; returns once it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                // The old socket can linger for a moment after SIGKILL.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("redis-server restart failed, retrying: {e}");
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("redis-server did not restart: {e}"),
            }
        }
    }

    fn args(&self) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir,
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
            args.extend(["--requirepass".into(), password.clone()]);
        }
        if let (Some(tls), Some(port)) = (&self.options.tls, self.tls_port) {
            args.extend([
                "--tls-port".into(),
                port.to_string(),
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
        args.extend(self.options.args.iter().cloned());
        args
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(self.args())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.is_running() {
                return Err(format!(
                    "redis-server exited at start; its log:\n{}",
                    self.log()
                ));
            }
            if self.answers_ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server did not answer PING within {START_TIMEOUT:?}; its log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers PING with PONG (not LOADING, not a refusal).
    fn answers_ping(&self) -> bool {
        pings(self.port, self.options.password.as_deref())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
