//! Shared by the tests that drive the `netns-kit` CLI as a user would (and kill it): a
//! small topology file, the CLI with a private state directory, the crash-point hook, and
//! a leak check that looks at everything a named run can leave behind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use netns_kit::netns::Netns;
use netns_kit::runid::RunId;

/// A two-network topology (fabric, router, two nodes, a firewall) on 10.<octet>.0.0/16;
/// with `host`, a lab-mode `[host]` section too (a veth and routes in the root namespace).
pub fn topology(octet: u8, host: bool) -> String {
    let mut t = format!(
        r#"
name = "crash-test"

[[networks]]
name = "front"
subnet = "10.{octet}.1.0/24"

[[networks]]
name = "back"
subnet = "10.{octet}.2.0/24"

[router]
networks = ["front", "back"]

[[nodes]]
name = "web"
interfaces = [{{ network = "front", address = "10.{octet}.1.10" }}]

[[nodes]]
name = "api"
interfaces = [{{ network = "back", address = "10.{octet}.2.10" }}]

[[policy]]
from = "front"
to = "api"
proto = "tcp"
ports = [8080]
"#
    );
    if host {
        t.push_str(&format!(
            r#"
[host]
subnet = "10.{octet}.255.0/30"
allow = [{{ to = "web", proto = "tcp", ports = [80] }}]
"#
        ));
    }
    t
}

/// The CLI with a private state directory and a topology file, both removed on drop.
pub struct Cli {
    pub state_dir: PathBuf,
    pub file: PathBuf,
    /// The /16 the topology lives in (10.<octet>.0.0/16): no other test uses it.
    pub octet: u8,
}

impl Cli {
    /// A fresh state directory and `topology(octet, host)` written to a file.
    pub fn new(tag: &str, octet: u8, host: bool) -> Cli {
        let id = RunId::new().unwrap();
        let dir = std::env::temp_dir().join(format!("netns-kit-{tag}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("topology.toml");
        std::fs::write(&file, topology(octet, host)).unwrap();
        Cli {
            state_dir: dir.join("state"),
            file,
            octet,
        }
    }

    /// `netns-kit --state-dir DIR ARGS…` with extra environment, not yet started.
    pub fn command(&self, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_netns-kit"));
        c.arg("--state-dir").arg(&self.state_dir).args(args);
        c.env_remove("NETNS_KIT_FAULT_AFTER_STEP")
            .env_remove("NETNS_KIT_FAULT_ACTION");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Run to completion.
    pub fn run(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        self.command(args, env).output().expect("run netns-kit")
    }

    /// `apply FILE --name NAME`.
    pub fn apply(&self, name: &str, env: &[(&str, String)]) -> Output {
        self.run(&["apply", self.file.to_str().unwrap(), "--name", name], env)
    }

    /// `apply FILE --name NAME`, started in the background (stderr piped).
    pub fn spawn_apply(&self, name: &str, env: &[(&str, String)]) -> Child {
        self.command(&["apply", self.file.to_str().unwrap(), "--name", name], env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netns-kit apply")
    }

    /// Apply `name` and require success.
    pub fn apply_ok(&self, name: &str) {
        let o = self.apply(name, &[]);
        assert_eq!(o.status.code(), Some(0), "apply {name}: {}", text(&o));
    }

    /// Everything run `name` left behind: /run/netns entries (mounted or not, temporaries
    /// included), its host link and any route into this test's /16 in the root namespace,
    /// and its files in the state directory. Empty when nothing leaked.
    pub fn leftovers(&self, name: &str) -> Vec<String> {
        let mut found = Vec::new();
        let prefix = format!("{name}-");
        for n in netns_kit::netns::list_named().unwrap() {
            let temp = n.starts_with(netns_kit::netns::MOUNT_TEMP_PREFIX)
                && n.contains(&format!("-{prefix}"));
            if n.starts_with(&prefix) || temp {
                found.push(format!("/run/netns/{n}"));
            }
        }
        let root = Netns::current_process().unwrap();
        let mut nl = root.netlink().unwrap();
        let host_ifname = netns_kit::topology::names::host_ifname(name);
        if netns_kit::link::by_name(&mut nl, &host_ifname)
            .unwrap()
            .is_some()
        {
            found.push(format!("host link {host_ifname}"));
        }
        for r in netns_kit::route::list(&mut nl).unwrap() {
            if let Some((std::net::IpAddr::V4(d), p)) = r.dest {
                if d.octets()[..2] == [10, self.octet] {
                    found.push(format!("host route {d}/{p}"));
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(&self.state_dir) {
            for e in rd.filter_map(|e| e.ok()) {
                let f = e.file_name().to_string_lossy().into_owned();
                // <name>.json, <name>.lock, .<name>.json.tmp, .<name>.lock-<pid>-<n>
                if f.trim_start_matches('.').starts_with(&format!("{name}.")) {
                    found.push(format!("state file {f}"));
                }
            }
        }
        found
    }

    /// Names under /run/netns of run `name`.
    pub fn namespaces_of(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}-");
        netns_kit::netns::list_named()
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// `list --json`, as (name, phase) pairs.
    pub fn phases(&self) -> Vec<(String, String)> {
        let o = self.run(&["list", "--json"], &[]);
        assert_eq!(o.status.code(), Some(0), "list: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let phase = &r["phase"];
                let p = match phase["phase"].as_str() {
                    Some("dead") => "dead".to_string(),
                    Some(other) => other.to_string(),
                    None => phase.to_string(),
                };
                (r["name"].as_str().unwrap().to_string(), p)
            })
            .collect()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A namespace made with `ip netns add` (not netns-kit), with a bridge in it; deleted on
/// drop. gc must never touch it, however much its name looks like a run's.
pub struct Foreign {
    pub name: String,
}

impl Foreign {
    pub fn new(name: &str) -> Foreign {
        sh(&["ip", "netns", "add", name]);
        let f = Foreign {
            name: name.to_string(),
        };
        sh(&[
            "ip", "-n", name, "link", "add", "br-front", "type", "bridge",
        ]);
        f
    }

    /// Whether it is still there, bridge included.
    pub fn intact(&self) -> bool {
        Command::new("ip")
            .args(["-n", &self.name, "link", "show", "br-front"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Run a command that must succeed.
pub fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o));
}

/// stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether the process died of SIGKILL.
pub fn killed(o: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal() == Some(libc::SIGKILL)
}

/// A unique short run name: `<tag><6 hex>` (the host link `nk-<name>-<n>` still fits).
pub fn unique(tag: &str) -> String {
    format!("{tag}{}", &RunId::new().unwrap().as_str()[..6])
}

/// The path of `p` as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
