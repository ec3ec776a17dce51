//! `GET /openapi.json` against the service it describes: the document's paths and methods are
//! exactly the router's (read from the router's source, and each one called on a running
//! server), and real responses, successes and errors, validate against the document's
//! schemas, status codes and headers.

#![cfg(feature = "server")]

use crate::support::app::{self, Answer, Base, Server};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tessera::server::{self, ServerConfig};

/// Every method a route could be given.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Methods probed on every documented path (HEAD answers wherever GET does, as in HTTP).
const PROBED: [&str; 6] = ["get", "put", "post", "delete", "options", "patch"];

const ALL_KINDS: &str = r#"{"grants": [
  {"resource": "devtron-app", "role": "trigger", "project": "payments",
   "environments": ["prod", "staging"], "apps": ["*"]},
  {"resource": "helm-app", "role": "edit", "project": "infra",
   "environments": ["prod-cluster__monitoring"], "apps": ["grafana"]},
  {"resource": "kubernetes", "role": "view", "cluster": "prod",
   "namespaces": ["*"], "groups": ["", "apps"], "kinds": ["Deployment", "Pod"], "names": ["web-*"]},
  {"resource": "chart-group", "role": "view", "groups": ["*"]}
]}"#;

/// An issuer with its first super-admin token (tests/support), called in process unless it
/// listens.
struct App {
    server: Server,
    admin: String,
    dir: tempfile::TempDir,
}

impl Answer {
    /// The router's own 404 (no route) or 405 (no such method on a route).
    fn is_fallback(&self) -> bool {
        let code = || serde_json::from_str::<Value>(&self.text).unwrap_or_default();
        (self.status == StatusCode::NOT_FOUND && code()["error"]["message"] == "no such endpoint")
            || self.status == StatusCode::METHOD_NOT_ALLOWED
    }
}

impl App {
    async fn start() -> Self {
        let app::App { server, admin, dir } = app::App::start().await;
        Self { server, admin, dir }
    }

    /// On a socket, for a verify-only edge to follow over HTTP.
    async fn listen() -> Self {
        let app::App { server, admin, dir } = app::App::listen().await;
        Self { server, admin, dir }
    }

    async fn send(
        &self,
        base: &Base,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = base.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(
            &self.server.base,
            method,
            path,
            Some(&self.admin),
            body,
            &[],
        )
        .await
    }

    async fn document(&self, base: &Base) -> Document {
        let answer = self
            .send(base, Method::GET, "/openapi.json", None, None, &[])
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers["content-type"], "application/json");
        let doc = Document(answer.json());
        doc.check(
            "/openapi.json",
            "get",
            &answer,
            "the document describes itself",
        );
        doc
    }
}

/// The OpenAPI document, and the checks of a response against it.
struct Document(Value);

