//! Every documented operation is served, every other method on a documented path is the
//! router's 405, and nothing near the documented paths is served but the web page.

use super::*;

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

/// Call every documented path with every method on the server at `base`: a documented
/// operation must not fall through to the router's fallbacks and must answer a status it
/// documents; HEAD is answered wherever GET is (as in HTTP); any other method must get the
/// router's 405.
async fn probe(app: &App, base: &Base, doc: &Document, what: &str) -> usize {
    let mut calls = 0;
    for (template, methods) in doc.operations() {
        let path = concrete(&template);
        for method in METHODS {
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
            if method == "head" && !methods.contains(method) && methods.contains("get") {
                assert!(
                    !is_fallback(&answer),
                    "{what}: HEAD {template} is not answered like GET: {}",
                    answer.status
                );
            } else if methods.contains(method) {
                assert!(
                    !is_fallback(&answer),
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
                if method != "head" {
                    // (A response to HEAD has no body.)
                    assert_eq!(answer.json()["error"]["code"], "method_not_allowed");
                }
            }
        }
    }
    let answer = app
        .send(base, Method::GET, "/v1/nothing-here", None, None, &[])
        .await;
    assert!(is_fallback(&answer), "{what}: the fallback is recognised");
    calls
}

/// Paths next to the documented ones that nothing serves.
const UNSERVED: [&str; 8] = [
    "/v1",
    "/v1/token",
    "/v1/tokens/",
    "/v1/tokens/a/b",
    "/v1/auths",
    "/v1/verify/",
    "/openapi.yaml",
    "/ui/other.js",
];

/// The web page: served on an issuer, a client of the API rather than part of it, so not in
/// the document.
const PAGE: [&str; 3] = ["/", "/ui/app.js", "/ui/app.css"];

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_router_serves() {
    let app = App::listen().await;
    let doc = app.document(&app.server.base).await;
    assert_eq!(doc.0["openapi"], "3.1.0");

    // The router and the document come from one list of handlers (`server::api`): what is
    // served is the document the router was built with, for this kind of instance.
    let built = serde_json::to_value(server::api_document(false)).unwrap();
    assert_eq!(doc.0, built, "the served document is the router's");
    let mut ids = BTreeSet::new();
    for (path, methods) in doc.operations() {
        for method in methods {
            let op = &doc.0["paths"][&path][&method];
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(
                ids.insert(id.to_owned()),
                "{method} {path}: {id} is not unique"
            );
            assert!(op["security"].is_array(), "{method} {path}: security");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}: responses"
            );
        }
    }

    // Every documented operation is served, every other method is refused; nothing near the
    // documented paths is served but the page.
    let calls = probe(&app, &app.server.base, &doc, "issuer").await;
    assert!(calls >= 8 * 14, "{calls} probes");
    for path in UNSERVED {
        let answer = app
            .send(
                &app.server.base,
                Method::GET,
                path,
                Some(&app.admin),
                None,
                &[],
            )
            .await;
        assert!(is_fallback(&answer), "{path} is served: {}", answer.status);
    }
    for path in PAGE {
        assert!(doc.0["paths"].get(path).is_none(), "{path} documented");
        let answer = app
            .send(&app.server.base, Method::GET, path, None, None, &[])
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }

    // A verify-only instance (following the issuer over HTTP) documents and serves only what
    // verifies.
    let (state_token, _) = app
        .create(
            "edge",
            r#"{"grants": [{"resource": "tessera", "role": "read-state"}]}"#,
        )
        .await;
    let edge = Server::listen(ServerConfig {
        keys_dir: app.dir.path().join("keys"),
        verify_only: true,
        state_from: Some((app.server.base.as_url().to_owned(), state_token)),
        ..ServerConfig::default()
    })
    .await;
    let edge_doc = app.document(&edge.base).await;
    let built = serde_json::to_value(server::api_document(true)).unwrap();
    assert_eq!(edge_doc.0, built, "the served document is the router's");
    assert!(edge_doc.0["paths"].get("/v1/tokens").is_none());
    assert!(edge_doc.0["paths"].get("/v1/auth").is_some());
    probe(&app, &edge.base, &edge_doc, "verify-only").await;
    let page = PAGE.iter().map(|p| p.to_string());
    for template in doc.operations().into_keys().chain(page) {
        if edge_doc.0["paths"].get(&template).is_none() {
            let path = concrete(&template);
            let answer = app
                .send(&edge.base, Method::GET, &path, Some(&app.admin), None, &[])
                .await;
            assert!(
                is_fallback(&answer),
                "verify-only: {template} is served but not documented: {} {}",
                answer.status,
                answer.text
            );
        }
    }
    edge.stop().await;
    app.stop().await;
}
