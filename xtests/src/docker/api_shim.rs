//! Docker API version shim for testcontainers.
//!
//! testcontainers' client (bollard 0.19) always speaks Docker API 1.49, and never negotiates;
//! Debian bookworm's dockerd (20.10) answers at most 1.41 and rejects newer clients. When the
//! daemon is that old, this shim listens on a private unix socket, rewrites each request's
//! `/v1.49/` path prefix to the daemon's version, forces one request per connection (so every
//! request passes the rewrite) and forwards bytes both ways. `DOCKER_HOST` points
//! testcontainers at it. The shim runs on its own thread and runtime for the life of the process.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::OnceCell;

use super::engine::run;
use super::DockerError;

/// The API version testcontainers' bollard sends.
const CLIENT_API: &str = "1.49";
/// The daemon's socket.
const DAEMON_SOCKET: &str = "/var/run/docker.sock";

/// Points testcontainers at a daemon it can talk to: directly when the daemon speaks API 1.49,
/// else through the shim. Idempotent; call before the first container starts.
pub async fn ensure_testcontainers_endpoint() -> Result<(), DockerError> {
    static READY: OnceCell<Result<(), String>> = OnceCell::const_new();
    READY
        .get_or_init(|| async { setup().await.map_err(|e| e.to_string()) })
        .await
        .clone()
        .map_err(|message| DockerError::Container {
            name: "api-shim".into(),
            message,
        })
}

async fn setup() -> Result<(), DockerError> {
    let server = run(
        "docker",
        &["version", "--format", "{{.Server.APIVersion}}"],
        Duration::from_secs(20),
    )
    .await?;
    if version_at_least(&server, CLIENT_API) {
        return Ok(());
    }
    remove_sockets_of_dead_processes();
    let path = PathBuf::from(format!("{SOCKET_PREFIX}{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let std_listener =
        std::os::unix::net::UnixListener::bind(&path).map_err(|source| DockerError::Spawn {
            command: format!("bind {}", path.display()),
            source,
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|source| DockerError::Spawn {
            command: "set_nonblocking".into(),
            source,
        })?;
    let from = format!("/v{CLIENT_API}/");
    let to = format!("/v{server}/");
    std::thread::Builder::new()
        .name("docker-api-shim".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = UnixListener::from_std(std_listener) else {
                    return;
                };
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(forward(client, from.clone(), to.clone()));
                }
            });
        })
        .map_err(|source| DockerError::Spawn {
            command: "spawn docker-api-shim thread".into(),
            source,
        })?;
    // testcontainers reads DOCKER_HOST when it creates its client (after this).
    std::env::set_var("DOCKER_HOST", format!("unix://{}", path.display()));
    Ok(())
}

/// Where a test process's shim listens: this prefix, its pid, `.sock`. The socket lives as
/// long as the process; the next process to start a shim removes those of dead processes.
const SOCKET_PREFIX: &str = "/tmp/ecomm-docker-shim-";

/// Removes shim sockets whose process is gone (a live process's socket is never touched).
fn remove_sockets_of_dead_processes() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(pid) = path
            .to_str()
            .and_then(|p| p.strip_prefix(SOCKET_PREFIX))
            .and_then(|rest| rest.strip_suffix(".sock"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// True when `have` (e.g. "1.41") is at least `want`.
fn version_at_least(have: &str, want: &str) -> bool {
    let parse = |v: &str| -> (u32, u32) {
        let mut it = v.split('.').map(|p| p.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    parse(have) >= parse(want)
}

/// One client connection: read the request head, rewrite the version and the Connection
/// header (unless it is an upgrade), then copy both ways.
async fn forward(mut client: UnixStream, from: String, to: String) {
    let mut head = Vec::with_capacity(4096);
    let mut buf = [0u8; 4096];
    let end = loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if let Some(pos) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if head.len() > 1 << 20 {
            return;
        }
    };
    let (head_bytes, rest) = head.split_at(end);
    let text = String::from_utf8_lossy(head_bytes);
    let upgrade = text.to_ascii_lowercase().contains("\r\nupgrade:");
    let mut out = String::with_capacity(text.len() + 32);
    for (i, line) in text.split("\r\n").enumerate() {
        if i == 0 {
            out.push_str(&line.replacen(&from, &to, 1));
            out.push_str("\r\n");
        } else if line.is_empty()
            || (!upgrade && line.to_ascii_lowercase().starts_with("connection:"))
        {
            continue;
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    if !upgrade {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let Ok(mut daemon) = UnixStream::connect(DAEMON_SOCKET).await else {
        return;
    };
    if daemon.write_all(out.as_bytes()).await.is_err() || daemon.write_all(rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sockets_of_dead_processes_are_removed_and_live_ones_kept() {
        // 4194304 is above the kernel's largest pid_max: no process can have it.
        let dead = PathBuf::from(format!("{SOCKET_PREFIX}4194304.sock"));
        let live = PathBuf::from(format!("{SOCKET_PREFIX}{}.sock", std::process::id()));
        let live_existed = live.exists();
        std::fs::write(&dead, b"").unwrap();
        if !live_existed {
            std::fs::write(&live, b"").unwrap();
        }
        remove_sockets_of_dead_processes();
        assert!(!dead.exists());
        assert!(live.exists());
        if !live_existed {
            std::fs::remove_file(&live).unwrap();
        }
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("1.41", "1.41"));
        assert!(version_at_least("1.49", "1.41"));
        assert!(!version_at_least("1.9", "1.41"));
    }
}
