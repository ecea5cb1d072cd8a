//! The netns side: the lab in lab mode (`lab up`: named namespaces, the declaration's host
//! link), with its "host" end in a client namespace this run creates instead of the host's
//! root namespace.
//!
//! Why a client namespace: lab mode routes the frontend tier (172.20.0.0/24 in the
//! declaration) from the host over the host link, and the Compose stack puts bridges for the
//! same tiers into the host's root namespace; both at once would collide (the route, and
//! docker-proxy dialling the Compose gateway would land on the lab's). `lab up` treats the
//! namespace it runs in as the host (netns-kit opens `/proc/self/ns/net`), so running it under
//! `ip netns exec <client>` puts the host link and its route there, and ab and wrk run there
//! too: the gateway is reached only through the lab's own host link, and the root namespace
//! is never changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::measure::Place;
use super::CompareError;
use crate::cli::LabDir;
use crate::http::Request;
use crate::ns::NsHandle;
use crate::process::last_lines;

/// A lab brought up for one comparison run; `down` (or Drop) removes it and its client
/// namespace.
pub struct LabSide {
    /// The lab's name (`cmp<run>`): its namespaces are `cmp<run>-<node>`.
    pub name: String,
    /// The client namespace (`cmp<run>host`): the lab's host end; ab and wrk run here.
    pub client: String,
    /// The gateway as the declaration places it, reached over the host link.
    pub gateway: std::net::SocketAddr,
    lab_bin: PathBuf,
    dir: PathBuf,
    removed: bool,
}

/// What `lab up` needs.
#[derive(Debug, Clone)]
pub struct LabInputs {
    /// This `lab` binary (it is run again as `lab up` / `lab down` inside the client).
    pub lab_bin: PathBuf,
    /// The `ecomm` binary the services run (the same one the Docker images carry).
    pub ecomm: PathBuf,
    /// The declaration.
    pub topology: PathBuf,
    /// Where the lab's state directory goes: `<dir>/cmp<run>` (logs, data, state.json),
    /// removed after a clean `lab down`.
    pub dir: PathBuf,
}

impl LabSide {
    /// Creates the client namespace, runs `lab up` inside it, reads the gateway's address
    /// from the lab's state. On error everything made so far is removed (by Drop).
    pub async fn up(run: &str, inputs: &LabInputs) -> Result<Self, CompareError> {
        let name = format!("cmp{run}");
        let client = format!("cmp{run}host");
        // One directory per run: a state file left by a killed run never meets this one.
        let dir = inputs.dir.join(&name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::LabError::io(format!("create {}", dir.display()), e))?;
        let mut side = LabSide {
            name,
            client,
            gateway: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            lab_bin: inputs.lab_bin.clone(),
            dir,
            removed: false,
        };
        run_ok("ip", &["netns", "add", &side.client], 30).await?;
        run_ok("ip", &["-n", &side.client, "link", "set", "lo", "up"], 30).await?;
        let topology = inputs.topology.to_string_lossy().into_owned();
        let ecomm = inputs.ecomm.to_string_lossy().into_owned();
        let up = side.lab(&["up", "--topology", &topology, "--ecomm", &ecomm]);
        run_ok_owned("ip", &up, 600).await?;
        let lab = LabDir::ensure(&side.dir, &side.name)?;
        let state = lab.state()?;
        side.gateway = state
            .components
            .iter()
            .find(|c| c.name == "gateway")
            .map(|c| c.addr)
            .ok_or_else(|| crate::LabError::UnknownComponent {
                name: "gateway".into(),
                known: state.enabled.join(", "),
            })?;
        Ok(side)
    }

    /// `ip netns exec <client> <lab> --dir D --name N <verb…>` as arguments of `ip`.
    fn lab(&self, verb: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["netns", "exec", self.client.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(self.lab_bin.to_string_lossy().into_owned());
        args.extend([
            "--dir".to_string(),
            self.dir.to_string_lossy().into_owned(),
            "--name".to_string(),
            self.name.clone(),
        ]);
        args.extend(verb.iter().map(|s| s.to_string()));
        args
    }

    /// Where ab and wrk run for this side.
    pub fn place(&self) -> Place {
        Place::Netns(self.client.clone())
    }

    /// The URL of `path` on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway)
    }

    /// In words, for the report.
    pub fn reached(&self) -> String {
        format!(
            "from namespace {} (the lab's host end) over the lab's host link and router",
            self.client
        )
    }

    /// GET `path` from the client namespace: (status, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String), CompareError> {
        let ns = NsHandle::open(
            self.client.clone(),
            &Path::new("/run/netns").join(&self.client),
        )?;
        let gateway = self.gateway;
        let request = Request::get(path).timeout(Duration::from_secs(10));
        let resp = tokio::task::spawn_blocking(move || request.send(&ns, gateway))
            .await
            .map_err(|e| crate::LabError::Panicked {
                what: format!("GET over the lab's host link: {e}"),
            })??;
        Ok((resp.status, resp.text()))
    }

    /// `lab down` inside the client namespace, then removes the client namespace.
    pub async fn down(mut self) -> Result<(), CompareError> {
        self.removed = true;
        let down = run_ok_owned("ip", &self.lab(&["down"]), 180).await;
        let del = run_ok("ip", &["netns", "del", &self.client], 30).await;
        down.and(del)?;
        // Logs and PostgreSQL data of a lab that went down cleanly are not kept.
        std::fs::remove_dir_all(&self.dir)
            .map_err(|e| crate::LabError::io(format!("remove {}", self.dir.display()), e))?;
        Ok(())
    }

    /// Namespaces of this lab (or its client) still under /run/netns.
    pub fn leftovers(name: &str) -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(name))
                    .map(|n| format!("namespace {n}"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for LabSide {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let _ = std::process::Command::new("ip")
            .args(self.lab(&["down"]))
            .stdin(std::process::Stdio::null())
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.client])
            .output();
    }
}

async fn run_ok(program: &str, args: &[&str], seconds: u64) -> Result<String, CompareError> {
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_ok_owned(program, &owned, seconds).await
}

/// Runs a command to success within `seconds`; its stdout, or an error with its output's tail.
async fn run_ok_owned(
    program: &str,
    args: &[String],
    seconds: u64,
) -> Result<String, CompareError> {
    let command = format!("{program} {}", args.join(" "));
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(seconds), child)
        .await
        .map_err(|_| CompareError::Tool {
            command: command.clone(),
            status: format!("still running after {seconds} s"),
            output: String::new(),
        })?
        .map_err(|e| CompareError::Tool {
            command: command.clone(),
            status: format!("cannot start: {e}"),
            output: String::new(),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(CompareError::Tool {
            command,
            status: out.status.to_string(),
            output: last_lines(
                &format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
                20,
            ),
        });
    }
    Ok(stdout)
}
