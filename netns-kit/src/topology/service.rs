//! Services: which program runs on which node, with which arguments, ports, readiness probe
//! and dependencies — validated against the nodes, with every `${…}` placeholder resolved to a
//! declared value (runtime variables left for the runner, see [`Instance::command_with`]).
//!
//! Placeholders (inside any `command` element or `env` value):
//!
//! | placeholder | value |
//! | --- | --- |
//! | `${node.name}` / `${node.address}` | the instance's node and its (first interface's) address |
//! | `${self.name}` | the service's name |
//! | `${self.port}` / `${self.ports.<p>}` | the service's main / named port |
//! | `${self.listen}` | `<node address>:<main port>` |
//! | `${self.data.<key>}` | a value of the service's `data` |
//! | `${services.<s>.address}` | `<address>:<port>` of service `s` (one instance only) |
//! | `${services.<s>.host}` | the address of service `s` (one instance only) |
//! | `${services.<s>.addresses}` | every instance of `s`, `address:port`, comma-separated |
//! | `${services.<s>.port}` / `.ports.<p>` / `.data.<key>` | as for `self` |
//! | `${<var>}` | a runtime variable named in the top-level `vars`, supplied by the runner |

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::error::TopologyError;
use super::names;
use super::spec::{ReadySpec, ServiceSpec};
use super::Node;

/// A validated service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// Name.
    pub name: String,
    /// The instances, one per node, in the order declared.
    pub instances: Vec<Instance>,
    /// The main port, if any.
    pub port: Option<u16>,
    /// Named extra ports.
    pub ports: BTreeMap<String, u16>,
    /// The readiness probe.
    pub ready: Ready,
    /// Services that must be ready first.
    pub depends_on: Vec<String>,
    /// Named values declared once (database names, …).
    pub data: BTreeMap<String, String>,
    /// Start stage: 0 without dependencies, else 1 + the highest stage of its dependencies.
    pub stage: usize,
    /// The command as written (placeholders unresolved), kept for [`super::Topology::to_spec`].
    pub command_template: Vec<String>,
    /// The environment as written.
    pub env_template: BTreeMap<String, String>,
    /// True when declared with `node = …` rather than `nodes = [...]`.
    pub single: bool,
}

/// One running copy of a service, on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// The node it runs on (also the instance's name).
    pub node: String,
    /// The node's address the service listens on.
    pub address: IpAddr,
    /// Program and arguments, placeholders resolved except runtime `${var}`s.
    pub command: Vec<String>,
    /// Environment, resolved like `command`.
    pub env: BTreeMap<String, String>,
}

/// How a runner knows an instance is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "probe", rename_all = "lowercase")]
pub enum Ready {
    /// No probe: ready once started.
    None,
    /// A TCP connection to the port is accepted.
    Tcp {
        /// The port probed.
        port: u16,
    },
    /// `GET path` on the port answers 200.
    Http {
        /// The port probed.
        port: u16,
        /// The path, e.g. "/readyz".
        path: String,
    },
}

impl Service {
    /// Where instance `node` listens on the main port.
    pub fn listen(&self, node: &str) -> Option<SocketAddr> {
        let i = self.instances.iter().find(|i| i.node == node)?;
        Some(SocketAddr::new(i.address, self.port?))
    }
}

impl Instance {
    /// The command with runtime variables replaced by `vars`; a variable it uses that `vars`
    /// lacks is a [`TopologyError::MissingVar`] naming the argument.
    pub fn command_with(
        &self,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, TopologyError> {
        self.command
            .iter()
            .enumerate()
            .map(|(k, a)| substitute(&format!("{}.command[{k}]", self.node), a, vars))
            .collect()
    }

    /// The environment with runtime variables replaced by `vars`.
    pub fn env_with(
        &self,
        vars: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, TopologyError> {
        self.env
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    substitute(&format!("{}.env.{k}", self.node), v, vars)?,
                ))
            })
            .collect()
    }
}

/// Replaces every `${name}` in `text` with `vars[name]`.
pub fn substitute(
    field: &str,
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, TopologyError> {
    expand(text, |name| {
        vars.get(name)
            .cloned()
            .ok_or_else(|| TopologyError::MissingVar {
                field: field.to_string(),
                value: name.to_string(),
            })
    })
}

/// Calls `f` on the text of every `${…}` in `text` and splices in its result. A `${` without
/// its `}` is an error from `f` with the rest of the text.
fn expand(
    text: &str,
    mut f: impl FnMut(&str) -> Result<String, TopologyError>,
) -> Result<String, TopologyError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&f(&after[..end])?);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&f(after)?);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// What validation knows of a service before its placeholders are resolved.
struct Declared<'a> {
    spec: &'a ServiceSpec,
    nodes: Vec<(String, IpAddr)>,
    port: Option<u16>,
    ports: BTreeMap<String, u16>,
}

