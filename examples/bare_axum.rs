//! A bare axum server, the baseline of the HTTP load benchmark (`benches/http_load/`):
//! `GET /bare` answers 200 with an empty body and does nothing else.
//!
//! It runs on the same runtime as `tessera serve` (tokio's multi-thread scheduler with every
//! driver enabled, one worker per core) and the same axum HTTP/1 server, so the difference
//! between the two under the same load is the work `tessera serve` does per request.
//!
//! ```text
//! cargo run --release --example bare_axum -- 8081      # or 0 for a free port
//! wrk -t2 -c64 -d10s --latency http://127.0.0.1:8081/bare
//! ```
//!
//! It prints `listening on ADDR` on stdout once bound, and stops on Ctrl-C or SIGTERM. It needs
//! the `server` feature (on by default): without it, it only says so.

#[cfg(feature = "server")]
fn main() -> std::process::ExitCode {
    bare::main()
}

#[cfg(not(feature = "server"))]
fn main() -> std::process::ExitCode {
    eprintln!("bare_axum needs the `server` feature (on by default)");
    std::process::ExitCode::FAILURE
}

#[cfg(feature = "server")]
mod bare {
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use std::net::SocketAddr;
    use std::process::ExitCode;

    const USAGE: &str = "usage: bare_axum PORT   (0 picks a free port; listens on 127.0.0.1)";

    pub fn main() -> ExitCode {
        let mut args = std::env::args().skip(1);
        let port = match (args.next().map(|p| p.parse::<u16>()), args.next()) {
            (Some(Ok(port)), None) => port,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        };
        // As in `tessera serve` (src/cli/serve.rs).
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(serve(SocketAddr::from(([127, 0, 0, 1], port)))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(addr: SocketAddr) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening on {}", listener.local_addr()?);
        let app = Router::new().route("/bare", get(bare));
        axum::serve(listener, app)
            .with_graceful_shutdown(tessera::server::shutdown_signal())
            .await
    }

    /// 200, empty body.
    async fn bare() -> StatusCode {
        StatusCode::OK
    }
}