impl Document {
    /// Path template -> methods.
    fn operations(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.0["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .map(|(path, item)| {
                let methods = item
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| METHODS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                (path.clone(), methods)
            })
            .collect()
    }

    /// Follow a local `$ref`.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => {
                let pointer = target.strip_prefix('#').expect("a local reference");
                self.resolve(self.0.pointer(pointer).unwrap_or_else(|| {
                    panic!("{target} does not resolve");
                }))
            }
            None => value,
        }
    }

    /// Validate `instance` against `schema`, whose references point into this document.
    fn validate(&self, schema: &Value, instance: &Value, what: &str) -> Result<(), String> {
        let mut root = schema.clone();
        let object = root.as_object_mut().expect("a schema object");
        object.insert("components".into(), self.0["components"].clone());
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what}: {instance} does not match {schema}:\n{}",
                errors.join("\n")
            ))
        }
    }

    /// The response matches what `method path` documents for its status: the status is
    /// documented, the body has the documented media type and schema (or is empty when none
    /// is documented), and the documented required headers are there and match.
    fn check(&self, path: &str, method: &str, answer: &Answer, what: &str) {
        if let Err(e) = self.conforms(path, method, answer, what) {
            panic!("{e}");
        }
    }

    fn conforms(
        &self,
        path: &str,
        method: &str,
        answer: &Answer,
        what: &str,
    ) -> Result<(), String> {
        let operation = &self.0["paths"][path][method];
        if !operation.is_object() {
            return Err(format!("{what}: {method} {path} undocumented"));
        }
        let status = answer.status.as_str();
        let response = operation["responses"]
            .get(status)
            .map(|r| self.resolve(r))
            .ok_or_else(|| {
                format!(
                    "{what}: {method} {path} answered {status}, which it does not document: {}",
                    answer.text
                )
            })?;
        match response.get("content").and_then(Value::as_object) {
            None if answer.text.is_empty() => {}
            None => return Err(format!("{what}: no body documented, got {}", answer.text)),
            Some(content) => {
                let media = answer
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let media = media.split(';').next().unwrap().trim();
                let documented = content
                    .get(media)
                    .ok_or_else(|| format!("{what}: content type {media:?} undocumented"))?;
                let instance = if media == "application/json" {
                    serde_json::from_str(&answer.text)
                        .map_err(|e| format!("{what}: not JSON ({e}): {}", answer.text))?
                } else {
                    Value::String(answer.text.clone())
                };
                self.validate(&documented["schema"], &instance, what)?;
            }
        }
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for (name, spec) in headers {
                let spec = self.resolve(spec);
                match answer.headers.get(name.as_str()) {
                    None if spec["required"] == true => {
                        return Err(format!("{what}: header {name} missing"))
                    }
                    None => {}
                    Some(value) => {
                        let value = Value::String(value.to_str().unwrap().to_owned());
                        self.validate(&spec["schema"], &value, &format!("{what}: header {name}"))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The router's routes, read from its source: path -> methods. Fails if the router uses
/// anything this reading does not understand, so it cannot silently miss a route.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/server/mod.rs")).unwrap();
    let start = source.find("pub fn router(").expect("the router function");
    let body = &source[start..];
    let body = &body[..body.find(".fallback(").expect("the router's fallback")];
    // The web page (`/` and its assets, src/server/ui.rs) is a client of the API, not part of
    // it: its one merge is the only one allowed, and its routes are not in the document.
    let page = ".merge(ui::routes())";
    assert_eq!(
        body.matches(page).count(),
        1,
        "the router merges the page once"
    );
    let body = &body.replace(page, "");
    let calls = |text: &str, name: &str| {
        let needle = format!("{name}(");
        text.match_indices(&needle).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        })
    };
    for unknown in [
        "nest",
        "nest_service",
        "merge",
        "route_service",
        "any",
        "on",
        "fallback_service",
    ] {
        assert!(
            !calls(body, unknown),
            "the router uses {unknown}(): teach router_routes about it"
        );
    }
    let mut routes = BTreeMap::new();
    for chunk in body.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).expect("a literal path");
        assert!(path.starts_with('/'), "route {path:?}");
        // axum's catch-all `{*name}` is OpenAPI's `{name}`.
        let path = &path.replace("{*", "{");
        // `forward_auth()` is the one method router for the forward-auth paths: every method a
        // gateway may forward (FORWARD_AUTH_METHODS in the same file).
        let methods: BTreeSet<String> = if calls(chunk, "forward_auth") {
            let consts = &source[source.find("const FORWARD_AUTH_METHODS").unwrap()..];
            let consts = &consts[..consts.find(';').unwrap()];
            METHODS
                .iter()
                .filter(|m| consts.contains(&format!("MethodFilter::{}", m.to_uppercase())))
                .map(|m| (*m).to_owned())
                .collect()
        } else {
            METHODS
                .iter()
                .filter(|m| calls(chunk, m))
                .map(|m| (*m).to_owned())
                .collect()
        };
        assert!(!methods.is_empty(), "no method found for {path}");
        assert!(
            routes.insert(path.to_owned(), methods).is_none(),
            "{path} routed twice"
        );
    }
    assert!(routes.len() > 5, "too few routes read: {routes:?}");
    routes
}

/// A path for a documented template: a fresh token id, a client path with slashes.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", &uuid::Uuid::new_v4().to_string())
        .replace("{path}", "api/v2/orders/17")
}

/// A body each probed method can take without a store change.
fn probe_body(method: &str) -> Option<Value> {
    matches!(method, "post" | "put" | "patch").then(|| json!({}))
}