fn port_of(field: &str, p: i64) -> Result<u16, TopologyError> {
    match u16::try_from(p) {
        Ok(n) if n != 0 => Ok(n),
        _ => Err(TopologyError::BadPort {
            field: field.to_string(),
            value: p.to_string(),
        }),
    }
}

/// Validates every service against the nodes and resolves its placeholders.
pub fn validate_services(
    specs: &[ServiceSpec],
    nodes: &[Node],
    vars: &[String],
) -> Result<Vec<Service>, TopologyError> {
    for (k, v) in vars.iter().enumerate() {
        if !is_var_name(v) {
            return Err(TopologyError::InvalidName {
                field: format!("vars[{k}]"),
                value: v.clone(),
                max: names::NAME_MAX,
            });
        }
    }
    let node_names = || {
        nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut declared = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let f = |x: &str| format!("services[{i}].{x}");
        if !names::is_valid_name(&s.name) {
            return Err(TopologyError::InvalidName {
                field: f("name"),
                value: s.name.clone(),
                max: names::NAME_MAX,
            });
        }
        if let Some(j) = seen.insert(&s.name, i) {
            return Err(TopologyError::DuplicateName {
                field: f("name"),
                value: s.name.clone(),
                first: format!("services[{j}].name"),
            });
        }
        let listed: Vec<(String, &String)> = match (&s.node, s.nodes.is_empty()) {
            (Some(n), true) => vec![(f("node"), n)],
            (None, false) => s
                .nodes
                .iter()
                .enumerate()
                .map(|(k, n)| (f(&format!("nodes[{k}]")), n))
                .collect(),
            _ => {
                return Err(TopologyError::Conflict {
                    field: format!("services[{i}]"),
                    message: "expected exactly one of node = \"…\" or nodes = [\"…\", …]"
                        .to_string(),
                })
            }
        };
        let mut on = Vec::new();
        let mut twice: BTreeMap<&str, String> = BTreeMap::new();
        for (field, n) in listed {
            let Some(node) = nodes.iter().find(|x| &x.name == n) else {
                return Err(TopologyError::UnknownNode {
                    field,
                    value: n.clone(),
                    known: node_names(),
                });
            };
            if let Some(first) = twice.insert(n, field.clone()) {
                return Err(TopologyError::DuplicateName {
                    field,
                    value: n.clone(),
                    first,
                });
            }
            let Some(itf) = node.interfaces.first() else {
                return Err(TopologyError::Conflict {
                    field,
                    message: format!("node {n:?} has no interface, so no address to listen on"),
                });
            };
            on.push((n.clone(), itf.address));
        }
        if s.command.is_empty() || s.command[0].is_empty() {
            return Err(TopologyError::Conflict {
                field: f("command"),
                message: "expected a program and its arguments, e.g. [\"redis-server\", \"--port\", \"${self.port}\"]".to_string(),
            });
        }
        let port = s.port.map(|p| port_of(&f("port"), p)).transpose()?;
        let mut ports = BTreeMap::new();
        for (name, p) in &s.ports {
            let field = f(&format!("ports.{name}"));
            if !is_var_name(name) {
                return Err(TopologyError::InvalidName {
                    field,
                    value: name.clone(),
                    max: names::NAME_MAX,
                });
            }
            ports.insert(name.clone(), port_of(&field, *p)?);
        }
        declared.push(Declared {
            spec: s,
            nodes: on,
            port,
            ports,
        });
    }

    check_listeners(&declared)?;
    let stages = stages(specs)?;

    let mut out = Vec::new();
    for (i, d) in declared.iter().enumerate() {
        let s = d.spec;
        let ready = ready_of(i, s.ready.as_ref(), d)?;
        let mut instances = Vec::new();
        for (node, address) in &d.nodes {
            let here = Here {
                i,
                node,
                address: *address,
                all: &declared,
                vars,
            };
            let command = s
                .command
                .iter()
                .enumerate()
                .map(|(k, a)| here.resolve(&format!("services[{i}].command[{k}]"), a))
                .collect::<Result<Vec<_>, _>>()?;
            let mut env = BTreeMap::new();
            for (key, v) in &s.env {
                let field = format!("services[{i}].env.{key}");
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    return Err(TopologyError::InvalidName {
                        field,
                        value: key.clone(),
                        max: names::NAME_MAX,
                    });
                }
                env.insert(key.clone(), here.resolve(&field, v)?);
            }
            instances.push(Instance {
                node: node.clone(),
                address: *address,
                command,
                env,
            });
        }
        out.push(Service {
            name: s.name.clone(),
            instances,
            port: d.port,
            ports: d.ports.clone(),
            ready,
            depends_on: s.depends_on.clone(),
            data: s.data.clone(),
            stage: stages[i],
            command_template: s.command.clone(),
            env_template: s.env.clone(),
            single: s.node.is_some(),
        });
    }
    Ok(out)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: runtime variable and port names.
