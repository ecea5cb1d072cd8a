//! A probe matrix: every node of a small three-network topology (one router enforcing an
//! allow-list) connects to every target at once; the answers print as a table.
//!
//! Asserts the whole matrix: allowed paths are Reachable, an allowed port nobody listens on
//! is Refused, and whatever the policy does not allow is TimedOut (dropped by the router).
//!
//! Run as root: `cargo run -p netns-kit --example probe_matrix`.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use netns_kit::probe::{self, TcpProbe};
use netns_kit::{ApplyOptions, LiveTopology, Topology};

const TOPOLOGY: &str = r#"
name = "matrix"

[[networks]]
name = "front"
subnet = "10.60.0.0/24"

[[networks]]
name = "app"
subnet = "10.61.0.0/24"

[[networks]]
name = "data"
subnet = "10.62.0.0/24"

[router]
networks = ["front", "app", "data"]

[[nodes]]
name = "web"
interfaces = [{ network = "front", address = "10.60.0.10" }]

[[nodes]]
name = "api"
interfaces = [{ network = "app", address = "10.61.0.10" }]

[[nodes]]
name = "db"
interfaces = [{ network = "data", address = "10.62.0.10" }]

[[policy]]
from = "front"
to = "api"
proto = "tcp"
ports = [8080, 8081]

[[policy]]
from = "api"
to = "db"
proto = "tcp"
ports = [5432]
"#;

fn main() -> Result<(), Box<dyn Error>> {
    let topology: Topology = TOPOLOGY.parse()?;
    let lab = LiveTopology::apply_topology(&topology, ApplyOptions::default())?;

    let api: SocketAddr = "10.61.0.10:8080".parse()?;
    let db: SocketAddr = "10.62.0.10:5432".parse()?;
    let _api = probe::listen_tcp(lab.netns("api").ok_or("no api node")?, api)?;
    let _db = probe::listen_tcp(lab.netns("db").ok_or("no db node")?, db)?;
    let targets = [
        ("api:8080".to_string(), api),
        ("api:8081".to_string(), "10.61.0.10:8081".parse()?), // allowed, nobody listens
        ("db:5432".to_string(), db),
    ];
    let sources = ["web", "api", "db"];
    // All cells at once: the whole matrix takes one deadline (long enough for a SYN the
    // kernel retries after 1 s, should a freshly created link still be activating).
    let cells = lab.reachability(&sources, &targets, Duration::from_millis(1500))?;

    print!("{:<6}", "from");
    for (label, _) in &targets {
        print!("{label:<12}");
    }
    println!();
    for from in sources {
        print!("{from:<6}");
        for (label, _) in &targets {
            let cell = cells
                .iter()
                .find(|c| c.from == from && &c.to == label)
                .ok_or("a cell is missing")?;
            print!("{:<12}", format!("{:?}", cell.outcome));
        }
        println!();
    }

    use TcpProbe::{Reachable as R, Refused as X, TimedOut as T};
    let expected = [
        ("web", [R, X, T]), // front may reach the api, not the database
        ("api", [R, X, R]), // the api may reach the database
        ("db", [T, T, R]),  // the database starts nothing
    ];
    for (from, row) in expected {
        for ((label, _), want) in targets.iter().zip(row) {
            let got = cells.iter().find(|c| c.from == from && &c.to == label);
            assert_eq!(got.map(|c| c.outcome), Some(want), "{from} -> {label}");
        }
    }
    lab.destroy()?;
    Ok(())
}
