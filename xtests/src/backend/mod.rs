//! The backends that carry a [`Deployment`]: one constructor per [`Backend`], behind
//! [`start_backend`], so the runner (`lab scenarios`) and the tests start any of them the same
//! way.
//!
//! - [`netns`]: the netns lab ([`crate::Lab`]) on this host.
//! - [`crate::docker::deployment`]: the Docker Compose stack generated from the declaration.
//! - [`vm`]: the QEMU cluster, one VM per placement host, each applying its share.

pub mod netns;
pub mod vm;

use std::path::Path;

use crate::deployment::{Backend, DeployError, Deployment};

/// Starts a deployment of the declaration `file` on `backend` and waits until it is ready.
/// Dropping the returned value tears it down.
pub fn start_backend(backend: Backend, file: &Path) -> Result<Box<dyn Deployment>, DeployError> {
    match backend {
        Backend::Netns => Ok(Box::new(netns::NetnsDeployment::start(file)?)),
        Backend::Docker => Ok(Box::new(crate::docker::deployment::start(file)?)),
        Backend::Vm => {
            let bins = vm::available().map_err(|reason| DeployError::Failed {
                backend: backend.to_string(),
                what: "start".into(),
                reason,
            })?;
            Ok(Box::new(vm::VmDeployment::start(file, bins)?))
        }
    }
}
