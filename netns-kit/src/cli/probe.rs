//! `netns-kit probe NAME [--listen NODE:PORT]… [PROBE]…`: TCP reachability inside an applied
//! topology, all probes at once, from the nodes' own namespaces.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netns_kit::error::Error;
use netns_kit::netns::Netns;
use netns_kit::probe::{self, TcpProbe};
use netns_kit::topology::live;

use super::{privilege, CliError, Outcome};

/// Arguments of `probe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo netns-kit probe lab gateway=172.21.0.10:8500
  sudo netns-kit probe lab --deadline 500ms gateway=172.22.0.10:6379 product-1=172.22.0.10:6379
  sudo netns-kit probe lab --listen order-1:9999 gateway=172.21.0.21:9999
  sudo netns-kit probe lab --listen order-1:9999 --listen redis:9999 &   # hold until killed
  sudo netns-kit probe lab --file probes.txt --json

A PROBE is FROM=ADDR:PORT: connect from node FROM's namespace to ADDR:PORT. Every probe
runs at once; each prints one line `FROM ADDR:PORT OUTCOME TIME`, in the order given, where
OUTCOME is reachable (the handshake completed), refused (a reset: nothing listens) or
timed-out (no answer within --deadline: dropped on the way). Without probes, `--listen`
opens its listeners, prints `listening on N port(s)` and holds them until killed.

Exits 0 when every probe ran (whatever its outcome), 1 when one could not run (no route,
no such address), 2 on bad input.")]
pub struct Args {
    /// The run's name (as given to `apply --name`; see `netns-kit list`).
    pub name: String,
    /// The probes, each FROM=ADDR:PORT.
    #[arg(value_name = "PROBE")]
    pub probes: Vec<String>,
    /// Read more probes from FILE (`-`: standard input), one FROM=ADDR:PORT (or FROM
    /// ADDR:PORT) per line; blank lines and lines starting with # are skipped.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Accept connections on PORT (all addresses) inside NODE's namespace while probing.
    #[arg(long = "listen", value_name = "NODE:PORT")]
    pub listen: Vec<String>,
    /// How long a connection attempt waits for an answer (`2s`, `500ms`, `1.5`).
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub deadline: String,
    /// Print a JSON array of {"from", "to", "outcome", "ms"} (an error: {"from", "to", "error"}).
    #[arg(long)]
    pub json: bool,
}

/// One probe asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Asked {
    from: String,
    to: SocketAddr,
}

/// Runs the probes (after opening the listeners); without probes, holds the listeners.
pub fn run(args: Args, state_dir: &Path) -> Outcome {
    super::check_run_name(&args.name)?;
    let deadline = parse_deadline(&args.deadline)?;
    let mut asked = args
        .probes
        .iter()
        .map(|p| parse_probe(p))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(file) = &args.file {
        asked.extend(read_probes(file)?);
    }
    let listen = args
        .listen
        .iter()
        .map(|l| parse_listen(l))
        .collect::<Result<Vec<_>, _>>()?;
    if asked.is_empty() && listen.is_empty() {
        return Err(CliError::BadInput(
            "nothing to do: give a probe (FROM=ADDR:PORT), --file or --listen".to_string(),
        ));
    }
    privilege::require("probe")?;

    // Every namespace once, before anything is opened: an unknown node is bad input.
    let mut spaces: BTreeMap<&str, Netns> = BTreeMap::new();
    for node in asked
        .iter()
        .map(|a| a.from.as_str())
        .chain(listen.iter().map(|(n, _)| n.as_str()))
    {
        if !spaces.contains_key(node) {
            let ns = open_node(state_dir, &args.name, node)?;
            spaces.insert(node, ns);
        }
    }

    let listeners = open_listeners(&spaces, &listen)?;
    if asked.is_empty() {
        println!("listening on {} port(s)", listeners.len());
        let _ = std::io::stdout().flush();
        // Held until the process is killed; the sockets close with it.
        loop {
            std::thread::park();
        }
    }

    let results = probe_all(&spaces, &asked, deadline);
    drop(listeners);
    print_results(&asked, &results, args.json)?;
    Ok(if results.iter().all(Result::is_ok) {
        0
    } else {
        1
    })
}

fn open_node(state_dir: &Path, name: &str, node: &str) -> Result<Netns, CliError> {
    if !netns_kit::topology::names::is_valid_name(node) {
        return Err(CliError::BadInput(format!(
            "node {node:?} is invalid: expected letters, digits, '-' or '_'"
        )));
    }
    live::exec_in_dir(state_dir, name, node).map_err(|e| match e {
        Error::NotFound { kind: "node", .. } => {
            CliError::BadInput(format!("topology {name:?} has no node {node:?}"))
        }
        other => super::not_found_is_bad_input(other, name),
    })
}

/// Binds every listener (each accepts and closes connections on its own thread).
fn open_listeners(
    spaces: &BTreeMap<&str, Netns>,
    listen: &[(String, u16)],
) -> Result<Vec<TcpListener>, CliError> {
    let mut out = Vec::new();
    for (node, port) in listen {
        let ns = spaces
            .get(node.as_str())
            .ok_or_else(|| CliError::Runtime(format!("node {node:?} was not opened")))?;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port);
        let l = probe::listen_tcp(ns, addr).map_err(|e| CliError::Runtime(e.to_string()))?;
        let accepting = l
            .try_clone()
            .map_err(|e| CliError::Runtime(format!("listener on {node}:{port}: {e}")))?;
        std::thread::spawn(move || {
            for conn in accepting.incoming() {
                drop(conn);
            }
        });
        out.push(l);
    }
    Ok(out)
}

