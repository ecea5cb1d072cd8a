//! The nf_tables netlink loader against the reference, `nft -j -f -` fed the JSON rendering:
//! the same ruleset loaded both ways (into two namespaces) lists identically; loading twice
//! replaces; a transaction the kernel rejects changes nothing.

mod privileged_support;

use netns_kit::error::Error;
use netns_kit::firewall::apply as nft;
use netns_kit::firewall::netlink::uapi::{
    NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_TABLE,
    NFTA_SET_NAME, NFTA_SET_TABLE, NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NFT_MSG_GETSET,
    NFT_MSG_GETSETELEM,
};
use netns_kit::firewall::netlink::{Batch, NfSocket};
use netns_kit::firewall::{Action, CtState, Hook, Policy, PortRange, Proto, Rule, Ruleset};
use netns_kit::netns::Netns;
use netns_kit::runid::RunId;
use netns_kit::topology::plan::{Naming, Plan};
use privileged_support::{privileged, three_tier};
use serde_json::Value;

fn range(first: u16, last: u16) -> PortRange {
    PortRange { first, last }
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

/// Every field and variant of `Rule`: interfaces (and a wildcard), v4 and v6 networks (hosts,
/// byte-aligned and other prefixes, /0), tcp/udp/icmp/any, single ports, one range, port sets
/// with ranges (adjacent, overlapping, up to 65535), every ct state, comments (one longer
/// than nft keeps), accept/drop/masquerade in every hook.
fn every_feature(input: Policy, forward: Policy, output: Policy) -> Ruleset {
    let long_comment = "a comment longer than the 128 bytes nft keeps: ".repeat(4);
    Ruleset {
        table: "nk_features".to_string(),
        input,
        forward,
        output,
        rules: vec![
            Rule::established_related(Hook::Input),
            Rule::new(Hook::Input, Action::Accept).iif("lo"),
            Rule {
                ct_states: vec![CtState::Invalid],
                ..Rule::new(Hook::Input, Action::Drop)
            },
            Rule {
                ct_states: vec![CtState::New],
                ..Rule::new(Hook::Input, Action::Accept)
                    .proto(Proto::Tcp, vec![PortRange::single(22)])
                    .comment("ssh")
            },
            Rule::new(Hook::Input, Action::Accept).proto(Proto::Udp, vec![range(1000, 2000)]),
            Rule::new(Hook::Input, Action::Accept).proto(Proto::Icmp, vec![]),
            Rule::new(Hook::Input, Action::Accept)
                .from(net("fd00::/64"))
                .proto(Proto::Icmp, vec![]),
            Rule {
                ct_states: vec![CtState::Established],
                ..Rule::new(Hook::Forward, Action::Accept)
            },
            Rule::new(Hook::Forward, Action::Accept)
                .iif("host0")
                .oif("eth1")
                .from(net("10.16.0.0/12"))
                .to(net("172.20.0.10/32"))
                .proto(
                    Proto::Tcp,
                    vec![
                        PortRange::single(8500),
                        range(9000, 9010),
                        PortRange::single(22),
                    ],
                )
                .comment("frontend -> backend"),
            Rule::new(Hook::Forward, Action::Accept)
                .from(net("172.20.0.0/24"))
                .to(net("172.21.0.0/16"))
                .proto(
                    Proto::Tcp,
                    vec![
                        PortRange::single(8500),
                        PortRange::single(8001),
                        PortRange::single(8002),
                    ],
                ),
            Rule::new(Hook::Forward, Action::Accept)
                .from(net("10.0.0.0/8"))
                .proto(Proto::Udp, vec![PortRange::single(53), range(60000, 65535)]),
            Rule::new(Hook::Forward, Action::Accept)
                .to(net("fd00:0:0:10::/60"))
                .proto(Proto::Tcp, vec![PortRange::single(443)]),
            Rule::new(Hook::Forward, Action::Drop)
                .from(net("fd00::1/128"))
                .to(net("fd00::/127")),
            Rule::new(Hook::Forward, Action::Accept).from(net("0.0.0.0/0")),
            Rule::new(Hook::Forward, Action::Accept).to(net("::/0")),
            Rule::new(Hook::Forward, Action::Accept).proto(
                Proto::Tcp,
                vec![
                    PortRange::single(22),
                    PortRange::single(23),
                    range(24, 30),
                    range(25, 26),
                ],
            ),
            Rule::new(Hook::Forward, Action::Accept).proto(Proto::Udp, vec![]),
            Rule::new(Hook::Forward, Action::Accept).oif("veth*"),
            Rule {
                ct_states: vec![
                    CtState::New,
                    CtState::Established,
                    CtState::Related,
                    CtState::Invalid,
                ],
                ..Rule::new(Hook::Forward, Action::Drop)
            },
            Rule::new(Hook::Output, Action::Drop)
                .oif("eth0")
                .to(net("192.0.2.0/24")),
            Rule::new(Hook::Output, Action::Accept).comment(long_comment),
            Rule::new(Hook::Postrouting, Action::Masquerade).oif("eth9"),
            Rule::new(Hook::Postrouting, Action::Masquerade).from(net("172.20.0.0/24")),
        ],
    }
}

/// `nft -j list table inet <table>` in `ns`, without the metainfo and the handles (which
/// differ between namespaces).
fn listing(ns: &Netns, table: &str) -> Value {
    let text = nft::table_json(ns, table)
        .unwrap()
        .expect("the table exists");
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let items = doc["nftables"].as_array_mut().unwrap();
    items.retain(|i| i.get("metainfo").is_none());
    strip_handles(&mut doc);
    doc
}

fn strip_handles(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("handle");
            m.values_mut().for_each(strip_handles);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_handles),
        _ => {}
    }
}

