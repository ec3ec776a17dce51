//! The HTTP service under test. In process by default: [`tessera::server::app`] (the router
//! with its request metrics, what `serve` runs) called with `tower`'s `oneshot`, each request
//! carrying the client address a connection would give it, as `benches/http_handler.rs` does.
//! No socket, no HTTP parsing. On a loopback socket ([`Server::listen`], [`ServerThread`]) where
//! the socket is the point: the client address taken from the peer, a graceful stop, a client
//! in another process.
//!
//! Requests are written once for both: [`Base::request`] builds a [`Call`] (like reqwest's
//! builder) that goes in process or over the socket, and gives back an [`Answer`].

use axum::body::{Body, HttpBody as _};
use axum::extract::ConnectInfo;
use axum::http::header::{
    HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use tessera::server::{self, AppState, Track};
use tessera::startup::{self, ServerConfig};
use tower::ServiceExt as _;

/// The client address of a request made in process: a local client's, as over loopback.
pub const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000);

/// How long `/v1/auth` may take to apply a change (the state mirror follows the store's feed).
const PATIENCE: Duration = Duration::from_secs(5);

/// A server's configuration for a test: keys and the embedded store in `dir`, the last use of
/// tokens written every 20 ms.
pub fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        keys_dir: dir.join("keys"),
        store_url: format!("file:{}", dir.join("data/tessera.redb").display()),
        usage_flush: Duration::from_millis(20),
        ..ServerConfig::default()
    }
}

/// Where requests go: the service in process, or a server's URL.
#[derive(Clone)]
pub enum Base {
    /// [`server::app`], called in place.
    InProcess(Track<Router>),
    /// `http://ADDR`, with a client of its own.
    Url(String, reqwest::Client),
}

impl std::fmt::Display for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InProcess(_) => f.write_str("(in process)"),
            Self::Url(url, _) => f.write_str(url),
        }
    }
}

impl Base {
    /// The server at `url` (`http://ADDR`).
    pub fn url(url: impl Into<String>) -> Self {
        Self::Url(url.into(), reqwest::Client::new())
    }

    /// The URL of a server on a socket.
    ///
    /// # Panics
    /// In process, where there is none.
    pub fn as_url(&self) -> &str {
        match self {
            Self::Url(url, _) => url,
            Self::InProcess(_) => panic!("a server in process has no URL: listen on a socket"),
        }
    }

