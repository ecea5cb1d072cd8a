//! A real `ecomm` child process (JSON logs on stdout), killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `ecomm <subcommand>`.
pub struct Ecomm {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Ecomm {
    /// Starts `ecomm --log-format json <args…>`.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ecomm"))
            .arg("--log-format")
            .arg("json")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ecomm");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                    if tx.send(value).is_err() {
                        return;
                    }
                } else {
                    eprintln!("ecomm: {line}");
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to 15 s) for a log line whose message is `message`; returns its fields.
    pub fn wait_for_log(&mut self, message: &str) -> serde_json::Value {
        if let Some(found) = self.seen.iter().find(|v| v["fields"]["message"] == message) {
            return found["fields"].clone();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("ecomm never logged {message:?}"));
            self.seen.push(line.clone());
            if line["fields"]["message"] == message {
                return line["fields"].clone();
            }
        }
    }

    /// The address logged by `message` (field `addr`).
    pub fn logged_addr(&mut self, message: &str) -> SocketAddr {
        self.wait_for_log(message)["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Starts a registry on free loopback ports; returns it with its HTTP and DNS addresses.
    pub fn registry(extra: &[&str]) -> (Self, SocketAddr, SocketAddr) {
        let mut args = vec![
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
            "--token",
            super::TOKEN,
            "--sweep-interval-ms",
            "100",
        ];
        args.extend_from_slice(extra);
        let mut registry = Self::start(&args);
        let http = registry.logged_addr("listening");
        let dns = registry.logged_addr("dns listening");
        (registry, http, dns)
    }

    /// Starts a gateway on a free loopback port with `args`; returns it and its address.
    pub fn gateway(args: &[&str]) -> (Self, SocketAddr) {
        let mut all = vec!["gateway", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut gateway = Self::start(&all);
        let addr = gateway.logged_addr("listening");
        (gateway, addr)
    }

    /// Sends SIGTERM (graceful drain).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited successfully.
    pub fn wait_exit(&mut self) -> bool {
        self.child.wait().unwrap().success()
    }
}

impl Drop for Ecomm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
