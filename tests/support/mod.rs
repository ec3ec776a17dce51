//! The one harness of the tests, included by each test binary (`tests/<name>/main.rs`) as
//! `#[path = "../support/mod.rs"] mod support;`, and by the benches that need a Redis as
//! `#[path = "../tests/support/mod.rs"] mod support;`.
//!
//! - [`app`]: the HTTP service in process (the router called with `oneshot`) or on a socket,
//!   and an issuer with its first super-admin token.
//! - [`binary`]: the `tessera` binary, run in a sandbox folder or as a `tessera serve` child.
//! - [`backend`]: the token lifecycle on a store of either kind, and a verifier following it.
//! - [`redis_server`], [`redis_cluster`], [`redis_sentinel`]: a throwaway `redis-server`, a
//!   Redis Cluster, and a primary with replicas under Sentinel.
//! - [`gateways`]: nginx, Caddy and Traefik from their recipes, an echo API and a relay.
//! - [`writes`]: token records and store writes made by hand, below the lifecycle.
//! - [`receiver`]: a webhook receiver that notes what it gets and refuses when told.
//!
//! Here: what the machine has (a free port, a binary on `PATH`, whether this is CI) and a
//! child process killed on drop.
//!
//! Each binary uses a part of it.

#![allow(dead_code)]

#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "store")]
pub mod backend;
#[cfg(feature = "cli")]
pub mod binary;
#[cfg(feature = "server")]
pub mod gateways;
#[cfg(feature = "server")]
pub mod receiver;
pub mod redis_cluster;
#[cfg(feature = "redis")]
pub mod redis_sentinel;
pub mod redis_server;
#[cfg(feature = "store")]
pub mod writes;

use std::net::TcpListener;
use std::process::Child;

/// A token's permissions: trigger deployments of any app to `prod` in project `payments`.
pub const DEPLOY_PROD: &str = r#"{"grants": [{"resource": "devtron-app", "role": "trigger",
    "project": "payments", "environments": ["prod"], "apps": ["*"]}]}"#;

/// The `(kid, status)` pairs of a key list, `{"keys": [{"kid", "status", …}]}` as `/v1/keys`
/// and `tessera keys list --json` give it.
pub fn key_statuses(keys: &serde_json::Value) -> Vec<(String, String)> {
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Whether `CI` says this is a CI run (where a missing tool fails a test instead of skipping
/// it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Where the executable `name` is: on `PATH`, or in the sbin folders Debian puts nginx in
/// (which a non-root `PATH` may leave out).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether the executable `name` can be found (see [`which`]).
pub fn on_path(name: &str) -> bool {
    which(name).is_some()
}

/// A loopback port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The name the test binary lists the test `name` of `module` under (`module_path!()` of the
/// caller): the module path without the crate, for re-running one test of this very binary
/// with `--exact`.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_owned(),
    }
}

/// A child process, killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