/// Call every documented path with every probed method on the server at `base`: a documented
/// operation must not fall through to the router's fallbacks and must answer a status it
/// documents; any other method must get the router's 405.
async fn probe(app: &App, base: &Base, doc: &Document, what: &str) -> usize {
    let mut calls = 0;
    for (template, methods) in doc.operations() {
        let path = concrete(&template);
        for method in PROBED {
            let answer = app
                .send(
                    base,
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &path,
                    Some(&app.admin),
                    probe_body(method),
                    &[],
                )
                .await;
            calls += 1;
            if methods.contains(method) {
                assert!(
                    !answer.is_fallback(),
                    "{what}: {method} {template} is documented but not served: {} {}",
                    answer.status,
                    answer.text
                );
                doc.check(&template, method, &answer, &format!("{what}: probe"));
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{what}: {method} {template} is served ({}) but not documented",
                    answer.text
                );
                assert_eq!(answer.json()["error"]["code"], "method_not_allowed");
            }
        }
    }
    let answer = app
        .send(base, Method::GET, "/v1/nothing-here", None, None, &[])
        .await;
    assert!(answer.is_fallback(), "{what}: the fallback is recognised");
    calls
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_router_serves() {
    let app = App::listen().await;
    let doc = app.document(&app.server.base).await;
    assert_eq!(doc.0["openapi"], "3.1.0");

    // Both ways: every route in the document, every documented operation routed.
    assert_eq!(
        doc.operations(),
        router_routes(),
        "the document's paths and methods differ from the router's (src/server/mod.rs)"
    );
    for (path, methods) in doc.operations() {
        for method in methods {
            let op = &doc.0["paths"][&path][&method];
            assert!(
                op["operationId"].is_string(),
                "{method} {path}: operationId"
            );
            assert!(op["security"].is_array(), "{method} {path}: security");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}: responses"
            );
        }
    }

    // And every one of them is served by the running server.
    let calls = probe(&app, &app.server.base, &doc, "issuer").await;
    assert!(calls >= 6 * 12, "{calls} probes");

    // A verify-only instance (following the issuer over HTTP) documents and serves only what
    // verifies.
    let edge = Server::start(ServerConfig {
        keys_dir: app.dir.path().join("keys"),
        verify_only: true,
        state_from: Some((app.server.base.as_url().to_owned(), app.admin.clone())),
        ..ServerConfig::default()
    })
    .await;
    let edge_doc = app.document(&edge.base).await;
    assert!(edge_doc.0["paths"].get("/v1/tokens").is_none());
    assert!(edge_doc.0["paths"].get("/v1/auth").is_some());
    probe(&app, &edge.base, &edge_doc, "verify-only").await;
    for (template, _) in doc.operations() {
        if edge_doc.0["paths"].get(&template).is_none() {
            let path = concrete(&template);
            let answer = app
                .send(&edge.base, Method::GET, &path, Some(&app.admin), None, &[])
                .await;
            assert!(
                answer.is_fallback(),
                "verify-only: {template} is served but not documented: {} {}",
                answer.status,
                answer.text
            );
        }
    }
    edge.stop().await;
    app.server.stop().await;
}

