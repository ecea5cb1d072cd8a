//! The host side of the agent channel: a unix socket QEMU serves for the guest's
//! `virtserialport`, carrying [`crate::protocol`] frames.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::protocol::{read_frame, write_frame, Envelope, Exchanged, Request, Response, MAX_FRAME};

/// What one finished exchange brought back: the bytes received, or why it failed.
pub type ExchangeOutcome = std::result::Result<Vec<u8>, String>;

/// Output of a guest command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code (128 + signal when killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A connection to one VM's agent; requests are answered strictly in order.
#[derive(Debug)]
pub struct AgentClient {
    vm: String,
    path: PathBuf,
    stream: Option<UnixStream>,
    /// Received bytes not yet forming a whole frame.
    pending: Vec<u8>,
    next_id: u64,
    /// Recent requests and their outcomes, printed when a test fails.
    pub transcript: Vec<String>,
}

/// How many transcript lines are kept per VM.
const TRANSCRIPT_LINES: usize = 200;

impl AgentClient {
    /// A client for the socket at `path` (not yet connected).
    pub fn new(vm: &str, path: &Path) -> AgentClient {
        AgentClient {
            vm: vm.to_string(),
            path: path.to_path_buf(),
            stream: None,
            pending: Vec::new(),
            next_id: 1,
            transcript: Vec::new(),
        }
    }

    fn err(&self, detail: impl Into<String>) -> Error {
        Error::Agent {
            vm: self.vm.clone(),
            detail: detail.into(),
        }
    }

    fn note(&mut self, line: String) {
        if self.transcript.len() >= TRANSCRIPT_LINES {
            self.transcript.remove(0);
        }
        self.transcript.push(line);
    }

    /// Drops the connection (after a VM restart the socket is new).
    pub fn reset(&mut self) {
        self.stream = None;
        self.pending.clear();
    }

    fn connect(&mut self) -> Result<&mut UnixStream> {
        if self.stream.is_none() {
            let s = UnixStream::connect(&self.path)
                .map_err(|e| self.err(format!("connect {}: {e}", self.path.display())))?;
            self.stream = Some(s);
        }
        self.stream.as_mut().ok_or_else(|| Error::Agent {
            vm: String::new(),
            detail: "no stream".into(),
        })
    }