fn is_var_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= names::NAME_MAX
}

/// No two listeners (main or named port) on one address:port.
fn check_listeners(declared: &[Declared<'_>]) -> Result<(), TopologyError> {
    let mut taken: BTreeMap<SocketAddr, String> = BTreeMap::new();
    for (i, d) in declared.iter().enumerate() {
        let mut mine: Vec<(String, u16)> = Vec::new();
        if let Some(p) = d.port {
            mine.push((format!("services[{i}].port"), p));
        }
        for (name, p) in &d.ports {
            mine.push((format!("services[{i}].ports.{name}"), *p));
        }
        for (node, address) in &d.nodes {
            for (field, p) in &mine {
                let at = SocketAddr::new(*address, *p);
                let who = format!("{field} (service {:?} on {node})", d.spec.name);
                if let Some(first) = taken.get(&at) {
                    return Err(TopologyError::DuplicateListen {
                        field: field.clone(),
                        value: at.to_string(),
                        first: first.clone(),
                    });
                }
                taken.insert(at, who);
            }
        }
    }
    Ok(())
}

/// The start stage of every service (1 + the highest stage of its dependencies); unknown
/// dependencies and cycles are errors naming the `depends_on` entry.
fn stages(specs: &[ServiceSpec]) -> Result<Vec<usize>, TopologyError> {
    let index: BTreeMap<&str, usize> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let known = || {
        specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, s) in specs.iter().enumerate() {
        let mut twice = BTreeSet::new();
        for (k, d) in s.depends_on.iter().enumerate() {
            let field = format!("services[{i}].depends_on[{k}]");
            if !index.contains_key(d.as_str()) {
                return Err(TopologyError::UnknownService {
                    field,
                    value: d.clone(),
                    known: known(),
                });
            }
            if !twice.insert(d) {
                return Err(TopologyError::Conflict {
                    field,
                    message: format!("{d:?} is listed twice"),
                });
            }
        }
    }
    // Depth-first, in file order: a service on the current path reached again closes a cycle.
    let mut stage: Vec<Option<usize>> = vec![None; specs.len()];
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        specs: &[ServiceSpec],
        index: &BTreeMap<&str, usize>,
        stage: &mut Vec<Option<usize>>,
        path: &mut Vec<usize>,
    ) -> Result<usize, TopologyError> {
        if let Some(s) = stage[i] {
            return Ok(s);
        }
        path.push(i);
        let mut mine = 0;
        for (k, d) in specs[i].depends_on.iter().enumerate() {
            // Unknown names were rejected above.
            let Some(&j) = index.get(d.as_str()) else {
                continue;
            };
            if let Some(at) = path.iter().position(|&p| p == j) {
                let mut names: Vec<&str> =
                    path[at..].iter().map(|&p| specs[p].name.as_str()).collect();
                names.push(d);
                return Err(TopologyError::DependencyCycle {
                    field: format!("services[{i}].depends_on[{k}]"),
                    cycle: names.join(" -> "),
                });
            }
            mine = mine.max(visit(j, specs, index, stage, path)? + 1);
        }
        path.pop();
        stage[i] = Some(mine);
        Ok(mine)
    }
    for i in 0..specs.len() {
        visit(i, specs, &index, &mut stage, &mut path)?;
    }
    Ok(stage.into_iter().map(|s| s.unwrap_or(0)).collect())
}

