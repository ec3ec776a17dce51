//! The document's paths and methods against the router's: each documented operation is
//! served, and every other method on a documented path is the router's 405.

use super::*;

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
async fn probe(app: &App, base: &str, doc: &Document, what: &str) -> usize {
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
    let app = App::start().await;
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
        state_from: Some((app.server.base.clone(), app.admin.clone())),
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
