//! Real responses, successes and errors, validate against the document; and the validation
//! itself catches wrong answers.

use super::*;

const ALL_KINDS: &str = r#"{"grants": [
  {"resource": "devtron-app", "role": "trigger", "project": "payments",
   "environments": ["prod", "staging"], "apps": ["*"]},
  {"resource": "helm-app", "role": "edit", "project": "infra",
   "environments": ["prod-cluster__monitoring"], "apps": ["grafana"]},
  {"resource": "kubernetes", "role": "view", "cluster": "prod",
   "namespaces": ["*"], "groups": ["", "apps"], "kinds": ["Deployment", "Pod"], "names": ["web-*"]},
  {"resource": "chart-group", "role": "view", "groups": ["*"]}
]}"#;

#[tokio::test]
async fn real_responses_match_the_document() {
    let app = App::listen().await;
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
        .admin_call(
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
        .admin_call(
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
        .admin_call(
            Method::POST,
            "/v1/tokens",
            Some(create("ci-deployer", ALL_KINDS)),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    check("/v1/tokens", "post", &taken, "name taken");
    let bad_name = app
        .admin_call(Method::POST, "/v1/tokens", Some(create("No", ALL_KINDS)))
        .await;
    assert_eq!(bad_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("/v1/tokens", "post", &bad_name, "bad name");
    let unknown_field = app
        .admin_call(
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
    let too_large = app.admin_call(Method::POST, "/v1/tokens", Some(huge)).await;
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
    let list = app.admin_call(Method::GET, "/v1/tokens", None).await;
    check("/v1/tokens", "get", &list, "list");
    assert_eq!(list.json()["tokens"].as_array().unwrap().len(), 3);
    let filtered = app
        .admin_call(
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
        .admin_call(Method::GET, "/v1/tokens?expiring_within=3000000000h", None)
        .await;
    check("/v1/tokens", "get", &endless, "list, endless window");
    assert_eq!(endless.status, StatusCode::OK);
    let odd_unit = app
        .admin_call(Method::GET, "/v1/tokens?expiring_within=7%C3%A9", None)
        .await;
    assert_eq!(odd_unit.status, StatusCode::BAD_REQUEST);
    check("/v1/tokens", "get", &odd_unit, "list, odd unit");
    let bad_filter = app
        .admin_call(Method::GET, "/v1/tokens?status=gone", None)
        .await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);
    check("/v1/tokens", "get", &bad_filter, "bad filter");
    let item = format!("/v1/tokens/{id}");
    let shown = app.admin_call(Method::GET, &item, None).await;
    check("/v1/tokens/{id}", "get", &shown, "show");
    let missing = app
        .admin_call(
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
    let nothing = app.admin_call(Method::PATCH, &item, Some(json!({}))).await;
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
    let verify = |body: Value| app.admin_call(Method::POST, "/v1/verify", Some(body));
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
        .admin_call(
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
        .admin_call(
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
    let audit = app.admin_call(Method::GET, "/v1/audit?limit=2", None).await;
    check("/v1/audit", "get", &audit, "audit page");
    assert_eq!(audit.json()["next_after"], 2);
    let rest = app.admin_call(Method::GET, "/v1/audit?after=2", None).await;
    check("/v1/audit", "get", &rest, "audit, last page");
    let bad_limit = app.admin_call(Method::GET, "/v1/audit?limit=0", None).await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    check("/v1/audit", "get", &bad_limit, "audit, bad limit");

    let deliveries = app
        .admin_call(Method::GET, "/v1/webhooks/deliveries?limit=3", None)
        .await;
    check("/v1/webhooks/deliveries", "get", &deliveries, "deliveries");
    assert_eq!(deliveries.json()["deliveries"].as_array().unwrap().len(), 3);
    let bad_limit = app
        .admin_call(Method::GET, "/v1/webhooks/deliveries?limit=1001", None)
        .await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    check(
        "/v1/webhooks/deliveries",
        "get",
        &bad_limit,
        "deliveries, bad limit",
    );

    let snapshot = app.admin_call(Method::GET, "/v1/state", None).await;
    check("/v1/state", "get", &snapshot, "state snapshot");
    assert!(!snapshot.json()["entries"].as_array().unwrap().is_empty());
    let changes = app.admin_call(Method::GET, "/v1/state?since=0", None).await;
    check("/v1/state", "get", &changes, "state changes");
    let bad_wait = app
        .admin_call(Method::GET, "/v1/state?since=0&wait=3600", None)
        .await;
    assert_eq!(bad_wait.status, StatusCode::BAD_REQUEST);
    check("/v1/state", "get", &bad_wait, "state, wait too long");

    let deleted = app.admin_call(Method::DELETE, &item, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    check("/v1/tokens/{id}", "delete", &deleted, "delete");
    let again = app.admin_call(Method::DELETE, &item, None).await;
    check("/v1/tokens/{id}", "delete", &again, "delete again");
    let changes = app.admin_call(Method::GET, "/v1/state?since=0", None).await;
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
    app.stop().await;
}

#[tokio::test]
async fn answers_about_tokens_bound_to_networks_match_the_document() {
    let app = App::listen().await;
    let doc = app.document(&app.server.base).await;
    let check = |path: &str, method: &str, answer: &Answer, what: &str| {
        doc.check(path, method, answer, what)
    };
    let made = app
        .admin_call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "far-admin", "expires": "7d",
                        "permissions": {"super_admin": true},
                        "allowed_cidrs": ["10.1.2.3/8", "2001:db8::/32"]})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    check("/v1/tokens", "post", &made, "create, bound");
    let token = made.json()["token"].as_str().unwrap().to_owned();
    let id = made.json()["record"]["id"].as_str().unwrap().to_owned();
    let bad = app
        .admin_call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "bad-cidrs", "expires": "7d",
                        "permissions": {"super_admin": true}, "allowed_cidrs": ["10/8"]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("/v1/tokens", "post", &bad, "create, a bad network");
    let narrowed = app
        .admin_call(
            Method::PATCH,
            &format!("/v1/tokens/{id}"),
            Some(json!({"allowed_cidrs": ["10.0.0.0/16"]})),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text);
    check("/v1/tokens/{id}", "patch", &narrowed, "update the networks");
    let state = app.admin_call(Method::GET, "/v1/state", None).await;
    assert!(
        state.text.contains(r#""cidr":["10.0.0.0/16"]"#),
        "{}",
        state.text
    );
    check("/v1/state", "get", &state, "a state entry with networks");
    let changes = app.admin_call(Method::GET, "/v1/state?since=0", None).await;
    assert!(
        changes.text.contains(r#""cidr":["10.0.0.0/16"]"#),
        "{}",
        changes.text
    );
    check("/v1/state", "get", &changes, "a change with networks");

    let verify = |body: Value| app.admin_call(Method::POST, "/v1/verify", Some(body));
    // The update reaches the server's verifier through its state feed: wait for it.
    let started = std::time::Instant::now();
    let inside = loop {
        let inside = verify(json!({"token": token, "client_ip": "10.0.9.9"})).await;
        if inside.json()["token"]["allowed_cidrs"] == json!(["10.0.0.0/16"]) {
            break inside;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            inside.text
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    check("/v1/verify", "post", &inside, "verify, inside");
    let outside = verify(json!({"token": token, "client_ip": "10.1.0.1"})).await;
    assert_eq!(outside.json()["code"], "address_not_allowed");
    check("/v1/verify", "post", &outside, "verify, outside");
    let bad_ip = verify(json!({"token": token, "client_ip": "ten"})).await;
    assert_eq!(bad_ip.status, StatusCode::BAD_REQUEST);
    check("/v1/verify", "post", &bad_ip, "verify, a bad client_ip");

    let base = &app.server.base;
    let auth = app
        .send(base, Method::GET, "/v1/auth", Some(&token), None, &[])
        .await;
    assert_eq!(auth.status, StatusCode::FORBIDDEN);
    check("/v1/auth", "get", &auth, "auth, outside");
    let manage = app
        .send(base, Method::GET, "/v1/tokens", Some(&token), None, &[])
        .await;
    assert_eq!(manage.status, StatusCode::FORBIDDEN);
    assert_eq!(manage.json()["error"]["code"], "address_not_allowed");
    check("/v1/tokens", "get", &manage, "manage, outside");
}

#[tokio::test]
async fn the_checks_are_not_vacuous() {
    let app = App::listen().await;
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
    let list = app.admin_call(Method::GET, "/v1/tokens", None).await.json();
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
    app.stop().await;
}
