//! The gateway recipes in `docs/gateways/`, run for real: nginx, Caddy and Traefik, each started
//! from its recipe with only the ports changed, in front of an echo API and a `tessera serve`.
//! Each is attacked as a client would: no token, a garbage one, a denied one, spoofed identity
//! and forwarded headers, its own question in the query or the header, another method, a body,
//! a deleted token, a flood of forgeries, and Tessera gone.
//!
//! Between the gateway and Tessera stands a relay that counts connections (denials must not
//! cost the kept-alive connection) and keeps what the gateway sent (a client's spoofed headers
//! must not reach Tessera).

#![cfg(feature = "cli")]

use crate::support::binary::Serve;
use crate::support::free_port;
use crate::support::gateways::{self, Echo, Gateway, Kind, Relay};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The route every recipe protects, and the permission it asks.
const ROUTE: &str = "/api/orders";
const TRIGGER: &str = r#"{"grants": [{"resource": "devtron-app", "role": "trigger",
    "project": "payments", "environments": ["prod"], "apps": ["*"]}]}"#;
/// Too weak for the route: a client holding this tries to widen the question.
const VIEW: &str = r#"{"grants": [{"resource": "devtron-app", "role": "view",
    "project": "payments", "environments": ["prod"], "apps": ["*"]}]}"#;
/// The question such a client would like to be asked.
const WEAKER_QUERY: &str =
    "resource=devtron-app&role=view&project=payments&environment=prod&app=api";
const WEAKER_HEADER: &str =
    "resource=devtron-app,role=view,project=payments,environment=prod,app=api";
/// The bad signatures a client may send before its new tokens go unchecked for a while.
const FORGERIES: u32 = 3;
/// A client address no one here has: if it reaches Tessera, a client chose its own address.
const SPOOFED_CLIENT: &str = "203.0.113.9";

/// Tessera, the echo API, the relay between, and the gateway in front.
struct Stack {
    http: Client,
    dir: tempfile::TempDir,
    tessera: Serve,
    admin: String,
    echo: Echo,
    relay: Relay,
    gateway: Gateway,
}

impl Stack {
    async fn start_or_skip(kind: Kind) -> Option<Self> {
        let http = Client::new();
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let tessera = Serve::spawn(
            dir.path(),
            &[
                "--listen",
                &listen,
                "--bootstrap-token",
                "admin.token",
                "--trusted-proxy",
                "127.0.0.1",
                "--bad-signature-budget",
                &FORGERIES.to_string(),
            ],
            &[],
            &listen,
        );
        tessera.ready(&http).await;
        let admin = std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        let echo = Echo::start().await;
        let relay = Relay::start(listen).await;
        let mut gateway = Gateway::start_or_skip(kind, &relay.addr, &echo.addr)?;
        gateway.ready(&http, ROUTE).await;
        Some(Self {
            http,
            dir,
            tessera,
            admin,
            echo,
            relay,
            gateway,
        })
    }

    /// A token with `permissions`; its id.
    async fn create(&self, name: &str, permissions: &str) -> (String, String) {
        self.create_bound(name, permissions, &[]).await
    }

