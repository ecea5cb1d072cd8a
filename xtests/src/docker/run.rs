//! Run ids: every container, network and volume a fixture creates carries one, in its name and
//! in the label `ecomm.run`, so cleanup removes exactly what this run made.

use super::engine::docker;
use super::DockerError;

/// The label key that carries the run id.
pub const RUN_LABEL: &str = "ecomm.run";

/// A fresh run id: 8 lowercase hex digits.
pub fn new_run_id() -> String {
    crate::datastores::random_hex(4).unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{:08x}", nanos ^ std::process::id())
    })
}

/// Everything of the Docker engine whose name contains `needle` or whose `ecomm.run` label is
/// `needle`: containers, networks, volumes, services (one line per object, `kind name`).
pub async fn leftovers(needle: &str) -> Result<Vec<String>, DockerError> {
    let label = format!("label={RUN_LABEL}={needle}");
    let name = format!("name={needle}");
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-a", "--format", "{{.Names}}"]),
        ("network", vec!["network", "ls", "--format", "{{.Name}}"]),
        ("volume", vec!["volume", "ls", "--format", "{{.Name}}"]),
    ] {
        for filter in [&label, &name] {
            let mut a = args.clone();
            a.extend(["--filter", filter.as_str()]);
            for line in docker(&a).await?.lines().filter(|l| !l.is_empty()) {
                let entry = format!("{kind} {line}");
                if !found.contains(&entry) {
                    found.push(entry);
                }
            }
        }
    }
    Ok(found)
}

/// Removes every container, network and volume labelled with `run` (best effort, blocking: it
/// runs from `Drop`, also during a panic).
pub fn remove_labelled(run: &str) {
    let label = format!("label={RUN_LABEL}={run}");
    let list = |args: &[&str]| -> Vec<String> {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let remove = |prefix: &[&str], ids: Vec<String>| {
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(prefix)
                .args(&ids)
                .output();
        }
    };
    remove(
        &["rm", "-f", "-v"],
        list(&["ps", "-aq", "--filter", &label]),
    );
    remove(
        &["network", "rm"],
        list(&["network", "ls", "-q", "--filter", &label]),
    );
    remove(
        &["volume", "rm", "-f"],
        list(&["volume", "ls", "-q", "--filter", &label]),
    );
}