fn ready_of(i: usize, r: Option<&ReadySpec>, d: &Declared<'_>) -> Result<Ready, TopologyError> {
    let Some(r) = r else {
        return Ok(Ready::None);
    };
    let f = |x: &str| format!("services[{i}].ready.{x}");
    let port = match &r.port {
        Some(name) => d
            .ports
            .get(name)
            .copied()
            .ok_or_else(|| TopologyError::Conflict {
                field: f("port"),
                message: format!(
                    "{name:?} is not one of the service's ports: expected one of [{}]",
                    d.ports.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?,
        None => d.port.ok_or_else(|| TopologyError::Conflict {
            field: f("probe"),
            message: "a probe needs the service's `port` (or ready.port naming one of `ports`)"
                .to_string(),
        })?,
    };
    match (r.probe.as_str(), &r.path) {
        ("tcp", None) => Ok(Ready::Tcp { port }),
        ("http", Some(path)) if path.starts_with('/') => Ok(Ready::Http {
            port,
            path: path.clone(),
        }),
        ("http", _) => Err(TopologyError::Conflict {
            field: f("path"),
            message: format!(
                "probe \"http\" needs a path starting with '/', found {:?}",
                r.path.as_deref().unwrap_or("")
            ),
        }),
        ("tcp", Some(_)) => Err(TopologyError::Conflict {
            field: f("path"),
            message: "probe \"tcp\" takes no path".to_string(),
        }),
        (other, _) => Err(TopologyError::Conflict {
            field: f("probe"),
            message: format!("unknown probe {other:?}: expected \"tcp\" or \"http\""),
        }),
    }
}

/// Placeholder resolution for one instance.
struct Here<'a> {
    i: usize,
    node: &'a str,
    address: IpAddr,
    all: &'a [Declared<'a>],
    vars: &'a [String],
}

const EXPECTED: &str = "expected node.name, node.address, self.name, self.port, self.listen, \
self.ports.<name>, self.data.<key>, services.<service>.{address,host,addresses,port,ports.<name>,data.<key>} \
or a name listed in `vars`";

impl Here<'_> {
    fn resolve(&self, field: &str, text: &str) -> Result<String, TopologyError> {
        expand(text, |p| self.one(field, p))
    }

    fn one(&self, field: &str, p: &str) -> Result<String, TopologyError> {
        let unknown = |expected: String| TopologyError::UnknownPlaceholder {
            field: field.to_string(),
            value: p.to_string(),
            expected,
        };
        if self.vars.iter().any(|v| v == p) {
            return Ok(format!("${{{p}}}"));
        }
        let parts: Vec<&str> = p.split('.').collect();
        match parts.as_slice() {
            ["node", "name"] => Ok(self.node.to_string()),
            ["node", "address"] => Ok(self.address.to_string()),
            ["self", "listen"] => match self.all[self.i].port {
                Some(port) => Ok(SocketAddr::new(self.address, port).to_string()),
                None => Err(unknown("this service declares no `port`".to_string())),
            },
            ["self", rest @ ..] => self.of(self.i, rest).map_err(unknown),
            ["services", name, rest @ ..] => {
                let Some(j) = self.all.iter().position(|d| d.spec.name == *name) else {
                    let known: Vec<&str> = self.all.iter().map(|d| d.spec.name.as_str()).collect();
                    return Err(unknown(format!(
                        "no service {name:?}: expected one of [{}]",
                        known.join(", ")
                    )));
                };
                self.of(j, rest).map_err(unknown)
            }
            _ => Err(unknown(EXPECTED.to_string())),
        }
    }

    /// A property of service `j` (`rest` after `self.` / `services.<name>.`).
    fn of(&self, j: usize, rest: &[&str]) -> Result<String, String> {
        let d = &self.all[j];
        let name = &d.spec.name;
        let one_instance = || -> Result<IpAddr, String> {
            match d.nodes.as_slice() {
                [(_, a)] => Ok(*a),
                many => Err(format!(
                    "service {name:?} has {} instances: expected one (use .addresses for all)",
                    many.len()
                )),
            }
        };
        let port = || {
            d.port
                .ok_or_else(|| format!("service {name:?} declares no `port`"))
        };
        match rest {
            ["name"] => Ok(name.clone()),
            ["port"] => port().map(|p| p.to_string()),
            ["host"] => one_instance().map(|a| a.to_string()),
            ["address"] => Ok(SocketAddr::new(one_instance()?, port()?).to_string()),
            ["addresses"] => {
                let p = port()?;
                Ok(d.nodes
                    .iter()
                    .map(|(_, a)| SocketAddr::new(*a, p).to_string())
                    .collect::<Vec<_>>()
                    .join(","))
            }
            ["ports", p] => d.ports.get(*p).map(|x| x.to_string()).ok_or_else(|| {
                format!(
                    "service {name:?} has no port {p:?}: expected one of [{}]",
                    d.ports.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }),
            ["data", k] => d.spec.data.get(*k).cloned().ok_or_else(|| {
                format!(
                    "service {name:?} has no data {k:?}: expected one of [{}]",
                    d.spec.data.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }),
            _ => Err(EXPECTED.to_string()),
        }
    }
}