    /// `method path`, to be completed and sent.
    pub fn request(&self, method: Method, path: &str) -> Call {
        Call {
            base: self.clone(),
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: None,
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    /// `/v1/auth`'s status for `token` and the question in `query`.
    pub async fn auth(&self, token: &str, query: &str) -> StatusCode {
        self.get(&format!("/v1/auth?{query}"))
            .bearer_auth(token)
            .send()
            .await
            .status
    }

    /// Wait until `/v1/auth` answers `want`; fail after `patience`. A verifier applies a change
    /// from its token state's feed within moments, not within the request that made it.
    pub async fn auth_becomes(
        &self,
        token: &str,
        query: &str,
        want: StatusCode,
        patience: Duration,
    ) {
        let started = Instant::now();
        loop {
            let got = self.auth(token, query).await;
            if got == want {
                return;
            }
            assert!(
                started.elapsed() < patience,
                "{self}/v1/auth?{query} still answers {got}, wanted {want}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A request being made, like reqwest's `RequestBuilder`; [`Call::send`] sends it.
pub struct Call {
    base: Base,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
}

impl Call {
    /// Add a header (a second one of the same name is sent too).
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        let value = HeaderValue::from_str(value.as_ref()).expect("a header value");
        self.headers.append(name, value);
        self
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// `value` as the JSON body.
    pub fn json(mut self, value: &Value) -> Self {
        if !self.headers.contains_key(CONTENT_TYPE) {
            self.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        self.body(serde_json::to_vec(value).unwrap())
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub async fn send(self) -> Answer {
        match self.base {
            Base::InProcess(app) => {
                let mut headers = self.headers;
                // What a client sends with a body.
                if let Some(body) = &self.body {
                    headers
                        .entry(CONTENT_LENGTH)
                        .or_insert_with(|| HeaderValue::from(body.len()));
                }
                let head = self.method == Method::HEAD;
                let mut request = Request::builder()
                    .method(self.method)
                    .uri(&self.path)
                    .body(Body::from(self.body.unwrap_or_default()))
                    .unwrap();
                *request.headers_mut() = headers;
                // What `serve` (`into_make_service_with_connect_info`) adds to every request
                // of a connection.
                request.extensions_mut().insert(ConnectInfo(PEER));
                let response = app.oneshot(request).await.unwrap();
                let (mut parts, body) = response.into_parts();
                // What hyper writes when it sends the response: a body whose length is known
                // gets it as Content-Length (a denial's `Content-Length: 0` lets a gateway keep
                // its connection), unless the status or a HEAD request has no body.
                let bodiless = head
                    || parts.status.is_informational()
                    || parts.status == StatusCode::NO_CONTENT
                    || parts.status == StatusCode::NOT_MODIFIED;
                if let Some(length) = body.size_hint().exact() {
                    if !bodiless && !parts.headers.contains_key(TRANSFER_ENCODING) {
                        parts
                            .headers
                            .entry(CONTENT_LENGTH)
                            .or_insert_with(|| HeaderValue::from(length));
                    }
                }
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                Answer {
                    status: parts.status,
                    headers: parts.headers,
                    text: String::from_utf8(bytes.to_vec()).expect("a body in UTF-8"),
                }
            }
            Base::Url(url, client) => {
                let mut request = client.request(self.method, format!("{url}{}", self.path));
                for (name, value) in &self.headers {
                    request = request.header(name, value);
                }
                if let Some(body) = self.body {
                    request = request.body(body);
                }
                let response = request.send().await.unwrap();
                Answer {
                    status: response.status(),
                    headers: response.headers().clone(),
                    text: response.text().await.unwrap(),
                }
            }
        }
    }
}

/// A response, kept whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
}

/// A server on a loopback socket in this process, on the caller's runtime.
pub struct Listening {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Listening {
    /// Serve `state` on a free loopback port.
    pub async fn start(state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{addr}"),
            stop,
            task,
        }
    }

    /// Stop gracefully: the server must finish what it serves and return `Ok` within 10 s.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

/// A server on a loopback socket in a thread and runtime of its own, for a test that blocks
/// (on a child process, say); stopped, and its store released, on drop.
pub struct ServerThread {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    pub fn start(config: ServerConfig) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, address) = std::sync::mpsc::channel::<String>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (state, _) = startup::open(&config).await.unwrap();
                let listening = Listening::start(state).await;
                bound.send(listening.base.clone()).unwrap();
                let _ = stopped.await;
                listening.stop().await;
            });
        });
        Self {
            base: address.recv().expect("the server starts"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An instance of the service: its state, and where its requests go.
pub struct Server {
    pub base: Base,
    pub state: AppState,
    listening: Option<Listening>,
}

impl Server {
    /// An instance opened from `config`, called in process.
    pub async fn start(config: ServerConfig) -> Self {
        let (state, _) = startup::open(&config).await.unwrap();
        Self::in_process(state)
    }

    /// An instance opened from `config`, served on a loopback socket.
    pub async fn listen(config: ServerConfig) -> Self {
        let (state, _) = startup::open(&config).await.unwrap();
        Self::on_socket(state).await
    }

    pub fn in_process(state: AppState) -> Self {
        Self {
            base: Base::InProcess(server::app(state.clone())),
            state,
            listening: None,
        }
    }

    pub async fn on_socket(state: AppState) -> Self {
        let listening = Listening::start(state.clone()).await;
        Self {
            base: Base::url(&listening.base),
            state,
            listening: Some(listening),
        }
    }

    /// Write the noted uses of tokens to the store now. In process nothing does it on a timer,
    /// as `serve` does every `usage_flush`.
    pub async fn flush_usage(&self) {
        self.state.flush_usage().await;
    }

    /// Stop: on a socket gracefully (see [`Listening::stop`]); in process, write the noted uses
    /// of tokens, as a stopping server does.
    pub async fn stop(self) {
        match self.listening {
            Some(listening) => listening.stop().await,
            None => self.state.flush_usage().await,
        }
    }
}

/// An issuer on the embedded store of a folder of its own (a key made on its first start), with
/// its first super-admin token.
pub struct App {
    // Dropped first: the server lets go of the store before the folder goes.
    pub server: Server,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

impl App {
    /// In process.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// In process, with the test's [`config`] changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let (state, dir) = Self::open(configure).await;
        Self::with(Server::in_process(state), dir).await
    }

    /// On a loopback socket.
    pub async fn listen() -> Self {
        Self::listen_with(|_| {}).await
    }

    /// On a loopback socket, with the test's [`config`] changed by `configure`.
    pub async fn listen_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let (state, dir) = Self::open(configure).await;
        Self::with(Server::on_socket(state).await, dir).await
    }

    /// The state, with the first super-admin token (`admin`) made by the startup's bootstrap.
    async fn open(configure: impl FnOnce(&mut ServerConfig)) -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.bootstrap_token = Some(dir.path().join("admin.token"));
        configure(&mut config);
        let (state, _) = startup::open(&config).await.unwrap();
        (state, dir)
    }

    async fn with(server: Server, dir: tempfile::TempDir) -> Self {
        let admin = std::fs::read_to_string(dir.path().join("admin.token"))
            .expect("the bootstrap token of a fresh store")
            .trim()
            .to_owned();
        Self { server, admin, dir }
    }

    pub fn request(&self, method: Method, path: &str) -> Call {
        self.server.base.request(method, path)
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Call {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    /// `method path` with `token` and a JSON `body`: the status, the headers and the body as
    /// JSON (`null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await;
        let value = if answer.text.is_empty() {
            Value::Null
        } else {
            answer.json()
        };
        (answer.status, answer.headers, value)
    }

    /// A token named `name` with `permissions` (JSON), made with the admin token: the token and
    /// its record.
    pub async fn create(&self, name: &str, permissions: &str) -> (String, Value) {
        let body = json!({"name": name, "description": "made by a test", "expires": "30d",
                          "permissions": serde_json::from_str::<Value>(permissions).unwrap()});
        let (status, headers, value) = self
            .call(Method::POST, "/v1/tokens", Some(&self.admin), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        assert_eq!(headers["cache-control"], "no-store");
        (
            value["token"].as_str().unwrap().to_owned(),
            value["record"].clone(),
        )
    }

    /// `/v1/auth` with `token` and a query; the status.
    pub async fn auth(&self, token: &str, query: &str) -> StatusCode {
        self.server.base.auth(token, query).await
    }

    /// Wait until `/v1/auth` gives `want`.
    pub async fn auth_becomes(&self, token: &str, query: &str, want: StatusCode) {
        let base = &self.server.base;
        base.auth_becomes(token, query, want, PATIENCE).await;
    }

    /// See [`Server::flush_usage`].
    pub async fn flush_usage(&self) {
        self.server.flush_usage().await;
    }

    /// See [`Server::stop`].
    pub async fn stop(self) {
        self.server.stop().await;
    }
}
