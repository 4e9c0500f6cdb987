//! Real protocol peers written in Python (`tests/peers/*.py`: grpcio, websockets)
//! run from `.venv-peers`, which `scripts/peers` installs. A peer prints JSON
//! lines; servers print `{"port": N}` first and stop when their stdin closes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The peers' interpreter; fails (never skips) with the command that installs it.
pub fn python() -> std::path::PathBuf {
    let py = super::repo(".venv-peers/bin/python3");
    assert!(
        py.exists(),
        "{} is missing: run `scripts/peers` (installs grpcio, websockets, httpx into .venv-peers)",
        py.display()
    );
    py
}

/// A long-running peer (an origin), stopped by PID when dropped.
pub struct PeerServer {
    child: Child,
    lines: mpsc::Receiver<Value>,
    /// The port it printed once listening.
    pub port: u16,
}

impl PeerServer {
    /// Starts `tests/peers/<script>` with `args` and waits for its `{"port": N}`.
    pub fn start(script: &str, args: &[&str]) -> PeerServer {
        let mut child = Command::new(python())
            .arg(super::repo(&format!("tests/peers/{script}")))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let (tx, lines) = mpsc::channel::<Value>();
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                match serde_json::from_str(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("{line}"),
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("{script} printed no port within 15 s"));
        let port = first["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("{script}: expected {{\"port\": N}}, got {first}"));
        PeerServer { child, lines, port }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The next JSON line it printed, or None after `within`.
    pub fn next_line(&self, within: Duration) -> Option<Value> {
        self.lines.recv_timeout(within).ok()
    }

    /// Kills it now (a dead origin), by PID.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a client peer to completion (at most `within`) and returns the JSON
/// lines it printed; panics with its stderr if it failed or printed nothing.
pub async fn run_client(script: &str, args: &[&str], within: Duration) -> Vec<Value> {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(super::repo(&format!("tests/peers/{script}")))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} {args:?} did not finish within {within:?}"))
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{stderr}",
        out.status
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{script}: {e}: {l}")))
        .collect();
    assert!(
        !lines.is_empty(),
        "{script} printed nothing; stderr:\n{stderr}"
    );
    lines
}
