//! The `tessera` binary, black box: run in a folder of the test's own with none of the caller's
//! `TESSERA_*` variables, either to completion in a [`Sandbox`] or as a `tessera serve` child
//! ([`Serve`]), killed on drop.

use super::{free_port, Process};
use chrono::{Duration, Utc};
use reqwest::{Client, StatusCode};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The `tessera` binary, run in `dir` with none of the caller's `TESSERA_*` variables: the one
/// way the tests run it.
pub fn tessera(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESSERA_") {
            command.env_remove(key);
        }
    }
    command
}

/// What a run of the binary printed, and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).expect("stdout is one JSON value")
    }
}

/// A fresh working folder, the binary run inside it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::from_std(tessera(self.dir.path()));
        cmd.args(args);
        cmd
    }

    pub fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (key, value) in env {
            cmd.env(key, value);
        }
        // Always give stdin, so nothing waits on a terminal.
        cmd.write_stdin(stdin.unwrap_or(""));
        let out = cmd.output().expect("the binary runs");
        Run {
            code: out.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None, &[])
    }

    /// A key folder made by the library, `keys` in the sandbox.
    pub fn keys(&self) -> PathBuf {
        let dir = self.path("keys");
        tessera::keys::generate_into(&dir, Utc::now() - Duration::hours(1)).expect("key");
        dir
    }
}

/// A `tessera serve` child, killed on drop.
pub struct Serve {
    process: Process,
    /// `http://ADDR`.
    pub base: String,
    /// Where its log (stderr, at `info`) goes, for [`Serve::start_logged`].
    log: Option<PathBuf>,
}

impl Serve {
    /// `tessera serve --listen 127.0.0.1:PORT ARGS` in `dir` with `env`, on a free port.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut all = vec!["--listen", &listen];
        all.extend_from_slice(args);
        Self::spawn(dir, &all, env, &listen)
    }

    /// `tessera serve ARGS` in `dir` with `env`, expected to listen on `listen` (which the
    /// caller passes in `args`, the environment or a configuration file).
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)], listen: &str) -> Self {
        Self::spawn_logging(dir, args, env, listen, None)
    }

    /// [`Serve::start`], with its log kept in a file of `dir` for [`Serve::log`].
    pub fn start_logged(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec!["--listen", &listen];
        all.extend_from_slice(args);
        let log = dir.join(format!("serve-{port}.log"));
        Self::spawn_logging(dir, &all, env, &listen, Some(log))
    }

    fn spawn_logging(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        listen: &str,
        log: Option<PathBuf>,
    ) -> Self {
        let mut command = tessera(dir);
        command.arg("serve").args(args).stdout(Stdio::null());
        match &log {
            Some(path) => command
                .env("TESSERA_LOG", "info")
                .stderr(std::fs::File::create(path).unwrap()),
            None => command.env("TESSERA_LOG", "warn").stderr(Stdio::null()),
        };
        for (key, value) in env {
            command.env(key, value);
        }
        Self {
            process: Process(command.spawn().unwrap()),
            base: format!("http://{listen}"),
            log,
        }
    }

    /// What it has logged so far (for [`Serve::start_logged`]).
    pub fn log(&self) -> String {
        let path = self.log.as_ref().expect("started with start_logged");
        std::fs::read_to_string(path).unwrap()
    }

    /// A 30-day token named `name` with [`DEPLOY_PROD`](super::DEPLOY_PROD), made through this
    /// server with the super-admin `admin`: the answer, `{"token", "record"}`.
    pub async fn create_token(
        &self,
        client: &Client,
        admin: &str,
        name: &str,
    ) -> serde_json::Value {
        let permissions: serde_json::Value = serde_json::from_str(super::DEPLOY_PROD).unwrap();
        let response = client
            .post(format!("{}/v1/tokens", self.base))
            .bearer_auth(admin)
            .json(&serde_json::json!({"name": name, "expires": "30d", "permissions": permissions}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
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
                started.elapsed() < std::time::Duration::from_secs(20),
                "{} never got ready",
                self.base
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Send it SIGHUP (through `kill`), as an operator does to reload the key folder.
    pub fn hangup(&self) {
        let pid = self.process.0.id().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success(), "kill -HUP {pid}");
    }

    /// Stop it now (SIGKILL), as a crash or an outage would.
    pub fn kill(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
    }
}