    /// Sends `req` and waits up to `timeout` for its answer; stale answers (to requests
    /// that timed out earlier) are skipped. Partial frames stay buffered across calls, so
    /// a timeout never desynchronises the stream.
    fn call(&mut self, req: Request, timeout: Duration) -> Result<Response> {
        let id = self.next_id;
        self.next_id += 1;
        let vm = self.vm.clone();
        let io = |e: std::io::Error| Error::Agent {
            vm: vm.clone(),
            detail: e.to_string(),
        };
        let stream = self.connect()?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        if let Err(e) = write_frame(stream, &Envelope { id, msg: req }) {
            self.reset();
            return Err(io(e));
        }
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(frame) = self.take_frame().map_err(io)? {
                if frame.id == id {
                    return Ok(frame.msg);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Agent {
                    vm,
                    detail: format!("no answer within {timeout:?}"),
                });
            }
            let stream = self.connect()?;
            stream.set_read_timeout(Some(left)).map_err(io)?;
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk) {
                Ok(0) => {
                    self.reset();
                    return Err(Error::Agent {
                        vm,
                        detail: "connection closed".into(),
                    });
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.reset();
                    return Err(io(e));
                }
            }
        }
    }

    /// Removes one complete frame from the receive buffer, if there is one.
    fn take_frame(&mut self) -> std::io::Result<Option<Envelope<Response>>> {
        if self.pending.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([
            self.pending[0],
            self.pending[1],
            self.pending[2],
            self.pending[3],
        ]);
        if len > MAX_FRAME {
            self.reset();
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {len} bytes"),
            ));
        }
        let end = 4 + len as usize;
        if self.pending.len() < end {
            return Ok(None);
        }
        let frame: Vec<u8> = self.pending.drain(..end).collect();
        read_frame(&mut frame.as_slice()).map(Some)
    }

    /// Pings until the agent answers or `deadline` passes; returns the guest uptime (ms).
    pub fn wait_ready(&mut self, deadline: Instant) -> Result<u64> {
        loop {
            if Instant::now() >= deadline {
                return Err(self.err("not ready"));
            }
            match self.call(Request::Ping, Duration::from_millis(500)) {
                Ok(Response::Pong { uptime_ms }) => return Ok(uptime_ms),
                Ok(other) => return Err(self.err(format!("unexpected answer to ping: {other:?}"))),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Runs `cmd` with `/bin/sh -c` in the guest.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<Output> {
        let started = Instant::now();
        let req = Request::Run {
            cmd: cmd.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        };
        let resp = self.call(req, timeout + Duration::from_secs(3));
        match resp {
            Ok(Response::Ran {
                code,
                stdout,
                stderr,
                timed_out,
            }) => {
                let took = started.elapsed();
                self.note(format!(
                    "run {cmd:?} -> {code} in {took:.2?}{}",
                    if timed_out { " (timed out)" } else { "" }
                ));
                if !stderr.is_empty() {
                    self.note(format!(
                        "  stderr: {}",
                        stderr.trim_end().replace('\n', "\n  stderr: ")
                    ));
                }
                if timed_out {
                    return Err(Error::CommandTimeout {
                        vm: self.vm.clone(),
                        cmd: cmd.to_string(),
                        after: timeout,
                    });
                }
                Ok(Output {
                    code,
                    stdout,
                    stderr,
                })
            }
            Ok(Response::Error { message }) => {
                self.note(format!("run {cmd:?} -> agent error {message}"));
                Err(self.err(message))
            }
            Ok(other) => Err(self.err(format!("unexpected answer to run: {other:?}"))),
            Err(e) => {
                self.note(format!("run {cmd:?} -> {e}"));
                Err(e)
            }
        }
    }

    /// Starts `cmd` in the background; its output is appended to `log`. Returns its pid.
    pub fn spawn(&mut self, cmd: &str, log: &str) -> Result<u32> {
        let resp = self.call(
            Request::Spawn {
                cmd: cmd.to_string(),
                log: log.to_string(),
            },
            Duration::from_secs(30),
        )?;
        match resp {
            Response::Spawned { pid } => {
                self.note(format!("spawn {cmd:?} -> pid {pid}, log {log}"));
                Ok(pid)
            }
            Response::Error { message } => Err(self.err(message)),
            other => Err(self.err(format!("unexpected answer to spawn: {other:?}"))),
        }
    }

    /// Writes `data` to `path` in the guest with permission bits `mode`.
    pub fn write_file(&mut self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        let data_b64 = base64::engine::general_purpose::STANDARD.encode(data);
        match self.call(
            Request::WriteFile {
                path: path.to_string(),
                data_b64,
                mode,
            },
            Duration::from_secs(60),
        )? {
            Response::Written => {
                self.note(format!("write {path} ({} bytes)", data.len()));
                Ok(())
            }
            Response::Error { message } => Err(self.err(message)),
            other => Err(self.err(format!("unexpected answer to write: {other:?}"))),
        }
    }

    /// Reads `path` from the guest.
    pub fn read_file(&mut self, path: &str) -> Result<Vec<u8>> {
        match self.call(
            Request::ReadFile {
                path: path.to_string(),
            },
            Duration::from_secs(60),
        )? {
            Response::Data { data_b64 } => base64::engine::general_purpose::STANDARD
                .decode(data_b64)
                .map_err(|e| self.err(format!("base64: {e}"))),
            Response::Error { message } => Err(self.err(message)),
            other => Err(self.err(format!("unexpected answer to read: {other:?}"))),
        }
    }

    /// Starts a TCP exchange in the guest (see [`Request::Exchange`]); returns its job id,
    /// whose outcome a later [`AgentClient::collect`] hands out.
    pub fn exchange(
        &mut self,
        netns: Option<&str>,
        addr: &str,
        data: &[u8],
        timeout: Duration,
    ) -> Result<u64> {
        let req = Request::Exchange {
            netns: netns.map(str::to_string),
            addr: addr.to_string(),
            data_b64: base64::engine::general_purpose::STANDARD.encode(data),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        match self.call(req, Duration::from_secs(30))? {
            Response::Started { job } => {
                self.note(format!(
                    "exchange {} bytes with {addr} in {} -> job {job}",
                    data.len(),
                    netns.unwrap_or("the root namespace")
                ));
                Ok(job)
            }
            Response::Error { message } => Err(self.err(message)),
            other => Err(self.err(format!("unexpected answer to exchange: {other:?}"))),
        }
    }

    /// The exchanges that finished since the last collect: job id and the bytes received,
    /// or why it failed.
    pub fn collect(&mut self) -> Result<Vec<(u64, ExchangeOutcome)>> {
        match self.call(Request::Collect, Duration::from_secs(30))? {
            Response::Collected { done } => done
                .into_iter()
                .map(
                    |Exchanged {
                         job,
                         data_b64,
                         error,
                     }| {
                        let outcome = match (data_b64, error) {
                            (_, Some(e)) => Err(e),
                            (Some(d), None) => Ok(base64::engine::general_purpose::STANDARD
                                .decode(d)
                                .map_err(|e| self.err(format!("base64 of job {job}: {e}")))?),
                            (None, None) => Err("no outcome".to_string()),
                        };
                        Ok((job, outcome))
                    },
                )
                .collect(),
            Response::Error { message } => Err(self.err(message)),
            other => Err(self.err(format!("unexpected answer to collect: {other:?}"))),
        }
    }
}
