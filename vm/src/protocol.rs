//! The agent's wire protocol: each message is a 4-byte big-endian length followed by
//! that many bytes of JSON. The host sends one [`Request`], the agent answers with one
//! [`Response`].

use std::io::{Read, Write};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Largest frame either side accepts (64 MiB): guards against a corrupt length.
pub const MAX_FRAME: u32 = 64 << 20;

/// A message with the id that pairs a response with its request (the host drops
/// answers to requests it already gave up on).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope<T> {
    /// Request id, echoed in the response.
    pub id: u64,
    /// The request or response.
    pub msg: T,
}

/// What the host asks the agent to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Answer [`Response::Pong`]: readiness probe.
    Ping,
    /// Run `/bin/sh -c cmd`, wait at most `timeout_ms`, capture stdout and stderr.
    Run {
        /// The shell command.
        cmd: String,
        /// Kill the process group after this many milliseconds.
        timeout_ms: u64,
    },
    /// Start `/bin/sh -c cmd` in the background in its own session; output goes to `log`.
    Spawn {
        /// The shell command.
        cmd: String,
        /// File receiving stdout and stderr (appended).
        log: String,
    },
    /// Write `data_b64` (base64) to `path`, creating or truncating it.
    WriteFile {
        /// Absolute guest path.
        path: String,
        /// Contents, base64.
        data_b64: String,
        /// Unix permission bits.
        mode: u32,
    },
    /// Read `path` whole.
    ReadFile {
        /// Absolute guest path.
        path: String,
    },
    /// Start one TCP exchange on an agent thread and answer [`Response::Started`] at once:
    /// connect to `addr` from the network namespace pinned at `netns` (the guest's root
    /// namespace when `None`), send `data_b64`, read until the peer closes (HTTP requests say
    /// `Connection: close`). No
    /// process is started, so a request costs no `exec` under TCG. Its outcome is picked
    /// up by [`Request::Collect`].
    Exchange {
        /// Path of a pinned network namespace, e.g. `/run/netns/r1-gateway`.
        netns: Option<String>,
        /// `ip:port` to connect to.
        addr: String,
        /// Bytes to send, base64.
        data_b64: String,
        /// Deadline for the connect and for the whole exchange.
        timeout_ms: u64,
    },
    /// Answer [`Response::Collected`] with every exchange that finished since the last
    /// collect (each outcome is handed out once).
    Collect,
}

/// The agent's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Response {
    /// Reply to [`Request::Ping`], with the guest's uptime in milliseconds.
    Pong {
        /// Guest uptime (ms) from /proc/uptime.
        uptime_ms: u64,
    },
    /// Result of [`Request::Run`].
    Ran {
        /// Exit code, or 128 + signal number when killed by a signal.
        code: i32,
        /// Captured standard output (lossy UTF-8).
        stdout: String,
        /// Captured standard error (lossy UTF-8).
        stderr: String,
        /// Whether the timeout killed it.
        timed_out: bool,
    },
    /// Result of [`Request::Spawn`].
    Spawned {
        /// The process id (also its process group and session id).
        pid: u32,
    },
    /// Result of [`Request::WriteFile`].
    Written,
    /// Result of [`Request::ReadFile`].
    Data {
        /// Contents, base64.
        data_b64: String,
    },
    /// Result of [`Request::Exchange`]: the job the outcome will carry.
    Started {
        /// Job id, unique for the agent's life.
        job: u64,
    },
    /// Result of [`Request::Collect`].
    Collected {
        /// The exchanges that finished, in no particular order.
        done: Vec<Exchanged>,
    },
    /// The request failed; `message` says why.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// The outcome of one [`Request::Exchange`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exchanged {
    /// The job [`Response::Started`] named.
    pub job: u64,
    /// Everything the peer sent before it closed, base64; `None` when the exchange failed.
    pub data_b64: Option<String>,
    /// Why the exchange failed (`refused`, `timed out`, ...); `None` when it completed.
    pub error: Option<String>,
}

/// Writes one length-prefixed JSON frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)?;
    w.flush()
}

/// Reads one length-prefixed JSON frame.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME}"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_through_a_frame() {
        let req = Request::Run {
            cmd: "echo hi".into(),
            timeout_ms: 5000,
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        assert_eq!(
            u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize,
            buf.len() - 4
        );
        let back: Request = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn an_exchange_and_its_collected_outcome_round_trip() {
        let req = Request::Exchange {
            netns: Some("/run/netns/r-gw".into()),
            addr: "10.10.0.2:8080".into(),
            data_b64: "R0VUIC8=".into(),
            timeout_ms: 2000,
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        assert_eq!(read_frame::<Request>(&mut buf.as_slice()).unwrap(), req);
        let resp = Response::Collected {
            done: vec![Exchanged {
                job: 3,
                data_b64: None,
                error: Some("refused".into()),
            }],
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &resp).unwrap();
        assert_eq!(read_frame::<Response>(&mut buf.as_slice()).unwrap(), resp);
    }

    #[test]
    fn an_oversized_length_is_rejected() {
        let buf = (MAX_FRAME + 1).to_be_bytes();
        let err = read_frame::<Request>(&mut buf.as_slice()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