    /// A token with `permissions`, usable from `cidrs` only (none: anywhere); its id.
    async fn create_bound(
        &self,
        name: &str,
        permissions: &str,
        cidrs: &[&str],
    ) -> (String, String) {
        let permissions: Value = serde_json::from_str(permissions).unwrap();
        let response = self
            .http
            .post(format!("{}/v1/tokens", self.tessera.base))
            .bearer_auth(&self.admin)
            .json(
                &json!({"name": name, "expires": "30d", "permissions": permissions,
                          "allowed_cidrs": cidrs}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        (token, body["record"]["id"].as_str().unwrap().to_owned())
    }

    /// A request through the gateway.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.gateway.base))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.request(Method::GET, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Send `request`, expect `want`, and check the API was reached only on a 2xx.
    async fn expect(&self, request: reqwest::RequestBuilder, want: u16, what: &str) -> Value {
        let before = self.echo.hits();
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            want,
            "{:?}, {what}: {body}\n{}",
            self.gateway.kind,
            self.gateway.log()
        );
        let reached = self.echo.hits() - before;
        let expected = usize::from((200..300).contains(&want));
        assert_eq!(
            reached, expected,
            "{:?}, {what}: API reached {reached} times",
            self.gateway.kind
        );
        if want == 401 {
            assert!(
                headers.contains_key("www-authenticate"),
                "{:?}, {what}: 401 without WWW-Authenticate",
                self.gateway.kind
            );
        }
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }
}

/// The checks every recipe must pass.
async fn a_recipe_holds(kind: Kind) {
    let Some(mut stack) = Stack::start_or_skip(kind).await else {
        return;
    };
    let (allowed, allowed_id) = stack.create("deployer", TRIGGER).await;
    let (weak, _) = stack.create("viewer", VIEW).await;
    let s = &stack;

    // Without a token, with garbage, with a token too weak for the route.
    s.expect(s.request(Method::GET, ROUTE), 401, "no token")
        .await;
    s.expect(
        s.request(Method::GET, ROUTE)
            .bearer_auth("v4.public.garbage"),
        401,
        "a garbage token",
    )
    .await;
    s.expect(
        s.request(Method::GET, ROUTE).bearer_auth(&weak),
        403,
        "a weak token",
    )
    .await;

    // Allowed: the API gets who called, from Tessera, and not the token.
    let seen = s
        .expect(
            s.request(Method::GET, ROUTE).bearer_auth(&allowed),
            200,
            "allowed",
        )
        .await;
    let headers = &seen["headers"];
    assert_eq!(
        headers["x-tessera-token-id"],
        allowed_id.as_str(),
        "{kind:?}: {seen}"
    );
    assert_eq!(
        headers["x-tessera-token-name"], "deployer",
        "{kind:?}: {seen}"
    );
    assert_eq!(
        headers["x-tessera-super-admin"], "false",
        "{kind:?}: {seen}"
    );
    assert!(
        headers.get("authorization").is_none(),
        "{kind:?}: the token reached the API"
    );
    s.expect(
        s.request(Method::GET, ROUTE).header("token", &allowed),
        200,
        "the token: header",
    )
    .await;

    // Spoofed identity: replaced by Tessera's answer.
    let spoofed = s
        .expect(
            s.request(Method::GET, ROUTE)
                .bearer_auth(&allowed)
                .header("X-Tessera-Super-Admin", "true")
                .header("X-Tessera-Token-Name", "evil")
                .header("X-Tessera-Token-Id", "evil-id"),
            200,
            "spoofed identity headers",
        )
        .await;
    let headers = &spoofed["headers"];
    assert_eq!(
        headers["x-tessera-super-admin"], "false",
        "{kind:?}: {spoofed}"
    );
    assert_eq!(
        headers["x-tessera-token-name"], "deployer",
        "{kind:?}: {spoofed}"
    );
    assert_eq!(
        headers["x-tessera-token-id"],
        allowed_id.as_str(),
        "{kind:?}: {spoofed}"
    );

    // The weak token asks its own, weaker question: in the query, in the header, in the path,
    // with another method and a body. Each is still the route's question.
    s.expect(
        s.request(Method::GET, &format!("{ROUTE}?{WEAKER_QUERY}"))
            .bearer_auth(&weak),
        403,
        "a weaker question in the query",
    )
    .await;
    s.expect(
        s.request(Method::GET, ROUTE)
            .bearer_auth(&weak)
            .header("X-Tessera-Require", WEAKER_HEADER),
        403,
        "a weaker question in X-Tessera-Require",
    )
    .await;
    s.expect(
        s.request(Method::GET, &format!("/api/v1/auth?{WEAKER_QUERY}"))
            .bearer_auth(&weak),
        403,
        "a weaker question in the path",
    )
    .await;
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        s.expect(
            s.request(method.clone(), ROUTE)
                .bearer_auth(&weak)
                .body(WEAKER_QUERY),
            403,
            &format!("{method} with a body, weak token"),
        )
        .await;
        s.expect(
            s.request(method.clone(), ROUTE)
                .bearer_auth(&allowed)
                .body("{}"),
            200,
            &format!("{method} with a body, allowed token"),
        )
        .await;
    }
    // An ordinary query of the client's own is no business of Tessera's.
    s.expect(
        s.request(Method::GET, &format!("{ROUTE}?page=2&x=1"))
            .bearer_auth(&allowed),
        200,
        "an ordinary client query",
    )
    .await;

    // A client's own forwarded address and question never reached Tessera.
    s.expect(
        s.request(Method::GET, ROUTE)
            .bearer_auth(&allowed)
            .header("X-Forwarded-For", SPOOFED_CLIENT),
        200,
        "a spoofed X-Forwarded-For",
    )
    .await;
    let sent = s.relay.sent();
    assert!(
        !sent.contains(SPOOFED_CLIENT),
        "{kind:?}: the client's X-Forwarded-For reached Tessera:\n{sent}"
    );
    // (Caddy passes the client's query on; with the header set, Tessera ignores it.)
    let questions = sent
        .lines()
        .filter(|line| line.to_ascii_lowercase().starts_with("x-tessera-require:"));
    for question in questions {
        assert!(
            question.ends_with(&WEAKER_HEADER.replace("view", "trigger")),
            "{kind:?}: a question other than the recipe's reached Tessera: {question}"
        );
    }

    // Denials keep the connection to Tessera alive, as allowances do.
    let before = s.relay.connections();
    for _ in 0..10 {
        s.get(ROUTE, Some(&weak)).await;
        s.get(ROUTE, Some("v4.public.garbage")).await;
        s.get(ROUTE, None).await;
    }
    let opened = s.relay.connections() - before;
    assert!(
        opened <= 2,
        "{kind:?}: 30 denials opened {opened} new connections to Tessera"
    );

