//! The Docker engine: is it there, and running its CLIs (`docker`, `docker-compose`).

use std::process::Stdio;
use std::time::Duration;

use super::DockerError;

/// True when a Docker daemon answers. Otherwise says why the test is skipped and returns false —
/// except with `ECOMM_REQUIRE_ALL=1`, where it panics: a missing Docker is a failure.
pub fn docker_ready(what: &str) -> bool {
    let answered = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if answered {
        return true;
    }
    if std::env::var("ECOMM_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} needs a Docker daemon (just docker-ensure) and ECOMM_REQUIRE_ALL=1 is set");
    }
    eprintln!("skipped: {what} needs a Docker daemon (just docker-ensure)");
    false
}

/// True when a Docker daemon answers and `docker-compose` runs; otherwise like
/// [`docker_ready`]: skipped with a reason, or a panic with `ECOMM_REQUIRE_ALL=1`.
pub fn compose_ready(what: &str) -> bool {
    if !docker_ready(what) {
        return false;
    }
    let runs = std::process::Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if runs {
        return true;
    }
    if std::env::var("ECOMM_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} needs docker-compose (just setup) and ECOMM_REQUIRE_ALL=1 is set");
    }
    eprintln!("skipped: {what} needs docker-compose (just setup)");
    false
}

/// Runs `program args…` and returns its trimmed stdout; a non-zero exit is an error that carries
/// the tail of stderr. Times out after `timeout`.
pub async fn run(program: &str, args: &[&str], timeout: Duration) -> Result<String, DockerError> {
    let command = format!("{program} {}", args.join(" "));
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, child)
        .await
        .map_err(|_| DockerError::Timeout {
            what: command.clone(),
            seconds: timeout.as_secs(),
        })?
        .map_err(|source| DockerError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(DockerError::Command {
            command,
            status: out.status.to_string(),
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `docker args…` with a 120 s limit.
pub async fn docker(args: &[&str]) -> Result<String, DockerError> {
    run("docker", args, Duration::from_secs(120)).await
}

/// Polls `check` every 500 ms until it returns `Some`, for at most `seconds`.
pub async fn wait_for<T, F, Fut>(what: &str, seconds: u64, mut check: F) -> Result<T, DockerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DockerError::Timeout {
                what: what.to_string(),
                seconds,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