fn rule_count(ns: &Netns, table: &str) -> usize {
    listing(ns, table)["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("rule").is_some())
        .count()
}

/// The string value of attribute `kind` in a run of netlink attributes.
fn attr_str(attrs: &[u8], kind: u16) -> Option<String> {
    let mut p = 0;
    while p + 4 <= attrs.len() {
        let len = u16::from_ne_bytes([attrs[p], attrs[p + 1]]) as usize;
        let t = u16::from_ne_bytes([attrs[p + 2], attrs[p + 3]]) & 0x3fff;
        if len < 4 || p + len > attrs.len() {
            return None;
        }
        if t == kind {
            let v = &attrs[p + 4..p + len];
            let v = v.split(|b| *b == 0).next().unwrap_or(v);
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        p += (len + 3) & !3;
    }
    None
}

/// The table's chains, rules, sets (anonymous ones included, with their flags, key types and
/// user data) and set elements exactly as the kernel holds them: what `nft list` shows and
/// everything it does not.
fn kernel_state(ns: &Netns, table: &str) -> Vec<(String, Vec<u8>)> {
    let mut sock = NfSocket::open_in(ns).unwrap();
    let mut state = Vec::new();
    for (what, msg, attr) in [
        ("chain", NFT_MSG_GETCHAIN, NFTA_CHAIN_TABLE),
        ("rule", NFT_MSG_GETRULE, NFTA_RULE_TABLE),
        ("set", NFT_MSG_GETSET, NFTA_SET_TABLE),
    ] {
        for raw in sock.dump_raw(msg, &[(attr, table)]).unwrap() {
            state.push((what.to_string(), raw));
        }
    }
    let sets: Vec<String> = state
        .iter()
        .filter(|(what, _)| what == "set")
        .map(|(_, raw)| attr_str(raw, NFTA_SET_NAME).expect("a set has a name"))
        .collect();
    for set in sets {
        let filter = [
            (NFTA_SET_ELEM_LIST_TABLE, table),
            (NFTA_SET_ELEM_LIST_SET, set.as_str()),
        ];
        for raw in sock.dump_raw(NFT_MSG_GETSETELEM, &filter).unwrap() {
            state.push((format!("elements of {set}"), raw));
        }
    }
    state
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Load `ruleset` over netlink into one fresh namespace and through `nft -j -f -` into
/// another, and require identical listings (rule by rule, so a difference is easy to read)
/// and identical kernel state, byte for byte.
fn assert_loads_identically(ruleset: &Ruleset) {
    let by_netlink = Netns::new_anonymous().unwrap();
    let by_nft = Netns::new_anonymous().unwrap();
    nft::load(&by_netlink, ruleset).unwrap();
    nft::load_with_nft(&by_nft, ruleset).unwrap();
    let ours = listing(&by_netlink, &ruleset.table);
    let reference = listing(&by_nft, &ruleset.table);
    let (ours, reference) = (
        ours["nftables"].as_array().unwrap(),
        reference["nftables"].as_array().unwrap(),
    );
    for (i, (a, b)) in ours.iter().zip(reference.iter()).enumerate() {
        assert_eq!(
            a, b,
            "item {i} of table {} differs (left: netlink, right: nft)",
            ruleset.table
        );
    }
    assert_eq!(
        ours.len(),
        reference.len(),
        "item count of table {}",
        ruleset.table
    );

    let ours = kernel_state(&by_netlink, &ruleset.table);
    let reference = kernel_state(&by_nft, &ruleset.table);
    assert!(
        ours.iter().any(|(what, _)| what == "set"),
        "the sets were dumped"
    );
    for (i, (a, b)) in ours.iter().zip(reference.iter()).enumerate() {
        assert_eq!(
            (&a.0, hex(&a.1)),
            (&b.0, hex(&b.1)),
            "kernel object {i} of table {} differs (left: netlink, right: nft)",
            ruleset.table
        );
    }
    assert_eq!(
        ours.len(),
        reference.len(),
        "kernel object count of table {}",
        ruleset.table
    );
}

#[test]
fn the_three_tier_rulesets_load_over_netlink_exactly_as_nft_loads_them() {
    if !privileged("three-tier ruleset over netlink") {
        return;
    }
    let run = RunId::new().unwrap();
    // Planning only (no kernel objects): the host link stays in, so its rule is covered.
    let plan = Plan::for_run(&three_tier(), run.as_str(), Naming::Anonymous).unwrap();
    assert!(
        !plan.firewalls.is_empty(),
        "three-tier has a router firewall"
    );
    for f in &plan.firewalls {
        assert!(
            f.ruleset.rules.len() >= 5,
            "the router's ruleset has its policy rows"
        );
        assert_loads_identically(&f.ruleset);
    }
}

#[test]
fn every_rule_feature_loads_over_netlink_exactly_as_nft_loads_it() {
    if !privileged("every rule feature over netlink") {
        return;
    }
    assert_loads_identically(&every_feature(Policy::Drop, Policy::Drop, Policy::Accept));
    assert_loads_identically(&every_feature(Policy::Accept, Policy::Accept, Policy::Drop));
}

#[test]
fn loading_twice_replaces_the_table_instead_of_adding_to_it() {
    if !privileged("netlink load replaces") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let rs = every_feature(Policy::Drop, Policy::Drop, Policy::Accept);
    nft::load(&ns, &rs).unwrap();
    let first = listing(&ns, &rs.table);
    nft::load(&ns, &rs).unwrap();
    assert_eq!(rule_count(&ns, &rs.table), rs.rules.len());
    assert_eq!(listing(&ns, &rs.table), first);

    // A smaller ruleset replaces the bigger one entirely (no chain or rule left over).
    let small = Ruleset {
        table: rs.table.clone(),
        rules: vec![Rule::established_related(Hook::Input)],
        ..Ruleset::default()
    };
    nft::load(&ns, &small).unwrap();
    assert_eq!(rule_count(&ns, &rs.table), 1);
    let chains = listing(&ns, &rs.table)["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("chain").is_some())
        .count();
    assert_eq!(chains, 3, "input, forward, output; no postrouting any more");
}

#[test]
fn a_transaction_the_kernel_rejects_leaves_the_previous_table_exactly_as_it_was() {
    if !privileged("rejected netlink transaction") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let before = every_feature(Policy::Drop, Policy::Drop, Policy::Accept);
    nft::load(&ns, &before).unwrap();
    let raw_before = nft::table_json(&ns, &before.table).unwrap().unwrap();

    // A full replacement with one rule aimed at a chain that does not exist, last.
    let after = Ruleset {
        table: before.table.clone(),
        input: Policy::Accept,
        rules: vec![Rule::new(Hook::Forward, Action::Drop)],
        ..Ruleset::default()
    };
    let mut batch = Batch::replace_table(&after).unwrap();
    batch.add_rule(
        &after.table,
        "no_such_chain",
        &Rule::new(Hook::Forward, Action::Accept).comment("misplaced"),
    );
    let err = nft::commit(&ns, batch).unwrap_err();
    match &err {
        Error::Netlink { op, source, .. } => {
            assert!(
                op.contains("no_such_chain"),
                "the error names the chain: {err}"
            );
            assert!(op.contains("misplaced"), "the error names the rule: {err}");
            assert!(op.contains("rules[1]"), "the error numbers the rule: {err}");
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT), "{err}");
        }
        other => panic!("expected a netlink error, got {other}"),
    }
    assert!(err.to_string().contains("nothing was applied"), "{err}");

    // Byte for byte the same table, handles included: nothing of the batch was applied.
    let raw_after = nft::table_json(&ns, &before.table).unwrap().unwrap();
    assert_eq!(raw_after, raw_before);
}

#[test]
fn delete_table_is_idempotent_and_table_exists_sees_it() {
    if !privileged("netlink delete table") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let rs = Ruleset::default();
    assert!(!nft::table_exists(&ns, &rs.table).unwrap());
    nft::delete_table(&ns, &rs.table).unwrap();
    nft::load(&ns, &rs).unwrap();
    assert!(nft::table_exists(&ns, &rs.table).unwrap());
    nft::delete_table(&ns, &rs.table).unwrap();
    assert!(!nft::table_exists(&ns, &rs.table).unwrap());
    assert_eq!(nft::table_json(&ns, &rs.table).unwrap(), None);
}

#[test]
fn creating_in_a_new_namespace_builds_the_same_table_and_never_overwrites_one() {
    if !privileged("netlink create table") {
        return;
    }
    let rs = every_feature(Policy::Drop, Policy::Drop, Policy::Accept);
    let created = Netns::new_anonymous().unwrap();
    let by_nft = Netns::new_anonymous().unwrap();
    let mut sock = NfSocket::open_in(&created).unwrap();
    nft::create_via(&mut sock, &rs).unwrap();
    nft::load_with_nft(&by_nft, &rs).unwrap();
    assert_eq!(listing(&created, &rs.table), listing(&by_nft, &rs.table));

    // A second create finds the table and changes nothing.
    let raw_before = nft::table_json(&created, &rs.table).unwrap().unwrap();
    let smaller = Ruleset {
        table: rs.table.clone(),
        ..Ruleset::default()
    };
    let err = nft::create_via(&mut sock, &smaller).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    assert!(
        err.to_string().contains(&rs.table),
        "the error names the table: {err}"
    );
    assert_eq!(
        nft::table_json(&created, &rs.table).unwrap().unwrap(),
        raw_before
    );
}

#[test]
fn port_sets_too_big_for_one_message_load_exactly_as_nft_loads_them() {
    if !privileged("big port sets over netlink") {
        return;
    }
    let ranges: Vec<PortRange> = (0..2000u16)
        .map(|i| range(10 + 20 * i, 15 + 20 * i))
        .collect();
    let singles: Vec<PortRange> = (0..12000u16)
        .map(|i| PortRange::single(10 + 3 * i))
        .collect();
    let rs = Ruleset {
        table: "nk_big_sets".to_string(),
        rules: vec![
            Rule::new(Hook::Input, Action::Accept).proto(Proto::Tcp, ranges),
            Rule::new(Hook::Input, Action::Drop).proto(Proto::Udp, singles),
        ],
        ..Ruleset::default()
    };
    let bytes = Batch::replace_table(&rs).unwrap().finish().bytes.len();
    assert!(
        bytes > 256 * 1024,
        "the batch ({bytes} bytes) outgrows the default send buffer"
    );
    assert_loads_identically(&rs);
}

#[test]
fn thousands_of_rules_are_one_transaction_and_every_answer_is_read() {
    if !privileged("many rules over netlink") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let rules: Vec<Rule> = (0..6000u32)
        .map(|i| {
            Rule::new(Hook::Forward, Action::Accept)
                .to(net(&format!("10.{}.{}.0/24", i / 256, i % 256)))
                .proto(Proto::Tcp, vec![PortRange::single(8000)])
        })
        .collect();
    let rs = Ruleset {
        table: "nk_many_rules".to_string(),
        rules,
        ..Ruleset::default()
    };
    nft::load(&ns, &rs).unwrap();
    nft::load(&ns, &rs).unwrap();
    assert_eq!(rule_count(&ns, &rs.table), 6000);
}
