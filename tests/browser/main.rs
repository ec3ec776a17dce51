//! The API tokens page in a real browser: a `tessera serve` process (the built binary, a
//! temporary store and keys, its first super-admin token from `--bootstrap-token`), driven in
//! headless Chromium through chromedriver, at 1280 and at 390 pixels wide.
//!
//! What the page does is checked where it takes effect: a token generated on the page is read
//! from its pop-up and sent to `/v1/auth`, whose answers must change after the page updates,
//! regenerates and deletes it. Inline validation must say what the API says.
//!
//! Screenshots of the list, the generate form and the pop-up are written to
//! `$TESSERA_SCREENSHOTS`, else `<target>/screenshots/`.
//!
//! Where Chromium or chromedriver is not installed the tests print why and pass; with
//! `CI=true` they fail instead, so CI cannot go green by skipping.

#![cfg(feature = "cli")]

#[path = "../support/mod.rs"]
mod support;

use crate::support::app::Base;
use crate::support::binary::Serve;
use crate::support::{free_port, in_ci, Process};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the page may take to show what a step expects.
const PATIENCE: Duration = Duration::from_secs(10);

const DEPLOY: &str = "resource=devtron-app&role=trigger&project=payments&environment=prod&app=api";
const ADMIN_DEPLOY: &str =
    "resource=devtron-app&role=admin&project=payments&environment=prod&app=api";

/// The page's policy, exactly (src/server/ui.rs).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
     data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Whether the browser is installed; says why not (or panics in CI) when it is not.
