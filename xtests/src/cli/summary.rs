//! What `lab up` and `lab status` print: what runs where, how to reach it, how to look inside.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use netns_kit::graph::{render, Format};
use netns_kit::topology::Topology;

use super::LabDir;
use crate::component::Health;
use crate::stack::{log_path, Stack};
use crate::state::LabState;

/// Renders the topology picture (`dot -Tsvg`) into `<dir>/topology.svg`; `None` if dot fails.
pub fn render_picture(dir: &Path, topology: &Topology) -> Option<PathBuf> {
    let dot_text = render(topology, Format::Dot);
    let dot_file = dir.join("topology.dot");
    std::fs::write(&dot_file, &dot_text).ok()?;
    let svg = dir.join("topology.svg");
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(&svg)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(dot_text.as_bytes()).ok()?;
    child.wait().ok()?.success().then_some(svg)
}

/// Prints the component table (with live health) and the commands to look inside.
pub fn print(lab: &LabDir, state: &LabState, stack: &mut Stack, picture: Option<&Path>) {
    println!();
    println!(
        "lab {:?} (run {}), state in {}",
        state.name,
        state.run_id,
        lab.dir.display()
    );
    print_table(state, stack);
    if let Some(roots) = &state.pinned {
        println!("programs from the pinned images (images.lock), each over its image's tree:");
        for r in [&roots.services, &roots.redis, &roots.postgres] {
            println!("  {:<15} sha256:{}", r.role, r.image_sha256);
        }
    }
    let ns = |node: &str| state.namespace(node).unwrap_or(node).to_string();
    println!();
    println!("Reach it from the host:");
    let addr = |name: &str| {
        state
            .components
            .iter()
            .find(|c| c.name == name)
            .map_or_else(|| format!("<{name}>"), |c| c.addr.to_string())
    };
    let host = |name: &str| {
        state
            .components
            .iter()
            .find(|c| c.name == name)
            .map_or_else(|| format!("<{name}>"), |c| c.addr.ip().to_string())
    };
    println!("  curl http://{}/api/products", addr("gateway"));
    if let Some(link) = &state.host_link {
        println!("  (host link: {link})");
    }
    println!();
    println!("Look inside:");
    println!("  sudo ip netns exec {} ss -tulpn", ns("gateway"));
    println!("  sudo ip netns exec {} ip addr", ns("product-1"));
    println!("  sudo ip netns exec {} bridge link show", ns("fabric"));
    println!("  sudo ip netns exec {} nft list ruleset", ns("router"));
    println!(
        "  sudo ip netns exec {} redis-cli -h {} info stats",
        ns("redis"),
        host("redis")
    );
    println!();
    println!("Operate it:");
    println!("  just status            just logs product-1       just scale product 3");
    println!("  just backup orders.sql just restore orders.sql   just bench-lab   just down");
    if let Some(p) = picture {
        println!();
        println!("Topology picture: {}", p.display());
    }
}

/// One row per component: name, namespace, address, pid, health, log file.
pub fn print_table(state: &LabState, stack: &mut Stack) {
    println!(
        "{:<10} {:<16} {:<22} {:>7}  {:<10} log",
        "component", "namespace", "listens on", "pid", "health"
    );
    for c in state.components.iter() {
        let enabled = state.enabled.contains(&c.name);
        let ns = state.namespace(&c.name).unwrap_or("?");
        let (pid, health) = if !enabled {
            ("-".to_string(), "spare slot (just scale)".to_string())
        } else {
            let pid = stack
                .pids()
                .get(&c.name)
                .map_or("-".to_string(), |(p, _)| p.to_string());
            let health = if stack.is_running(&c.name) {
                match stack.check(&c.name) {
                    Ok(Health::Ready) => "ready".to_string(),
                    Ok(h) => h.to_string().lines().next().unwrap_or("").to_string(),
                    Err(e) => e.to_string(),
                }
            } else {
                "DOWN".to_string()
            };
            (pid, health)
        };
        println!(
            "{:<10} {:<16} {:<22} {:>7}  {:<10} {}",
            c.name,
            ns,
            c.addr.to_string(),
            pid,
            health,
            if enabled {
                log_path(Path::new(""), &c.name).display().to_string()
            } else {
                String::new()
            }
        );
    }
}