/// Every probe on its own thread, all at once.
fn probe_all(
    spaces: &BTreeMap<&str, Netns>,
    asked: &[Asked],
    deadline: Duration,
) -> Vec<Result<(TcpProbe, Duration), String>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = asked
            .iter()
            .map(|a| {
                s.spawn(move || {
                    let ns = spaces
                        .get(a.from.as_str())
                        .ok_or_else(|| format!("node {:?} was not opened", a.from))?;
                    let started = Instant::now();
                    probe::tcp_connect(ns, a.to, deadline)
                        .map(|o| (o, started.elapsed()))
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the probe's thread panicked".to_string()))
            })
            .collect()
    })
}

fn outcome_word(o: TcpProbe) -> &'static str {
    match o {
        TcpProbe::Reachable => "reachable",
        TcpProbe::Refused => "refused",
        TcpProbe::TimedOut => "timed-out",
    }
}

fn print_results(
    asked: &[Asked],
    results: &[Result<(TcpProbe, Duration), String>],
    json: bool,
) -> Result<(), CliError> {
    if json {
        let doc: Vec<serde_json::Value> = asked
            .iter()
            .zip(results)
            .map(|(a, r)| match r {
                Ok((o, t)) => serde_json::json!({
                    "from": a.from,
                    "to": a.to.to_string(),
                    "outcome": outcome_word(*o),
                    "ms": (t.as_secs_f64() * 1e4).round() / 10.0,
                }),
                Err(e) => serde_json::json!({
                    "from": a.from,
                    "to": a.to.to_string(),
                    "error": e,
                }),
            })
            .collect();
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| CliError::Runtime(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for (a, r) in asked.iter().zip(results) {
        let line = match r {
            Ok((o, t)) => format!(
                "{} {} {} {:.1}ms",
                a.from,
                a.to,
                outcome_word(*o),
                t.as_secs_f64() * 1e3
            ),
            Err(e) => format!("{} {} error: {e}", a.from, a.to),
        };
        writeln!(out, "{line}").map_err(|e| CliError::Runtime(format!("stdout: {e}")))?;
    }
    Ok(())
}

/// `2s`, `500ms`, `1.5` (seconds): more than 0, at most an hour.
fn parse_deadline(s: &str) -> Result<Duration, CliError> {
    let bad = || {
        CliError::BadInput(format!(
            "--deadline {s:?} is invalid: expected a duration such as 2s, 500ms or 1.5 \
             (more than 0, at most 3600s)"
        ))
    };
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let secs = v * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `FROM=ADDR:PORT` (also `FROM ADDR:PORT`, as in a file).
fn parse_probe(s: &str) -> Result<Asked, CliError> {
    let bad = |why: &str| {
        CliError::BadInput(format!(
            "probe {s:?} is invalid: expected FROM=ADDR:PORT (e.g. gateway=172.21.0.10:8500); {why}"
        ))
    };
    let t = s.trim();
    let (from, to) = t
        .split_once('=')
        .or_else(|| t.split_once(char::is_whitespace))
        .ok_or_else(|| bad("no '='"))?;
    let from = from.trim();
    if !netns_kit::topology::names::is_valid_name(from) {
        return Err(bad("FROM must be a node name"));
    }
    let to: SocketAddr = to
        .trim()
        .parse()
        .map_err(|_| bad("ADDR:PORT must be an address and a port"))?;
    if to.port() == 0 {
        return Err(bad("port 0 cannot be dialled"));
    }
    Ok(Asked {
        from: from.to_string(),
        to,
    })
}

/// `NODE:PORT`.
fn parse_listen(s: &str) -> Result<(String, u16), CliError> {
    let bad = || {
        CliError::BadInput(format!(
            "--listen {s:?} is invalid: expected NODE:PORT with PORT in 1..=65535 (e.g. order-1:9999)"
        ))
    };
    let (node, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 || !netns_kit::topology::names::is_valid_name(node) {
        return Err(bad());
    }
    Ok((node.to_string(), port))
}

fn read_probes(file: &Path) -> Result<Vec<Asked>, CliError> {
    let read = |e: std::io::Error| {
        CliError::BadInput(format!("cannot read probes from {}: {e}", file.display()))
    };
    let lines: Vec<String> = if file == Path::new("-") {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .map_err(read)?
    } else {
        std::fs::read_to_string(file)
            .map_err(read)?
            .lines()
            .map(str::to_string)
            .collect()
    };
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        out.push(parse_probe(l).map_err(|e| {
            CliError::BadInput(format!("{}:{}: {}", file.display(), i + 1, e.message()))
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_a_node_and_a_socket_address() {
        let p = parse_probe("gateway=172.21.0.10:8500").map_err(|e| e.message().to_string());
        assert_eq!(
            p,
            Ok(Asked {
                from: "gateway".into(),
                to: "172.21.0.10:8500"
                    .parse()
                    .unwrap_or_else(|_| unreachable!()),
            })
        );
        assert!(parse_probe("gateway 172.21.0.10:8500").is_ok());
        for bad in [
            "gateway",
            "gateway=172.21.0.10",
            "a b=1.2.3.4:5",
            "x=1.2.3.4:0",
        ] {
            let e = parse_probe(bad).err().map(|e| e.message().to_string());
            assert!(
                e.as_deref().is_some_and(|m| m.contains(bad)),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn deadlines_take_seconds_or_milliseconds() {
        let d = |s| parse_deadline(s).ok();
        assert_eq!(d("2s"), Some(Duration::from_secs(2)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("1.5"), Some(Duration::from_millis(1500)));
        for bad in ["0", "-1s", "soon", "1h", "4000"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_listener_is_a_node_and_a_port() {
        assert_eq!(
            parse_listen("order-1:9999").ok(),
            Some(("order-1".to_string(), 9999))
        );
        for bad in ["order-1", "order-1:0", "order-1:70000", ":80", "a b:80"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}