fn browser_installed() -> bool {
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
struct Tessera {
    _serve: Serve,
    base: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Tessera {
    async fn start(http: &reqwest::Client) -> Self {
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
struct Browser {
    client: Client,
    _driver: Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(http: &reqwest::Client, width: u32, height: u32) -> Self {
        let port = free_port();
        let driver = Process(
            Command::new(CHROMEDRIVER)
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
struct Page {
    browser: Browser,
    serve: Tessera,
    /// `serve`'s API, for `/v1/auth`.
    api: Base,
    http: reqwest::Client,
}

impl Page {
    fn client(&self) -> &Client {
        &self.browser.client
    }

    async fn open(&self) {
        self.client()
            .goto(&format!("{}/", self.serve.base))
            .await
            .unwrap();
    }

    /// The element `css` finds, waiting for it to exist.
    async fn find(&self, css: &str) -> Element {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Wait until `css` finds a displayed element, and return it.
    async fn visible(&self, css: &str) -> Element {
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
    async fn gone(&self, css: &str) {
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

    async fn click(&self, css: &str) {
        self.visible(css).await.click().await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.visible(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn choose(&self, css: &str, value: &str) {
        self.visible(css)
            .await
            .select_by_value(value)
            .await
            .unwrap();
    }

    async fn value(&self, css: &str) -> String {
        self.find(css).await.prop("value").await.unwrap().unwrap()
    }

    /// Wait until the text of `css` contains `part`; returns the whole text.
    async fn text_with(&self, css: &str, part: &str) -> String {
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

    async fn js(&self, script: &str) -> Value {
        self.client().execute(script, vec![]).await.unwrap()
    }

    /// A PNG of the window, written to the screenshot folder.
    async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The page fits the window: nothing wider than the viewport, so no sideways scrolling.
    async fn fits(&self, width: u64) {
        let sizes = self
            .js("return [window.innerWidth, document.documentElement.scrollWidth];")
            .await;
        assert_eq!(sizes[0], width, "the viewport is {width} pixels wide");
        assert!(
            sizes[1].as_u64() <= sizes[0].as_u64(),
            "the page is wider than the window: {sizes}"
        );
    }

    async fn sign_in(&self, token: &str) {
        self.fill("#sign-in-token", token).await;
        self.click("#sign-in-form button[type=submit]").await;
    }

    /// `/v1/auth`'s answer for `token` to the question in `query`.
    async fn auth(&self, token: &str, query: &str) -> StatusCode {
        self.api.auth(token, query).await
    }

    /// Wait until `/v1/auth` gives `want`.
    async fn auth_becomes(&self, token: &str, query: &str, want: StatusCode) {
        self.api.auth_becomes(token, query, want, PATIENCE).await;
    }

    /// A management call with the bootstrap token.
    async fn admin_call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
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
    async fn create(&self, body: Value) -> String {
        let made = self
            .admin_call(reqwest::Method::POST, "/v1/tokens", body)
            .await;
        made["token"]
            .as_str()
            .unwrap_or_else(|| panic!("not created: {made}"))
            .to_owned()
    }

    /// What the API says when asked to create `body`.
    async fn refusal(&self, body: Value) -> String {
        let answer = self
            .admin_call(reqwest::Method::POST, "/v1/tokens", body)
            .await;
        answer["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("not refused: {answer}"))
            .to_owned()
    }

    /// The browser's session storage, local storage and cookies, as JSON.
    async fn storage(&self) -> Value {
        self.js("return {session: sessionStorage.getItem('tessera.token'), \
             local: localStorage.length, cookies: document.cookie};")
            .await
    }
}

fn screenshot_dir() -> PathBuf {
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
async fn with_page<F, Fut>(width: u32, height: u32, body: F)
where
    F: FnOnce(Arc<Page>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if !browser_installed() {
        return;
    }
    let http = reqwest::Client::new();
    let serve = Tessera::start(&http).await;
    let browser = Browser::start(&http, width, height).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_generates_updates_regenerates_and_deletes_a_token_on_the_page() {
    with_page(1280, 1000, |page| async move {
        // Two more tokens, made over the API, so the list has something to sort and mark.
        page.create(json!({"name": "nightly-backup", "description": "Backs up Helm releases",
            "expires": "7d", "permissions": {"grants": [{"resource": "helm-app", "role": "view",
            "project": "infra", "environments": ["prod-cluster__backup"], "apps": ["velero"]}]}}))
            .await;
        page.create(json!({"name": "grafana-sync", "expires": "never", "permissions":
            {"grants": [{"resource": "kubernetes", "role": "view", "cluster": "prod",
            "namespaces": ["monitoring"], "groups": ["", "apps"], "kinds": ["Deployment", "Pod"],
            "names": ["grafana-*"]}]}}))
            .await;

        // Sign in: the token goes to session storage, nowhere else.
        page.open().await;
        page.sign_in(&page.serve.admin).await;
        page.visible("#view-tokens").await;
        page.visible(r#"tr[data-name="grafana-sync"]"#).await;
        let storage = page.storage().await;
        assert_eq!(storage["session"], page.serve.admin.as_str());
        assert_eq!(storage["local"], 0);
        assert_eq!(storage["cookies"], "");
        let soon = page.text_with(r#"tr[data-name="nightly-backup"]"#, "Expires soon").await;
        assert!(soon.contains("helm-app:view project=infra"), "{soon}");
        page.text_with(r#"tr[data-name="grafana-sync"]"#, "Never").await;
        page.text_with(
            r#"tr[data-name="grafana-sync"]"#,
            r#"groups="",apps kinds=Deployment,Pod names=grafana-*"#,
        )
        .await;

        // Generate: a bad name is refused inline with the API's own message.
        page.click("#generate").await;
        page.visible("#view-form").await;
        page.fill("#f-name", "Ci Deployer").await;
        page.click("#form-submit").await;
        let inline = page.text_with("#f-name-error", "is not a valid name").await;
        let api = page
            .refusal(json!({"name": "Ci Deployer", "expires": "30d",
                "permissions": {"super_admin": true}}))
            .await;
        assert_eq!(inline, api);
        assert_eq!(
            page.find("#f-name").await.attr("aria-invalid").await.unwrap().as_deref(),
            Some("true")
        );

        // Specific permissions: Devtron Apps (trigger) and Chart Groups (view). A grant with no
        // project is refused inline as the API refuses it.
        page.fill("#f-name", "ci-deployer").await;
        page.fill("#f-description", "Deploys payments from CI").await;
        page.click(r#"fieldset[data-resource="devtron-app"] .add"#).await;
        let devtron = r#"fieldset.grant[data-resource="devtron-app"]"#;
        page.choose(&format!("{devtron} select.role"), "trigger").await;
        page.fill(&format!("{devtron} input[data-key=environments]"), "prod")
            .await;
        page.click(r#"fieldset[data-resource="chart-group"] .add"#).await;
        page.click("#form-submit").await;
        let inline = page
            .text_with(&format!("{devtron} .grant-error"), "may not be empty")
            .await;
        let api = page
            .refusal(json!({"name": "ci-deployer", "expires": "30d", "permissions": {"grants": [
                {"resource": "devtron-app", "role": "trigger", "project": "",
                 "environments": ["prod"], "apps": ["*"]},
                {"resource": "chart-group", "role": "view", "groups": ["*"]}]}}))
            .await;
        assert!(
            inline.starts_with("permissions: grants[0]: invalid pattern \"\""),
            "{inline}"
        );
        assert!(api.contains(&inline), "the API says {api:?}, the page {inline:?}");
        assert_eq!(page.text_with("#f-name-error", "").await, "");
        page.fill(&format!("{devtron} input[data-key=project]"), "payments")
            .await;
        // The whole form in one picture: a taller window for a moment.
        page.client().set_window_size(1280, 1560).await.unwrap();
        page.js("window.scrollTo(0, 0);").await;
        page.screenshot("generate-form").await;
        page.client().set_window_size(1280, 1000).await.unwrap();

        // The pop-up: the token, once, with a copy button.
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
        page.text_with("#token-dialog", "will not be shown again")
            .await;
        let token = page.value("#token-value").await;
        assert!(token.starts_with("v4.public."), "{token}");
        page.click("#copy-token").await;
        page.text_with("#copy-status", "Copied").await;
        page.screenshot("token-pop-up").await;

        // The copied token works where the permissions say, and nowhere else.
        assert_eq!(page.auth(&token, DEPLOY).await, StatusCode::OK);
        assert_eq!(page.auth(&token, ADMIN_DEPLOY).await, StatusCode::FORBIDDEN);
        let charts = "resource=chart-group&role=view&group=base";
        assert_eq!(page.auth(&token, charts).await, StatusCode::OK);

        page.click("#token-done").await;
        page.gone("#token-dialog[open]").await;
        assert_eq!(page.value("#token-value").await, "", "the token leaves the page");
        let row = r#"tr[data-name="ci-deployer"]"#;
        let shown = page
            .text_with(row, "devtron-app:trigger project=payments envs=prod apps=*")
            .await;
        assert!(shown.contains("chart-group:view groups=*"), "{shown}");
        assert!(shown.contains("Deploys payments from CI"), "{shown}");
        page.screenshot("token-list").await;

        // Search and sorting.
        page.fill("#search", "gra").await;
        page.gone(row).await;
        page.visible(r#"tr[data-name="grafana-sync"]"#).await;
        page.fill("#search", "").await;
        page.visible(row).await;
        page.click(r#"th[data-sort="name"] button"#).await;
        let names = page
            .js("return [...document.querySelectorAll('#tokens-body tr')].map(r => r.dataset.name);")
            .await;
        assert_eq!(
            names,
            json!(["nightly-backup", "grafana-sync", "ci-deployer", "admin"]),
            "sorted by name, Z to A"
        );
        assert_eq!(
            page.find(r#"th[data-sort="name"]"#).await.attr("aria-sort").await.unwrap().as_deref(),
            Some("descending")
        );

        // Update: the same token string, new permissions.
        page.click(&format!("{row} .row-actions button")).await;
        page.visible("#form-regenerate").await;
        assert_eq!(page.value("#f-name").await, "ci-deployer");
        page.choose(&format!("{devtron} select.role"), "admin").await;
        page.fill("#f-description", "Deploys and administers payments")
            .await;
        page.click("#form-submit").await;
        page.text_with("#notice", "was updated").await;
        page.text_with(row, "devtron-app:admin project=payments").await;
        page.auth_becomes(&token, ADMIN_DEPLOY, StatusCode::OK).await;

        // A refusal only the server can know (a taken name) shows the API's message.
        page.click("#generate").await;
        page.fill("#f-name", "grafana-sync").await;
        page.click("#f-super").await;
        page.click("#form-submit").await;
        let taken = page.text_with("#form-error", "already exists").await;
        assert_eq!(
            taken,
            "a token named \"grafana-sync\" already exists; names are unique among live tokens"
        );
        page.click("#form-cancel").await;

        // Regenerate: a new token with a new expiry; the old one stops working.
        page.click(&format!("{row} button.name")).await;
        page.click("#form-regenerate").await;
        page.visible("#regenerate-dialog[open]").await;
        page.text_with(
            "#regenerate-dialog",
            "Scripts and tools that use the old token must be updated",
        )
        .await;
        page.choose("#r-expires", "7d").await;
        page.click("#regenerate-confirm").await;
        page.visible("#token-dialog[open]").await;
        page.text_with("#token-dialog-what", "was regenerated (version 2)")
            .await;
        let renewed = page.value("#token-value").await;
        assert!(renewed.starts_with("v4.public.") && renewed != token);
        page.click("#copy-token").await;
        page.text_with("#copy-status", "Copied").await;
        page.click("#token-done").await;
        page.auth_becomes(&token, DEPLOY, StatusCode::UNAUTHORIZED)
            .await;
        assert_eq!(page.auth(&renewed, ADMIN_DEPLOY).await, StatusCode::OK);
        page.text_with(row, "Expires soon").await;

        // Delete, after a confirmation that says what stops working.
        page.click(&format!("{row} .row-actions button.danger")).await;
        page.visible("#delete-dialog[open]").await;
        page.text_with("#delete-dialog", "Scripts and tools that use this token stop working")
            .await;
        page.text_with("#delete-what", "ci-deployer").await;
        page.click("#delete-confirm").await;
        page.text_with("#notice", "was deleted").await;
        page.gone(row).await;
        page.auth_becomes(&renewed, DEPLOY, StatusCode::UNAUTHORIZED)
            .await;

        // The audit trail has every step, newest first, with the acting token by name.
        page.click(r#"#nav .tab[data-view="audit"]"#).await;
        page.visible(r#"#audit-body tr[data-action="delete"]"#).await;
        let actions = page
            .js("return [...document.querySelectorAll('#audit-body tr')]\
                 .filter(r => r.textContent.includes('ci-deployer'))\
                 .map(r => r.dataset.action + ' ' + r.cells[5].textContent);")
            .await;
        assert_eq!(
            actions,
            json!(["delete ok", "regenerate ok", "update ok", "create ok"])
        );
        page.text_with("#audit-body", "admin (token)").await;
        page.screenshot("audit-trail").await;

        // The public keys, by key id.
        let keys: Value = page
            .http
            .get(format!("{}/v1/keys", page.serve.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kid = keys["keys"][0]["kid"].as_str().unwrap();
        page.click(r#"#nav .tab[data-view="keys"]"#).await;
        page.text_with("#keys-list .kid", kid).await;
        page.text_with("#keys-list .paserk", "k4.public.").await;

        // Signing out forgets the token.
        page.click("#sign-out").await;
        page.visible("#view-sign-in").await;
        assert_eq!(page.storage().await["session"], Value::Null);
        page.fits(1280).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_390_pixels_only_a_super_admin_token_signs_in_and_the_page_fits() {
    with_page(390, 844, |page| async move {
        // The page and its assets: types, caching and the security headers.
        let response = page
            .http
            .get(format!("{}/", page.serve.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["content-security-policy"], CSP);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let etag = headers["etag"].clone();
        let again = page
            .http
            .get(format!("{}/", page.serve.base))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let script = page
            .http
            .get(format!("{}/ui/app.js", page.serve.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            script.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(script.headers()["cache-control"], "no-cache");

        let viewer = page
            .create(
                json!({"name": "chart-viewer", "expires": "30d", "permissions":
                {"grants": [{"resource": "chart-group", "role": "view", "groups": ["*"]}]}}),
            )
            .await;
        page.open().await;
        page.visible("#view-sign-in").await;
        page.fits(390).await;

        // A valid token that is not super-admin: refused, and told why.
        page.sign_in(&viewer).await;
        let refused = page
            .text_with("#sign-in-error", "not a super-admin token")
            .await;
        assert!(refused.contains("managing API tokens needs a super-admin token"));
        assert_eq!(page.storage().await["session"], Value::Null);
        assert!(!page
            .find("#view-tokens")
            .await
            .is_displayed()
            .await
            .unwrap());

        // Not a token of this service at all: a different message.
        page.sign_in("v4.public.bm90IGEgdG9rZW4").await;
        let bad = page.text_with("#sign-in-error", "was refused").await;
        assert!(!bad.contains("super-admin"), "{bad}");
        assert_eq!(page.storage().await["session"], Value::Null);

        // The keyboard alone signs in: type, Tab to the button, Enter.
        let field = page.visible("#sign-in-token").await;
        field.clear().await.unwrap();
        field.send_keys(&page.serve.admin).await.unwrap();
        field.send_keys(&Key::Tab.to_string()).await.unwrap();
        let focused = page.js("return document.activeElement.textContent;").await;
        assert_eq!(focused, "Sign in");
        page.client()
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter.to_string())
            .await
            .unwrap();
        page.visible(r#"tr[data-name="chart-viewer"]"#).await;
        assert_eq!(page.storage().await["session"], page.serve.admin.as_str());
        page.fits(390).await;
        page.screenshot("token-list-390").await;

        // The form fits too, and every field has a label.
        page.click("#generate").await;
        page.click(r#"fieldset[data-resource="kubernetes"] .add"#)
            .await;
        page.fits(390).await;
        let unlabelled = page
            .js(
                "return [...document.querySelectorAll('input, select, textarea')]\
                 .filter(f => f.type !== 'hidden' && f.labels.length === 0).map(f => f.id);",
            )
            .await;
        assert_eq!(unlabelled, json!([]));
        page.screenshot("generate-form-390").await;

        // More of the API's rules, inline and at the API: the same words.
        let kubernetes = r#"fieldset.grant[data-resource="kubernetes"]"#;
        let grant = |namespaces: &str| {
            json!({"grants": [{"resource": "kubernetes", "role": "view", "cluster": "prod",
                "namespaces": [namespaces], "groups": ["", "apps"], "kinds": ["*"],
                "names": ["*"]}]})
        };
        page.fill("#f-name", "k8s-reader").await;
        page.fill(&format!("{kubernetes} input[data-key=cluster]"), "prod")
            .await;
        page.fill(
            &format!("{kubernetes} input[data-key=groups]"),
            r#""", apps"#,
        )
        .await;
        let long = "x".repeat(351);
        page.fill("#f-description", &long).await;
        page.click("#form-submit").await;
        let inline = page.text_with("#f-description-error", "too long").await;
        let api = page
            .refusal(
                json!({"name": "k8s-reader", "description": long, "expires": "30d",
                "permissions": grant("*")}),
            )
            .await;
        assert_eq!(inline, api);
        page.fill("#f-description", "Reads the cluster").await;
        for namespaces in [r#""""#, "team-*x"] {
            page.fill(
                &format!("{kubernetes} input[data-key=namespaces]"),
                namespaces,
            )
            .await;
            page.click("#form-submit").await;
            let inline = page
                .text_with(&format!("{kubernetes} .grant-error"), "invalid pattern")
                .await;
            let pattern = if namespaces == r#""""# {
                ""
            } else {
                namespaces
            };
            let api = page
                .refusal(json!({"name": "k8s-reader", "expires": "30d",
                    "permissions": grant(pattern)}))
                .await;
            assert!(
                api.contains(&inline),
                "the API says {api:?}, the page {inline:?}"
            );
        }
        assert_eq!(page.text_with("#f-description-error", "").await, "");
        page.fill(
            &format!("{kubernetes} input[data-key=namespaces]"),
            "team-*",
        )
        .await;
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
        page.click("#token-done").await;
        page.text_with(
            r#"tr[data-name="k8s-reader"]"#,
            r#"kubernetes:view cluster=prod namespaces=team-* groups="",apps"#,
        )
        .await;

        // A reload keeps the session (same tab); the token is still only in session storage.
        page.client().refresh().await.unwrap();
        page.visible(r#"tr[data-name="chart-viewer"]"#).await;
        assert_eq!(page.storage().await["cookies"], "");
    })
    .await;
}
