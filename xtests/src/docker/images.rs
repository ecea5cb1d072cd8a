//! The stack's images, built once per test binary: `scripts/docker-images.sh` with the `ecomm`
//! binary of this build. A file lock keeps parallel test processes from building at once; the
//! script itself skips an image whose content tag already exists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::engine::run;
use super::DockerError;

/// The services image (entrypoint `ecomm`).
pub const SERVICES: &str = "ecomm-services:local";
/// The Redis image.
pub const REDIS: &str = "ecomm-redis:local";
/// The PostgreSQL image (superuser password from `POSTGRES_PASSWORD`).
pub const POSTGRES: &str = "ecomm-postgres:local";

/// Where the lock file lives (shared by every test process on the host).
const LOCK: &str = "/tmp/ecomm-docker-images.lock";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the three images unless this process already did; later callers wait for the first.
pub async fn ensure_images() -> Result<(), DockerError> {
    static BUILT: OnceCell<Result<(), String>> = OnceCell::const_new();
    BUILT
        .get_or_init(|| async { build().await.map_err(|e| e.to_string()) })
        .await
        .clone()
        .map_err(DockerError::Build)
}

async fn build() -> Result<(), DockerError> {
    let ecomm = tokio::task::spawn_blocking(crate::lab::ecomm_binary)
        .await
        .map_err(|e| DockerError::Build(e.to_string()))?
        .map_err(|e| DockerError::Build(e.to_string()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)
        .map_err(|source| DockerError::Spawn {
            command: format!("open {LOCK}"),
            source,
        })?;
    let guard = tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
    })
    .await
    .map_err(|e| DockerError::Build(e.to_string()))?
    .map_err(|(_, errno)| DockerError::Build(format!("flock {LOCK}: {errno}")))?;
    let script = workspace().join("scripts/docker-images.sh");
    let out = run(
        &script.to_string_lossy(),
        &["--ecomm", &ecomm.to_string_lossy()],
        // Compiling and assembling on a loaded host takes longer: the bound grows with it.
        Duration::from_secs(super::host_load::scaled(600)),
    )
    .await;
    drop(guard);
    eprintln!("docker images: {}", out?.replace('\n', "; "));
    Ok(())
}
