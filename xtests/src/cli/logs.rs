//! `lab logs COMPONENT`: follow one component's log file.

use std::os::unix::process::CommandExt;

use super::LabDir;
use crate::error::LabError;
use crate::stack::log_path;

/// Replaces this process with `tail -n <lines> -F <log>` (or prints once without `follow`).
pub fn run(lab: &LabDir, component: &str, lines: usize, follow: bool) -> Result<(), LabError> {
    let state = lab.state()?;
    if !state.components.iter().any(|c| c.name == component) {
        return Err(LabError::UnknownComponent {
            name: component.to_string(),
            known: state
                .components
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let log = log_path(&lab.dir, component);
    let mut cmd = std::process::Command::new("tail");
    cmd.arg("-n").arg(lines.to_string());
    if follow {
        cmd.arg("-F");
    }
    cmd.arg(&log);
    Err(LabError::io(
        format!("run tail on {}", log.display()),
        cmd.exec(),
    ))
}
