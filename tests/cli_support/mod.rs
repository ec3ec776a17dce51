//! The black-box harness for the `tessera` binary: a fresh temporary folder per test, the
//! binary run inside it with a clean environment.

#![allow(dead_code)]

use chrono::{Duration, Utc};
use std::path::PathBuf;

/// Every variable the binary reads: removed so the caller's environment cannot leak in.
pub const ENV: [&str; 12] = [
    "TESSERA_KEYS",
    "TESSERA_PUBLIC_KEY",
    "TESSERA_TOKEN",
    "TESSERA_ISSUER",
    "TESSERA_LEEWAY",
    "TESSERA_REQUIRE",
    "TESSERA_JSON",
    "TESSERA_STORE",
    "TESSERA_VERIFY_STORE",
    "TESSERA_MAX_LIFETIME_DAYS",
    "TESSERA_SERVER",
    "TESSERA_SERVER_CA",
];

pub const DEPLOY_PROD: &str = r#"{"grants": [{"resource": "devtron-app", "role": "trigger",
    "project": "payments", "environments": ["prod"], "apps": ["*"]}]}"#;

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
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_tessera"));
        for var in ENV {
            cmd.env_remove(var);
        }
        cmd.current_dir(self.dir.path()).args(args);
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
