//! The harness of the browser tests: a served page in headless Chromium, and what a test
//! asks of it.

use crate::support::app::Base;
use crate::support::binary::Serve;
use crate::support::{free_port, in_ci, Process};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the page may take to show what a step expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub const DEPLOY: &str =
    "resource=devtron-app&role=trigger&project=payments&environment=prod&app=api";
pub const ADMIN_DEPLOY: &str =
    "resource=devtron-app&role=admin&project=payments&environment=prod&app=api";

/// The page's policy, exactly (src/server/ui.rs).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
     data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Whether the browser is installed; says why not (or panics in CI) when it is not.
pub fn browser_installed() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "{} not found: skipping the browser tests (install them: apt-get install chromium \
         chromium-driver)",
        missing.join(" and ")
    );
    assert!(!in_ci(), "{message}");
    // Straight to stderr: the harness hides what a passing test prints.
    let _ = writeln!(std::io::stderr(), "{message}");
    false
}

/// `tessera serve` on a free port, with its own store and keys, and its bootstrap token.
pub struct Tessera {
    pub _serve: Serve,
    pub base: String,
    pub admin: String,
    pub _dir: tempfile::TempDir,
}

impl Tessera {
    pub async fn start(http: &reqwest::Client) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let serve = Serve::start(dir.path(), &["--bootstrap-token", "admin.token"], &[]);
        serve.ready(http).await;
        let admin = std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            base: serve.base.clone(),
            _serve: serve,
            admin,
            _dir: dir,
        }
    }
}

/// chromedriver on a free port, and a session in headless Chromium with a fresh profile.
pub struct Browser {
    pub client: Client,
    pub _driver: Process,
    pub _profile: tempfile::TempDir,
}

