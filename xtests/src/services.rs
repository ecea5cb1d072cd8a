//! How each ecomm service is started in the lab: the command line its declaration gives
//! (ecomm-services/deploy/three-tier.toml, `[[services]]`), with the runtime variables filled in.
//!
//! Every address, port and database name comes from the declaration (already resolved in the
//! component); the lab supplies only what the declaration leaves to the runner: the registry
//! token, each service's PostgreSQL credentials (`db_auth`), kept in the state directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use netns_kit::topology::service::substitute;

use crate::component::Component;
use crate::error::LabError;
use crate::pinned::Confine;
use crate::process::Launch;

/// The program name in the declaration that means "the `ecomm` binary under test".
pub const ECOMM: &str = "ecomm";

/// What the runner supplies to the declared command lines.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// The `ecomm` binary.
    pub ecomm: PathBuf,
    /// The registry's bearer token for writes (`${registry_token}`).
    pub registry_token: String,
    /// `${db_auth}` per service ("role:password"), for services that declare a database.
    pub db_auth: BTreeMap<String, String>,
    /// Registry lease the services ask for, in seconds; `None` = the services' default (10).
    pub registry_ttl_seconds: Option<u64>,
    /// Run the services over the pinned `ecomm-services` tree (its `ecomm`, at
    /// [`crate::pinned::ECOMM_IN_IMAGE`]) instead of [`Wiring::ecomm`] on the host.
    pub confine: Option<Confine>,
}

impl Wiring {
    /// The declared command line of a service component (`None` for the data stores: their
    /// declared commands are launched by [`crate::datastores`], which also prepares their
    /// data directories).
    pub fn launch(&self, c: &Component) -> Result<Option<Launch>, LabError> {
        if !c.kind.is_service() {
            return Ok(None);
        }
        let mut vars =
            BTreeMap::from([("registry_token".to_string(), self.registry_token.clone())]);
        if let Some(auth) = self.db_auth.get(&c.service) {
            vars.insert("db_auth".to_string(), auth.clone());
        }
        let resolve = |field: &str, text: &str| {
            substitute(&format!("{}.{field}", c.name), text, &vars)
                .map_err(|e| LabError::Topology(e.to_string()))
        };
        let mut args = Vec::with_capacity(c.command.len());
        for (k, a) in c.command.iter().enumerate() {
            args.push(resolve(&format!("command[{k}]"), a)?);
        }
        let Some((program, rest)) = args.split_first() else {
            return Err(LabError::Topology(format!("{}: empty command", c.name)));
        };
        let program = match (program == ECOMM, &self.confine) {
            (true, Some(_)) => PathBuf::from(crate::pinned::ECOMM_IN_IMAGE),
            (true, None) => self.ecomm.clone(),
            (false, _) => PathBuf::from(program),
        };
        let mut launch = Launch::new(program)
            .args(rest)
            .confined(self.confine.clone());
        for (key, value) in &c.env {
            launch = launch.env(key, resolve(&format!("env.{key}"), value)?);
        }
        if let Some(ttl) = self.registry_ttl_seconds {
            // The services' flag's environment fallback (the registry ignores it).
            launch = launch.env("ECOMM_REGISTRY_TTL_SECONDS", ttl.to_string());
        }
        Ok(Some(launch))
    }
}
