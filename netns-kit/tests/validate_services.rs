//! Services and placement are validated as strictly as the network: every mistake is its own
//! typed error naming the field path and the value, before anything is started.

use netns_kit::topology::{Ready, Topology, TopologyError};

mod validate_support;
use validate_support::err;

/// A small valid topology with services and a placement; each test breaks one thing in it.
const BASE: &str = r#"
name = "t"
vars = ["token"]

[[networks]]
name = "front"
subnet = "10.1.0.0/24"

[[networks]]
name = "back"
subnet = "10.2.0.0/24"

[router]
networks = ["front", "back"]

[[nodes]]
name = "web"
interfaces = [{ network = "front", address = "10.1.0.10" }]

[[nodes]]
name = "api-1"
interfaces = [{ network = "back", address = "10.2.0.11" }]

[[nodes]]
name = "api-2"
interfaces = [{ network = "back", address = "10.2.0.12" }]

[[nodes]]
name = "db"
interfaces = [{ network = "back", address = "10.2.0.20" }]

[[services]]
name = "db"
node = "db"
command = ["postgres", "-c", "listen_addresses=${node.address}", "-c", "port=${self.port}"]
port = 5432
ready = { probe = "tcp" }

[[services]]
name = "api"
nodes = ["api-1", "api-2"]
command = ["api", "--listen", "${self.listen}", "--db", "postgres://${services.db.address}/${self.data.database}", "--token", "${token}"]
env = { ID = "${node.name}" }
port = 8080
ports = { admin = 9090 }
ready = { probe = "http", path = "/readyz" }
depends_on = ["db"]
data = { database = "apidb" }

[[services]]
name = "web"
node = "web"
command = ["web", "--upstreams", "${services.api.addresses}"]
port = 80
depends_on = ["api"]

[placement]
one = ["router", "web", "db"]
two = ["api-1"]
three = ["api-2"]

[underlay]
dev = "eth0"
group = "239.2.0.0"
"#;

/// [`BASE`] with the first `from` replaced by `to`.
fn replaced(from: &str, to: &str) -> String {
    validate_support::replaced(BASE, from, to)
}

#[test]
fn the_base_file_resolves_every_placeholder() {
    let t = Topology::from_str(BASE).unwrap();
    let api = t.service("api").unwrap();
    assert_eq!(api.instances.len(), 2);
    assert_eq!(
        api.instances[1].command,
        [
            "api",
            "--listen",
            "10.2.0.12:8080",
            "--db",
            "postgres://10.2.0.20:5432/apidb",
            "--token",
            "${token}"
        ]
    );
    assert_eq!(api.instances[0].env["ID"], "api-1");
    assert_eq!(
        api.ready,
        Ready::Http {
            port: 8080,
            path: "/readyz".into()
        }
    );
    let web = t.service("web").unwrap();
    assert_eq!(
        web.instances[0].command,
        ["web", "--upstreams", "10.2.0.11:8080,10.2.0.12:8080"]
    );
    let order: Vec<(&str, usize)> = t
        .start_order()
        .iter()
        .map(|s| (s.name.as_str(), s.stage))
        .collect();
    assert_eq!(order, [("db", 0), ("api", 1), ("web", 2)]);
}

#[test]
fn runtime_variables_are_filled_by_the_runner_or_named_when_missing() {
    let t = Topology::from_str(BASE).unwrap();
    let api = &t.service("api").unwrap().instances[0];
    let vars = [("token".to_string(), "s3cret".to_string())].into();
    assert_eq!(api.command_with(&vars).unwrap()[6], "s3cret");
    let e = api.command_with(&Default::default()).unwrap_err();
    assert!(matches!(e, TopologyError::MissingVar { .. }), "{e:?}");
    assert_eq!(e.field(), "api-1.command[6]");
    assert!(e.to_string().contains("${token}"), "{e}");
}

#[test]
fn an_unknown_dependency_names_the_entry_and_the_known_services() {
    let e = err(&replaced("depends_on = [\"db\"]", "depends_on = [\"dbb\"]"));
    assert!(matches!(e, TopologyError::UnknownService { .. }), "{e:?}");
    assert_eq!(e.field(), "services[1].depends_on[0]");
    assert_eq!(
        e.to_string(),
        "services[1].depends_on[0]: unknown service \"dbb\": expected one of [db, api, web]"
    );
}