#[tokio::test]
async fn real_responses_match_the_document() {
    let app = App::start().await;
    let doc = app.document(&app.server.base).await;
    let check = |path: &str, method: &str, answer: &Answer, what: &str| {
        doc.check(path, method, answer, what)
    };

    // Create: every grant kind, and a super-admin.
    let create = |name: &str, permissions: &str| {
        json!({"name": name, "description": "made by a test\nsecond line", "expires": "30d",
               "permissions": serde_json::from_str::<Value>(permissions).unwrap()})
    };
    let made = app
        .call(
            Method::POST,
            "/v1/tokens",
            Some(create("ci-deployer", ALL_KINDS)),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    check("/v1/tokens", "post", &made, "create with every grant kind");
    let made = made.json();
    let (token, id) = (
        made["token"].as_str().unwrap().to_owned(),
        made["record"]["id"].as_str().unwrap().to_owned(),
    );
    let root = app
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "root-2", "expires": "never",
                        "permissions": {"super_admin": true}})),
        )
        .await;
    check("/v1/tokens", "post", &root, "create a super-admin");
    assert_eq!(root.json()["record"]["expires_at"], Value::Null);

    // Errors of create.
    let taken = app
        .call(
            Method::POST,
            "/v1/tokens",
            Some(create("ci-deployer", ALL_KINDS)),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    check("/v1/tokens", "post", &taken, "name taken");
    let bad_name = app
        .call(Method::POST, "/v1/tokens", Some(create("No", ALL_KINDS)))
        .await;
    assert_eq!(bad_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("/v1/tokens", "post", &bad_name, "bad name");
    let unknown_field = app
        .call(
            Method::POST,
            "/v1/tokens",
            Some(
                json!({"name": "x-1", "expires": "7d", "permissions": {"super_admin": true},
                        "color": "blue"}),
            ),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("/v1/tokens", "post", &unknown_field, "unknown field");
    let base = &app.server.base;
    let admin = Some(app.admin.as_str());
    let not_json = app
        .send(
            base,
            Method::POST,
            "/v1/tokens",
            admin,
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    check("/v1/tokens", "post", &not_json, "empty body");
    let no_type = app
        .send(base, Method::POST, "/v1/tokens", admin, None, &[])
        .await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    check("/v1/tokens", "post", &no_type, "no content type");
    let huge = json!({"name": "big", "expires": "7d", "permissions": {"super_admin": true},
                      "description": "x".repeat(server::MAX_BODY)});
    let too_large = app.call(Method::POST, "/v1/tokens", Some(huge)).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    check("/v1/tokens", "post", &too_large, "too large");

    // Authentication and authorization.
    let anonymous = app
        .send(base, Method::GET, "/v1/tokens", None, None, &[])
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    check("/v1/tokens", "get", &anonymous, "no token");
    let refused = app
        .send(
            base,
            Method::GET,
            "/v1/tokens",
            Some("v4.public.nonsense"),
            None,
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    check("/v1/tokens", "get", &refused, "bad token");
    let limited = app
        .send(base, Method::GET, "/v1/tokens", Some(&token), None, &[])
        .await;
    assert_eq!(limited.status, StatusCode::FORBIDDEN);
    check("/v1/tokens", "get", &limited, "not a super-admin");
    let devtron_header = app
        .send(
            base,
            Method::GET,
            "/v1/tokens",
            None,
            None,
            &[("token", &app.admin)],
        )
        .await;
    check("/v1/tokens", "get", &devtron_header, "the token header");
    assert_eq!(devtron_header.status, StatusCode::OK);

    // Records.
    let list = app.call(Method::GET, "/v1/tokens", None).await;
    check("/v1/tokens", "get", &list, "list");
    assert_eq!(list.json()["tokens"].as_array().unwrap().len(), 3);
    let filtered = app
        .call(
            Method::GET,
            "/v1/tokens?status=active&expiring_within=31d",
            None,
        )
        .await;
    check("/v1/tokens", "get", &filtered, "list, filtered");
    assert!(!filtered.json()["tokens"].as_array().unwrap().is_empty());
    // A window reaching past the end of representable time (it used to panic the handler),
    // and a unit that is not one byte (it used to panic on splitting).
    let endless = app
        .call(Method::GET, "/v1/tokens?expiring_within=3000000000h", None)
        .await;
    check("/v1/tokens", "get", &endless, "list, endless window");
    assert_eq!(endless.status, StatusCode::OK);
    let odd_unit = app
        .call(Method::GET, "/v1/tokens?expiring_within=7%C3%A9", None)
        .await;
    assert_eq!(odd_unit.status, StatusCode::BAD_REQUEST);
    check("/v1/tokens", "get", &odd_unit, "list, odd unit");
    let bad_filter = app.call(Method::GET, "/v1/tokens?status=gone", None).await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);
    check("/v1/tokens", "get", &bad_filter, "bad filter");
    let item = format!("/v1/tokens/{id}");
    let shown = app.call(Method::GET, &item, None).await;
    check("/v1/tokens/{id}", "get", &shown, "show");
    let missing = app
        .call(
            Method::GET,
            &format!("/v1/tokens/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    check("/v1/tokens/{id}", "get", &missing, "no such token");

    // Update, with and without the right revision.
    let stale = app
        .send(
            base,
            Method::PATCH,
            &item,
            admin,
            Some(json!({"description": "changed"})),
            &[("if-match", "\"99\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    check("/v1/tokens/{id}", "patch", &stale, "stale If-Match");
    let bad_if_match = app
        .send(
            base,
            Method::PATCH,
            &item,
            admin,
            Some(json!({"description": "changed"})),
            &[("if-match", "soon")],
        )
        .await;
    assert_eq!(bad_if_match.status, StatusCode::BAD_REQUEST);
    check("/v1/tokens/{id}", "patch", &bad_if_match, "bad If-Match");
    let nothing = app.call(Method::PATCH, &item, Some(json!({}))).await;
    assert_eq!(nothing.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("/v1/tokens/{id}", "patch", &nothing, "nothing to update");
    let updated = app
        .send(
            base,
            Method::PATCH,
            &item,
            admin,
            Some(json!({"description": "changed",
                        "permissions": {"grants": [{"resource": "chart-group", "role": "admin",
                                                    "groups": ["team-*"]}]}})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    check("/v1/tokens/{id}", "patch", &updated, "update");

    // Introspection and forward auth, while the token is still the old version, once the
    // server's verifier has the update (it follows the store's feed).
    let verify = |body: Value| app.call(Method::POST, "/v1/verify", Some(body));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let valid = loop {
        let valid = verify(json!({"token": token})).await;
        if valid.json()["token"]["permissions_updated"] == true {
            break valid;
        }
        assert!(std::time::Instant::now() < deadline, "{}", valid.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    check("/v1/verify", "post", &valid, "verify, valid");
    let asked = verify(
        json!({"token": token, "require": {"resource": "chart-group",
                                                          "role": "view", "group": "team-a"}}),
    )
    .await;
    check("/v1/verify", "post", &asked, "verify, allowed");
    assert_eq!(asked.json()["allowed"], true);
    let denied = verify(json!({"token": token, "require": {"resource": "kubernetes",
        "role": "view", "cluster": "prod", "namespace": "x", "kind": "Pod", "name": "web-1"}}))
    .await;
    check("/v1/verify", "post", &denied, "verify, forbidden");
    assert_eq!(denied.json()["code"], "forbidden");
    let invalid = verify(json!({"token": "v4.public.nonsense"})).await;
    check("/v1/verify", "post", &invalid, "verify, refused");
    assert_eq!(invalid.json()["valid"], false);
    let bad_question = verify(json!({"token": token, "require": {"resource": "helm-app"}})).await;
    assert_eq!(bad_question.status, StatusCode::BAD_REQUEST);
    check("/v1/verify", "post", &bad_question, "verify, bad question");

    let auth = |token: &str, query: &str| {
        let (token, query) = (token.to_owned(), query.to_owned());
        let app = &app;
        async move {
            app.send(
                &app.server.base,
                Method::GET,
                &format!("/v1/auth{query}"),
                Some(&token),
                None,
                &[],
            )
            .await
        }
    };
    let allowed = auth(&token, "?resource=chart-group&role=update&group=team-x").await;
    assert_eq!(allowed.status, StatusCode::OK);
    check("/v1/auth", "get", &allowed, "auth, allowed");
    assert_eq!(allowed.headers["x-tessera-super-admin"], "false");
    assert_eq!(allowed.headers["x-tessera-token-name"], "ci-deployer");
    let forbidden = auth(&token, "?resource=chart-group&role=admin&group=other").await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    check("/v1/auth", "get", &forbidden, "auth, forbidden");
    let unknown = auth(&token, "?colour=blue").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    check("/v1/auth", "get", &unknown, "auth, unknown parameter");
    // The question in X-Tessera-Require, on /v1/auth and on the prefixed form Envoy uses
    // (the client's path and query there are ignored).
    let by_header = |path: &str, require: &str| {
        let (path, require) = (path.to_owned(), require.to_owned());
        let (app, token) = (&app, &token);
        async move {
            app.send(
                &app.server.base,
                Method::GET,
                &path,
                Some(token),
                None,
                &[("x-tessera-require", &require)],
            )
            .await
        }
    };
    for (path, template) in [
        ("/v1/auth", "/v1/auth"),
        ("/v1/auth/api/v2/orders?role=admin", "/v1/auth/{path}"),
    ] {
        let ok = by_header(path, "resource=chart-group, role=view, group=team-b").await;
        assert_eq!(ok.status, StatusCode::OK, "{path}: {}", ok.text);
        check(template, "get", &ok, "auth by header, allowed");
        let no = by_header(path, "resource=chart-group,role=admin,group=other").await;
        assert_eq!(no.status, StatusCode::FORBIDDEN, "{path}");
        check(template, "get", &no, "auth by header, forbidden");
        let bad = by_header(path, "resource").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{path}");
        check(template, "get", &bad, "auth by header, malformed");
    }
    let bad = auth("v4.public.nonsense", "").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    check("/v1/auth", "get", &bad, "auth, refused");

    // Regenerate, audit, delete.
    let regenerated = app
        .call(
            Method::POST,
            &format!("{item}/regenerate"),
            Some(json!({"expires": "2099-01-31T00:00:00Z"})),
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.text);
    check(
        "/v1/tokens/{id}/regenerate",
        "post",
        &regenerated,
        "regenerate",
    );
    let past = app
        .call(
            Method::POST,
            &format!("{item}/regenerate"),
            Some(json!({"expires": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY);
    check(
        "/v1/tokens/{id}/regenerate",
        "post",
        &past,
        "regenerate, past",
    );
    let superseded = verify(json!({"token": token})).await;
    check("/v1/verify", "post", &superseded, "verify, superseded");
    let audit = app.call(Method::GET, "/v1/audit?limit=2", None).await;
    check("/v1/audit", "get", &audit, "audit page");
    assert_eq!(audit.json()["next_after"], 2);
    let rest = app.call(Method::GET, "/v1/audit?after=2", None).await;
    check("/v1/audit", "get", &rest, "audit, last page");
    let bad_limit = app.call(Method::GET, "/v1/audit?limit=0", None).await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    check("/v1/audit", "get", &bad_limit, "audit, bad limit");

    let snapshot = app.call(Method::GET, "/v1/state", None).await;
    check("/v1/state", "get", &snapshot, "state snapshot");
    assert!(!snapshot.json()["entries"].as_array().unwrap().is_empty());
    let changes = app.call(Method::GET, "/v1/state?since=0", None).await;
    check("/v1/state", "get", &changes, "state changes");
    let bad_wait = app
        .call(Method::GET, "/v1/state?since=0&wait=3600", None)
        .await;
    assert_eq!(bad_wait.status, StatusCode::BAD_REQUEST);
    check("/v1/state", "get", &bad_wait, "state, wait too long");

    let deleted = app.call(Method::DELETE, &item, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    check("/v1/tokens/{id}", "delete", &deleted, "delete");
    let again = app.call(Method::DELETE, &item, None).await;
    check("/v1/tokens/{id}", "delete", &again, "delete again");
    let changes = app.call(Method::GET, "/v1/state?since=0", None).await;
    check("/v1/state", "get", &changes, "state changes after a delete");

    // The rest.
    for (path, what) in [
        ("/v1/keys", "keys"),
        ("/healthz", "health"),
        ("/readyz", "ready"),
        ("/metrics", "metrics"),
    ] {
        let answer = app.send(base, Method::GET, path, None, None, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{what}");
        check(path, "get", &answer, what);
    }
    app.server.stop().await;
}

#[tokio::test]
async fn the_checks_are_not_vacuous() {
    let app = App::start().await;
    let doc = app.document(&app.server.base).await;
    let fails = |path: &str, method: &str, status: u16, content_type: &str, body: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", content_type.parse().unwrap());
        let answer = Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            text: body.to_owned(),
        };
        doc.conforms(path, method, &answer, "a wrong answer")
            .is_err()
    };
    let json = "application/json";
    // A record inside a list, wrong in one place each time.
    let list = app.call(Method::GET, "/v1/tokens", None).await.json();
    let record = list["tokens"][0].clone();
    assert!(!fails("/v1/tokens", "get", 200, json, &list.to_string()));
    for (field, value) in [
        ("id", json!("not-a-uuid")),
        ("status", json!("paused")),
        ("permissions", json!({"super_admin": false})),
        (
            "permissions",
            json!({"grants": [{"resource": "helm-app", "role": "trigger",
            "project": "p", "environments": ["e"], "apps": ["a"]}]}),
        ),
        ("created_at", json!("yesterday")),
        ("colour", json!("blue")),
    ] {
        let mut wrong = record.clone();
        wrong[field] = value;
        let body = json!({ "tokens": [wrong] }).to_string();
        assert!(fails("/v1/tokens", "get", 200, json, &body), "{field}");
    }
    let mut partial = record.clone();
    partial.as_object_mut().unwrap().remove("last_used_at");
    let body = json!({ "tokens": [partial] }).to_string();
    assert!(
        fails("/v1/tokens", "get", 200, json, &body),
        "a missing field"
    );
    // Undocumented statuses, media types and error shapes.
    assert!(fails("/healthz", "get", 500, json, r#"{"status": "ok"}"#));
    assert!(fails("/healthz", "get", 200, "text/plain", "ok"));
    assert!(fails(
        "/v1/tokens",
        "get",
        401,
        json,
        r#"{"error": {"code": "x"}}"#
    ));
    // A documented required header that is missing (WWW-Authenticate on 401).
    assert!(fails(
        "/v1/tokens",
        "get",
        401,
        json,
        r#"{"error": {"code": "x", "message": "y"}}"#
    ));
    app.server.stop().await;
}