    // Deleted: refused within a second.
    let deleted = s
        .http
        .delete(format!("{}/v1/tokens/{allowed_id}", s.tessera.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let started = Instant::now();
    while s.get(ROUTE, Some(&allowed)).await.status() != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{kind:?}: a deleted token still passes after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A flood of forgeries: past the budget, a new token from the same client is refused with
    // a time to retry, and the API untouched; the client's verified tokens still pass.
    let (fresh, _) = s.create("fresh", TRIGGER).await;
    let (cached, _) = s.create("cached", TRIGGER).await;
    s.expect(
        s.request(Method::GET, ROUTE).bearer_auth(&cached),
        200,
        "before the flood",
    )
    .await;
    for i in 0..=FORGERIES as usize {
        s.expect(
            s.request(Method::GET, ROUTE).bearer_auth(forged(&fresh, i)),
            401,
            "a forgery within the budget",
        )
        .await;
    }
    let before = s.echo.hits();
    let rationed = s.get(ROUTE, Some(&fresh)).await;
    assert_eq!(
        rationed.status().as_u16(),
        kind.status_when_rationed(),
        "{kind:?}: a new token after the flood\n{}",
        s.gateway.log()
    );
    assert!(
        rationed.headers().contains_key("retry-after"),
        "{kind:?}: no Retry-After on {}",
        rationed.status()
    );
    assert_eq!(s.echo.hits(), before, "{kind:?}: the API was reached");
    s.expect(
        s.request(Method::GET, ROUTE).bearer_auth(&cached),
        200,
        "after the flood",
    )
    .await;

    // Tessera gone: the documented status, and the API untouched.
    let (weak2, _) = s.create("viewer-2", TRIGGER).await;
    stack.tessera.kill();
    let s = &stack;
    s.expect(
        s.request(Method::GET, ROUTE).bearer_auth(&weak2),
        kind.status_when_tessera_is_down(),
        "Tessera stopped",
    )
    .await;
    drop(stack.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_recipe_holds_against_a_hostile_client() {
    a_recipe_holds(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caddy_recipe_holds_against_a_hostile_client() {
    a_recipe_holds(Kind::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traefik_recipe_holds_against_a_hostile_client() {
    a_recipe_holds(Kind::Traefik).await;
}

/// A token bound to networks, through the nginx recipe as it stands: nginx forwards the client
/// address it sees (`$remote_addr`) to a Tessera that trusts it, so two real client addresses
/// get two answers. Every 127/8 address is loopback on Linux: the clients bind 127.0.0.2 and
/// 127.0.0.1 as their source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_recipe_passes_the_client_address_for_tokens_bound_to_networks() {
    let Some(stack) = Stack::start_or_skip(Kind::Nginx).await else {
        return;
    };
    let s = &stack;
    let (bound, _) = s.create_bound("office", TRIGGER, &["127.0.0.2"]).await;
    let from = |ip: &str| {
        Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let (inside, outside) = (from("127.0.0.2"), from("127.0.0.1"));
    let url = format!("{}{ROUTE}", s.gateway.base);
    s.expect(
        inside.get(&url).bearer_auth(&bound),
        200,
        "from inside its networks",
    )
    .await;
    s.expect(
        outside.get(&url).bearer_auth(&bound),
        403,
        "from outside its networks",
    )
    .await;
    s.expect(
        outside
            .get(&url)
            .bearer_auth(&bound)
            .header("X-Forwarded-For", "127.0.0.2"),
        403,
        "from outside, claiming an inside address",
    )
    .await;
    let sent = s.relay.sent();
    assert!(
        sent.to_ascii_lowercase()
            .contains("x-forwarded-for: 127.0.0.2"),
        "nginx forwarded the inside client's address:\n{sent}"
    );
}

/// The recipes stand in the docs as they are in the files, and each file is shown.
#[test]
fn the_docs_show_the_recipe_files_as_they_are() {
    let docs = std::fs::read_to_string(gateways::recipes().join("../gateways.md")).unwrap();
    let mut shown = 0;
    for entry in std::fs::read_dir(gateways::recipes()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let block = docs
            .split("\n```")
            .find(|block| block.lines().nth(1) == Some(&format!("# docs/gateways/{name}")))
            .unwrap_or_else(|| {
                panic!("docs/gateways.md shows no block whose first line names {name}")
            });
        let body: String = block
            .split_once('\n')
            .map(|(_, b)| b)
            .unwrap_or("")
            .to_owned();
        let body = body.split_once('\n').map(|(_, b)| b).unwrap_or("");
        assert_eq!(
            body.trim_end(),
            text.trim_end(),
            "docs/gateways.md shows {name} otherwise than the file"
        );
        shown += 1;
    }
    assert_eq!(shown, 6, "six recipe files");
}

/// `token` with byte `i` of its signature flipped: well formed, signed by nobody.
fn forged(token: &str, i: usize) -> String {
    use tessera::paseto::{decode_b64, encode_b64, split};
    let parts = split(token).unwrap();
    let mut body = decode_b64(parts.body).unwrap();
    let at = body.len() - 64 + i;
    body[at] ^= 0x01;
    format!("v4.public.{}.{}", encode_b64(&body), parts.footer)
}