#[test]
fn a_dependency_cycle_is_named_in_full() {
    let text = replaced(
        "port = 5432\nready",
        "port = 5432\ndepends_on = [\"web\"]\nready",
    );
    let e = err(&text);
    let TopologyError::DependencyCycle { cycle, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(cycle, "db -> web -> api -> db", "{e}");
    assert_eq!(
        e.field(),
        "services[1].depends_on[0]",
        "api's edge closes it"
    );
}

#[test]
fn a_service_depending_on_itself_is_a_cycle() {
    let e = err(&replaced("depends_on = [\"db\"]", "depends_on = [\"api\"]"));
    assert!(matches!(e, TopologyError::DependencyCycle { .. }), "{e:?}");
    assert!(e.to_string().contains("api -> api"), "{e}");
}

#[test]
fn an_unknown_node_of_a_service_names_the_entry() {
    let e = err(&replaced(
        "nodes = [\"api-1\", \"api-2\"]",
        "nodes = [\"api-1\", \"api-3\"]",
    ));
    assert!(matches!(e, TopologyError::UnknownNode { .. }), "{e:?}");
    assert_eq!(e.field(), "services[1].nodes[1]");
    assert!(e.to_string().contains("\"api-3\""), "{e}");
}

#[test]
fn node_and_nodes_are_exclusive() {
    let e = err(&replaced(
        "node = \"web\"",
        "node = \"web\"\nnodes = [\"web\"]",
    ));
    assert!(matches!(e, TopologyError::Conflict { .. }), "{e:?}");
    assert_eq!(e.field(), "services[2]");
}

#[test]
fn unknown_placeholders_name_the_argument_and_what_exists() {
    for (from, to, field, needle) in [
        (
            "${services.db.address}",
            "${services.dbb.address}",
            "services[1].command[4]",
            "no service \"dbb\"",
        ),
        (
            "${self.data.database}",
            "${self.data.db}",
            "services[1].command[4]",
            "[database]",
        ),
        (
            "--upstreams\", \"${services.api.addresses}",
            "--upstreams\", \"${services.api.address}",
            "services[2].command[2]",
            "2 instances",
        ),
        (
            "\"${token}\"",
            "\"${tokn}\"",
            "services[1].command[6]",
            "listed in `vars`",
        ),
        (
            "ID = \"${node.name}\"",
            "ID = \"${node.nmae}\"",
            "services[1].env.ID",
            "expected node.name",
        ),
    ] {
        let e = err(&replaced(from, to));
        assert!(
            matches!(e, TopologyError::UnknownPlaceholder { .. }),
            "{to}: {e:?}"
        );
        assert_eq!(e.field(), field, "{to}");
        assert!(e.to_string().contains(needle), "{to}: {e}");
    }
}

#[test]
fn two_services_on_one_address_and_port_are_rejected() {
    // A second service on node db, on db's port.
    let text = format!(
        "{BASE}\n[[services]]\nname = \"db2\"\nnode = \"db\"\ncommand = [\"x\"]\nport = 5432\n"
    );
    // [[services]] after [underlay] appends to the services array.
    let e = err(&text);
    assert!(matches!(e, TopologyError::DuplicateListen { .. }), "{e:?}");
    assert_eq!(e.field(), "services[3].port");
    assert!(e.to_string().contains("10.2.0.20:5432"), "{e}");
    assert!(e.to_string().contains("services[0].port"), "{e}");
}

#[test]
fn a_named_port_colliding_with_a_main_port_is_rejected() {
    let e = err(&replaced(
        "ports = { admin = 9090 }",
        "ports = { admin = 8080 }",
    ));
    assert!(matches!(e, TopologyError::DuplicateListen { .. }), "{e:?}");
    assert_eq!(e.field(), "services[1].ports.admin");
}

#[test]
fn bad_ports_and_probes_name_the_field() {
    let e = err(&replaced("port = 5432", "port = 70000"));
    assert!(matches!(e, TopologyError::BadPort { .. }), "{e:?}");
    assert_eq!(e.field(), "services[0].port");
    let e = err(&replaced(
        "ready = { probe = \"http\", path = \"/readyz\" }",
        "ready = { probe = \"http\", path = \"readyz\" }",
    ));
    assert_eq!(e.field(), "services[1].ready.path");
    let e = err(&replaced(
        "ready = { probe = \"tcp\" }",
        "ready = { probe = \"udp\" }",
    ));
    assert_eq!(e.field(), "services[0].ready.probe");
    assert!(e.to_string().contains("\"udp\""), "{e}");
}

#[test]
fn a_duplicate_service_name_is_rejected() {
    let e = err(&replaced(
        "name = \"web\"\nnode = \"web\"",
        "name = \"db\"\nnode = \"web\"",
    ));
    assert!(matches!(e, TopologyError::DuplicateName { .. }), "{e:?}");
    assert_eq!(e.field(), "services[2].name");
}

#[test]
fn a_node_left_unplaced_is_named() {
    let e = err(&replaced("three = [\"api-2\"]", "three = []"));
    assert!(matches!(e, TopologyError::Unplaced { .. }), "{e:?}");
    assert_eq!(e.field(), "placement");
    assert!(e.to_string().contains("\"api-2\""), "{e}");
}

#[test]
fn the_router_must_be_placed_too() {
    let e = err(&replaced(
        "one = [\"router\", \"web\", \"db\"]",
        "one = [\"web\", \"db\"]",
    ));
    assert!(matches!(e, TopologyError::Unplaced { .. }), "{e:?}");
    assert!(e.to_string().contains("\"router\""), "{e}");
}

#[test]
fn a_node_placed_twice_names_both_places() {
    // Hosts are read in name order: one, three, two.
    let e = err(&replaced(
        "one = [\"router\", \"web\", \"db\"]",
        "one = [\"router\", \"web\", \"db\", \"api-1\"]",
    ));
    assert!(matches!(e, TopologyError::PlacedTwice { .. }), "{e:?}");
    assert_eq!(e.field(), "placement.two[0]");
    assert!(e.to_string().contains("placement.one[3]"), "{e}");
}

#[test]
fn placing_an_unknown_node_is_rejected() {
    let e = err(&replaced(
        "two = [\"api-1\"]",
        "two = [\"api-1\", \"ghost\"]",
    ));
    assert!(matches!(e, TopologyError::UnknownNode { .. }), "{e:?}");
    assert_eq!(e.field(), "placement.two[1]");
}

#[test]
fn an_underlay_address_for_an_unknown_host_is_rejected() {
    let e = err(&replaced(
        "group = \"239.2.0.0\"",
        "group = \"239.2.0.0\"\nhosts = { four = \"192.0.2.4\" }",
    ));
    assert!(matches!(e, TopologyError::UnknownHost { .. }), "{e:?}");
    assert_eq!(e.field(), "underlay.hosts.four");
    assert!(e.to_string().contains("[one, three, two]"), "{e}");
}

#[test]
fn the_share_of_an_unknown_host_is_an_error() {
    let t = Topology::from_str(BASE).unwrap();
    let e = t.for_host("four").unwrap_err();
    assert!(matches!(e, TopologyError::UnknownHost { .. }), "{e:?}");
    assert_eq!(e.field(), "--host");
}

#[test]
fn a_unicast_overlay_over_three_hosts_needs_a_group() {
    let e = err(&replaced("group = \"239.2.0.0\"", ""));
    assert!(matches!(e, TopologyError::Conflict { .. }), "{e:?}");
    assert_eq!(e.field(), "underlay.group");
    assert!(e.to_string().contains("spans 3 hosts"), "{e}");
}

#[test]
fn a_non_multicast_group_is_rejected() {
    let e = err(&replaced("group = \"239.2.0.0\"", "group = \"10.0.0.1\""));
    assert!(matches!(e, TopologyError::OutOfRange { .. }), "{e:?}");
    assert_eq!(e.field(), "underlay.group");
}

#[test]
fn hand_written_vxlans_conflict_with_a_derived_overlay() {
    let text = replaced(
        "[placement]",
        "[[vxlans]]\nname = \"vx\"\nnetwork = \"back\"\nvni = 5\nremote = \"192.0.2.1\"\n\n[placement]",
    );
    let e = err(&text);
    assert!(matches!(e, TopologyError::Conflict { .. }), "{e:?}");
    assert_eq!(e.field(), "vxlans");
}

#[test]
fn unknown_keys_in_a_service_are_syntax_errors() {
    let e = err(&replaced("port = 80\n", "port = 80\nreplicas = 3\n"));
    assert!(matches!(e, TopologyError::Syntax { .. }), "{e:?}");
    assert!(e.to_string().contains("replicas"), "{e}");
}

fn netns_kit(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_netns-kit"))
        .args(args)
        .env(
            "NETNS_KIT_STATE_DIR",
            std::env::temp_dir().join("nk-validate-services"),
        )
        .output()
        .unwrap()
}

#[test]
fn the_cli_exits_2_naming_the_field_of_a_bad_service() {
    let file = std::env::temp_dir().join(format!("nk-bad-service-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        replaced("depends_on = [\"db\"]", "depends_on = [\"regisrty\"]"),
    )
    .unwrap();
    let path = file.to_string_lossy().to_string();
    for args in [
        vec!["validate", &path],
        vec!["apply", "--name", "nkbad", &path],
    ] {
        let o = netns_kit(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("services[1].depends_on[0]: unknown service \"regisrty\""),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn apply_for_an_unknown_host_exits_2_before_touching_anything() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/three-tier.toml"
    );
    let o = netns_kit(&["apply", "--host", "vm9", "--name", "nkhost", path]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--host: unknown host \"vm9\": expected one of [vm1, vm2, vm3]"),
        "{stderr}"
    );
}

#[test]
fn a_bridge_named_like_a_derived_vxlan_collides() {
    let e = err(&replaced(
        "name = \"back\"\nsubnet = \"10.2.0.0/24\"",
        "name = \"back\"\nsubnet = \"10.2.0.0/24\"\nbridge = \"vx-back\"",
    ));
    assert!(matches!(e, TopologyError::IfnameCollision { .. }), "{e:?}");
    assert_eq!(e.field(), "networks[1].bridge");
}
