//! The per-request work of `GET /v1/auth` inside the process: tessera's whole router (metrics,
//! body limit, routing, the handler, verification from the signature cache, the state lookup,
//! last-use noting, the response headers) against a bare axum router whose handler returns 200,
//! both called in place with the request a gateway sends. No socket, no HTTP parsing: this is
//! the part of a request's cost that tessera adds, which the wrk runs of `benches/http_load/`
//! see diluted by the kernel and hyper.
//!
//! Run: `cargo bench --bench http_handler` (one group, so the ratios come from one run). For
//! counts that do not depend on the machine's load, run one case under callgrind:
//! `valgrind --tool=callgrind target/release/deps/http_handler-* --bench --profile-time 2
//! auth_one_token`.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tessera::server::{self, Track};
use tessera::startup::{self, ServerConfig};
use tower::{Service, ServiceExt as _};

const QUERY: &str = "/v1/auth?resource=devtron-app&role=trigger&project=p&environment=e&app=a";

fn request(path: &str, token: &str) -> Request<Body> {
    let mut request = Request::get(path)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    // What `into_make_service_with_connect_info` adds to every request of a connection.
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    request
}

/// What [`server::app`] and a bare [`Router`] both are.
trait App: Service<Request<Body>, Response = Response, Error = Infallible> + Clone {}

impl<S> App for S where S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone {}

async fn call(app: &impl App, request: Request<Body>) -> StatusCode {
    app.clone().oneshot(request).await.unwrap().status()
}

struct Setup {
    _dir: tempfile::TempDir,
    router: Track<Router>,
    admin: String,
    granted: String,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    // A first start with the embedded store generates the key pair.
    let config = ServerConfig {
        keys_dir: dir.path().join("keys"),
        store_url: format!("file:{}", dir.path().join("tessera.redb").display()),
        bootstrap_token: Some(dir.path().join("admin.token")),
        ..ServerConfig::default()
    };
    let (state, _) = startup::open(&config).await.unwrap();
    let admin = std::fs::read_to_string(dir.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let router = server::app(state);
    let create = Request::post("/v1/tokens")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"name": "granted", "expires": "30d", "permissions": {"grants": [{"resource":
            "devtron-app", "role": "trigger", "project": "p", "environments": ["e"],
            "apps": ["a"]}]}}"#,
        ))
        .unwrap();
    let response = router.clone().oneshot(create).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let granted = body["token"].as_str().unwrap().to_owned();
    Setup {
        _dir: dir,
        router,
        admin,
        granted,
    }
}

/// Time `iters` calls of `router` with requests made by `make`, on one thread.
fn timed(
    rt: &tokio::runtime::Runtime,
    router: &impl App,
    make: impl Fn() -> Request<Body>,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let status = call(router, make()).await;
            debug_assert_eq!(status, StatusCode::OK);
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let setup = rt.block_on(setup());
    let bare = Router::new().route("/bare", get(|| async { StatusCode::OK }));
    assert_eq!(
        rt.block_on(call(&bare, request("/bare", &setup.admin))),
        StatusCode::OK
    );
    for (path, token) in [("/v1/auth", &setup.admin), (QUERY, &setup.granted)] {
        let status = rt.block_on(call(&setup.router, request(path, token)));
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    let mut group = c.benchmark_group("http_handler");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| timed(&rt, &bare, || request("/bare", &setup.admin), n))
    });
    group.bench_function("auth_one_token", |b| {
        b.iter_custom(|n| timed(&rt, &setup.router, || request("/v1/auth", &setup.admin), n))
    });
    group.bench_function("auth_with_query", |b| {
        b.iter_custom(|n| timed(&rt, &setup.router, || request(QUERY, &setup.granted), n))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
