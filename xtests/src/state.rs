//! What `lab up` leaves behind for `status`, `logs`, `scale`, `backup` and `down`: a JSON
//! file in the lab's state directory naming the run, its namespaces and its processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::component::Component;
use crate::error::LabError;

/// The state of a lab brought up by `lab up` (the file `<dir>/state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The lab's name: namespaces are `<name>-<node>` under /run/netns.
    pub name: String,
    /// The run id carried by every kernel object and process of the lab.
    pub run_id: String,
    /// The topology file applied.
    pub topology: PathBuf,
    /// Product slots provisioned in the topology (product-1 … product-N).
    pub product_slots: u8,
    /// The `ecomm` binary the services run.
    pub ecomm: PathBuf,
    /// Every component the topology has room for (spare slots included).
    pub components: Vec<Component>,
    /// Components that should be running (spare slots join when scaled).
    pub enabled: Vec<String>,
    /// Node (or "router", "fabric") → namespace name under /run/netns.
    pub namespaces: BTreeMap<String, String>,
    /// Component → (pid, start time) of its process.
    pub pids: BTreeMap<String, (i32, u64)>,
    /// The host link in words (lab mode), e.g. "nk-lab 172.29.0.1/30 → router 172.29.0.2".
    #[serde(default)]
    pub host_link: Option<String>,
    /// The host link's interface name in the root namespace (lab mode), e.g. "nk-lab".
    #[serde(default)]
    pub host_ifname: Option<String>,
    /// False from the moment `lab up` records its intent until the topology is applied: a
    /// lab whose driver died in between is taken down and applied afresh, never converged.
    /// Default true (state files written before this field existed were complete).
    #[serde(default = "applied_by_default")]
    pub applied: bool,
    /// The pinned images' trees every process runs over (`lab up --pinned`); `None`: the
    /// host's programs.
    #[serde(default)]
    pub pinned: Option<crate::pinned::PinnedRoots>,
}

fn applied_by_default() -> bool {
    true
}

impl LabState {
    /// The state file inside `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Reads the state file of `dir`; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, LabError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LabError::Invalid {
                what: format!("lab state file {}", path.display()),
                value: e.to_string(),
                expected: "the JSON `lab up` writes (remove the file and run `just down`)".into(),
            })
    }

    /// Writes the state file into `dir` atomically: a temporary file of this process, fsynced,
    /// renamed over the old one, then the directory fsynced. A reader (or a `lab down` after
    /// a SIGKILL or a power loss) sees the old state or the new one, never a torn file.
    pub fn save(&self, dir: &Path) -> Result<(), LabError> {
        use std::io::Write;
        let path = Self::path(dir);
        let tmp = dir.join(format!(".state.json.tmp-{}", std::process::id()));
        let text = serde_json::to_vec_pretty(self).map_err(|e| LabError::Invalid {
            what: "lab state".into(),
            value: e.to_string(),
            expected: "serializable state".into(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            LabError::io(format!("write {}", path.display()), e)
        })
    }

    /// Records that component `name` runs as `pid` (started at `start_time`) and saves the
    /// file at once: called right after each spawn, so a driver killed a moment later leaves
    /// a state that names the process.
    pub fn record_pid(
        &mut self,
        dir: &Path,
        name: &str,
        pid: i32,
        start_time: u64,
    ) -> Result<(), LabError> {
        self.pids.insert(name.to_string(), (pid, start_time));
        self.save(dir)
    }

    /// Removes the state file of `dir` (data directories stay).
    pub fn remove(dir: &Path) -> Result<(), LabError> {
        match std::fs::remove_file(Self::path(dir)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LabError::io("remove the lab state file", e)),
        }
    }

    /// The /run/netns name of `node`.
    pub fn namespace(&self, node: &str) -> Result<&str, LabError> {
        self.namespaces
            .get(node)
            .map(String::as_str)
            .ok_or_else(|| LabError::UnknownComponent {
                name: node.to_string(),
                known: self
                    .namespaces
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> LabState {
        LabState {
            name: "t".into(),
            run_id: "0123abcd".into(),
            topology: PathBuf::from("three-tier.toml"),
            product_slots: 3,
            ecomm: PathBuf::from("ecomm"),
            components: Vec::new(),
            enabled: vec!["gateway".into()],
            namespaces: BTreeMap::from([("gateway".into(), "t-gateway".into())]),
            pids: BTreeMap::new(),
            host_link: None,
            host_ifname: Some("nk-t".into()),
            applied: false,
            pinned: None,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lab-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_recorded_pid_is_on_disk_at_once_and_no_temporary_file_stays() {
        let dir = temp_dir("pid");
        let mut state = sample();
        state.save(&dir).unwrap();
        state.record_pid(&dir, "gateway", 4242, 77).unwrap();
        let back = LabState::load(&dir).unwrap().unwrap();
        assert_eq!(back.pids["gateway"], (4242, 77));
        assert!(!back.applied);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_file_from_before_the_intent_fields_counts_as_applied() {
        let dir = temp_dir("old");
        let mut json = serde_json::to_value(sample()).unwrap();
        let fields = json.as_object_mut().unwrap();
        fields.remove("applied");
        fields.remove("host_ifname");
        std::fs::write(LabState::path(&dir), json.to_string()).unwrap();
        let back = LabState::load(&dir).unwrap().unwrap();
        assert!(back.applied);
        assert_eq!(back.host_ifname, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_state_file_is_a_typed_error_naming_the_file() {
        let dir = temp_dir("torn");
        std::fs::write(LabState::path(&dir), "{\"name\": \"t\", \"run_").unwrap();
        let err = LabState::load(&dir).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
