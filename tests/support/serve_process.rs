//! `tessera serve` as a child process of a test: the real binary, in a folder of the test's
//! own, with none of the caller's `TESSERA_*` variables, killed on drop.

#![allow(dead_code)]

use reqwest::{Client, StatusCode};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `tessera serve` child, killed on drop.
pub struct Serve {
    child: Child,
    /// `http://ADDR`.
    pub base: String,
}

impl Serve {
    /// `tessera serve ARGS` in `dir` with `env`, expected to listen on `listen` (which the
    /// caller passes in `args` or the environment).
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)], listen: &str) -> Self {
        let mut command = tessera(dir);
        command
            .arg("serve")
            .args(args)
            .env("TESSERA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        Self {
            child: command.spawn().unwrap(),
            base: format!("http://{listen}"),
        }
    }

    /// Wait until `/readyz` answers 200.
    pub async fn ready(&self, client: &Client) {
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await {
                if response.status() == StatusCode::OK {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} never got ready",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop it now (SIGKILL), as a crash or an outage would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `tessera` binary, run in `dir` with none of the caller's `TESSERA_*` variables.
pub fn tessera(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA_") {
            command.env_remove(key);
        }
    }
    command
}