impl Browser {
    /// `zone` (an IANA name) is the browser's time zone, else the machine's.
    pub async fn start(
        http: &reqwest::Client,
        width: u32,
        height: u32,
        zone: Option<&str>,
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        // Chromium inherits chromedriver's environment, and takes its time zone from TZ.
        if let Some(zone) = zone {
            command.env("TZ", zone);
        }
        let driver = Process(
            command
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let status = http.get(format!("{url}/status")).send().await;
            if let Ok(status) = status {
                let body: Value = status.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(started.elapsed() < PATIENCE, "chromedriver never got ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        // A window cannot be narrower than 500 pixels; a phone's viewport is emulated.
        let mut options = json!({"binary": CHROMIUM, "args": args});
        if width < 500 {
            options["mobileEmulation"] = json!({"deviceMetrics":
                {"width": width, "height": height, "pixelRatio": 1.0}});
        }
        let capabilities = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }
}

/// A served page in a browser, and a plain HTTP client for what the page's work should do.
pub struct Page {
    pub browser: Browser,
    pub serve: Tessera,
    /// `serve`'s API, for `/v1/auth`.
    pub api: Base,
    pub http: reqwest::Client,
}

impl Page {
    pub fn client(&self) -> &Client {
        &self.browser.client
    }

    pub async fn open(&self) {
        self.client()
            .goto(&format!("{}/", self.serve.base))
            .await
            .unwrap();
    }

    /// The element `css` finds, waiting for it to exist.
    pub async fn find(&self, css: &str) -> Element {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Wait until `css` finds a displayed element, and return it.
    pub async fn visible(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Ok(element) = self.client().find(Locator::Css(css)).await {
                if element.is_displayed().await.unwrap_or(false) {
                    return element;
                }
            }
            assert!(started.elapsed() < PATIENCE, "{css} is not shown");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Wait until no element matches `css`.
    pub async fn gone(&self, css: &str) {
        let started = Instant::now();
        while !self
            .client()
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
        {
            assert!(started.elapsed() < PATIENCE, "{css} is still there");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.visible(css).await.click().await.unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.visible(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn choose(&self, css: &str, value: &str) {
        self.visible(css)
            .await
            .select_by_value(value)
            .await
            .unwrap();
    }

    pub async fn value(&self, css: &str) -> String {
        self.find(css).await.prop("value").await.unwrap().unwrap()
    }

    /// Wait until the text of `css` contains `part`; returns the whole text.
    pub async fn text_with(&self, css: &str, part: &str) -> String {
        let started = Instant::now();
        loop {
            let text = match self.client().find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(part) {
                return text;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{css} says {text:?}, not {part:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client().execute(script, vec![]).await.unwrap()
    }

    /// A PNG of the window, written to the screenshot folder.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The page fits the window: nothing wider than the viewport, so no sideways scrolling.
    pub async fn fits(&self, width: u64) {
        let sizes = self
            .js("return [window.innerWidth, document.documentElement.scrollWidth];")
            .await;
        assert_eq!(sizes[0], width, "the viewport is {width} pixels wide");
        assert!(
            sizes[1].as_u64() <= sizes[0].as_u64(),
            "the page is wider than the window: {sizes}"
        );
    }

    pub async fn sign_in(&self, token: &str) {
        self.fill("#sign-in-token", token).await;
        self.click("#sign-in-form button[type=submit]").await;
    }

    /// `/v1/auth`'s answer for `token` to the question in `query`.
    pub async fn auth(&self, token: &str, query: &str) -> StatusCode {
        self.api.auth(token, query).await
    }

    /// Wait until `/v1/auth` gives `want`.
    pub async fn auth_becomes(&self, token: &str, query: &str, want: StatusCode) {
        self.api.auth_becomes(token, query, want, PATIENCE).await;
    }

    /// A management call with the bootstrap token.
    pub async fn admin_call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.serve.base))
            .bearer_auth(&self.serve.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// Make a token through the API (not the page); returns the token string.
    pub async fn create(&self, body: Value) -> String {
        let made = self
            .admin_call(reqwest::Method::POST, "/v1/tokens", body)
            .await;
        made["token"]
            .as_str()
            .unwrap_or_else(|| panic!("not created: {made}"))
            .to_owned()
    }

    /// What the API says when asked to create `body`.
    pub async fn refusal(&self, body: Value) -> String {
        let answer = self
            .admin_call(reqwest::Method::POST, "/v1/tokens", body)
            .await;
        answer["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("not refused: {answer}"))
            .to_owned()
    }

    /// The browser's session storage, local storage and cookies, as JSON.
    pub async fn storage(&self) -> Value {
        self.js("return {session: sessionStorage.getItem('tessera.token'), \
             local: localStorage.length, cookies: document.cookie};")
            .await
    }
}

pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("TESSERA_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("screenshots"),
    }
}

/// Run `body` on a fresh server and browser window of this size; the browser is closed
/// whatever happens, so a failing test leaves no Chromium behind.
pub async fn with_page<F, Fut>(width: u32, height: u32, body: F)
where
    F: FnOnce(Arc<Page>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    with_page_in(width, height, None, body).await;
}

/// [`with_page`], with the browser in the time zone `zone`.
pub async fn with_page_in<F, Fut>(width: u32, height: u32, zone: Option<&str>, body: F)
where
    F: FnOnce(Arc<Page>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if !browser_installed() {
        return;
    }
    let http = reqwest::Client::new();
    let serve = Tessera::start(&http).await;
    let browser = Browser::start(&http, width, height, zone).await;
    let page = Arc::new(Page {
        browser,
        api: Base::url(&serve.base),
        serve,
        http,
    });
    let outcome = tokio::spawn(body(page.clone())).await;
    let _ = page.client().clone().close().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

impl Page {
    /// A call to the API with `token`: the status and the JSON body (`Null` when none).
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.serve.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The record of the live token named `name`, read with `token`.
    pub async fn record(&self, token: &str, name: &str) -> Value {
        let (status, list) = self
            .call(token, reqwest::Method::GET, "/v1/tokens", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no token {name} in {list}"))
            .clone()
    }

    /// Answer the page's own question (its `#ask-dialog`, never `window.confirm`) with the
    /// choice `value`; returns the question's text.
    pub async fn answer(&self, value: &str) -> String {
        self.visible("#ask-dialog[open]").await;
        let text = self.text_with("#ask-dialog", "").await;
        self.click(&format!(
            r#"#ask-dialog[open] button[data-choice="{value}"]"#
        ))
        .await;
        self.gone("#ask-dialog[open]").await;
        text
    }

    /// The page's address after `#`, with the `#`.
    pub async fn hash(&self) -> String {
        self.js("return location.hash;")
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Wait until the address is `want`.
    pub async fn hash_becomes(&self, want: &str) {
        let started = Instant::now();
        loop {
            let hash = self.hash().await;
            if hash == want {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the address is {hash}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Set a field's value as a person would (a date picker cannot be typed into reliably).
    pub async fn set_value(&self, css: &str, value: &str) {
        self.visible(css).await;
        self.client()
            .execute(
                "const f = document.querySelector(arguments[0]); f.value = arguments[1]; \
                 f.dispatchEvent(new Event('input', {bubbles: true})); \
                 f.dispatchEvent(new Event('change', {bubbles: true}));",
                vec![json!(css), json!(value)],
            )
            .await
            .unwrap();
    }

    /// Whether the element `css` finds is shown.
    pub async fn shown(&self, css: &str) -> bool {
        self.find(css).await.is_displayed().await.unwrap()
    }
}
