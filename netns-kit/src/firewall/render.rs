//! Renders a [`Ruleset`] into one nftables JSON document (`nft -j -f -`).
//!
//! The document adds, deletes and re-adds the table first, so loading it replaces the whole
//! table in a single atomic transaction whether or not it existed before.

use ipnet::IpNet;
use serde_json::{json, Value};

use super::rule::{Action, CtState, Hook, Policy, Proto, Rule, Ruleset};

/// Address family of every netns-kit table: `inet` covers IPv4 and IPv6.
pub const FAMILY: &str = "inet";

impl Ruleset {
    /// The nft JSON document that atomically (re)creates this table. Check [`Ruleset::validate`]
    /// first: an invalid ruleset renders into a document `nft` rejects.
    pub fn to_nft_json(&self) -> String {
        self.to_nft_value().to_string()
    }

    /// The same document as a `serde_json::Value`.
    pub fn to_nft_value(&self) -> Value {
        let table = json!({"family": FAMILY, "name": self.table});
        let mut cmds = vec![
            json!({"metainfo": {"json_schema_version": 1}}),
            json!({"add": {"table": table}}),
            json!({"delete": {"table": table}}),
            json!({"add": {"table": table}}),
        ];
        for (hook, policy) in [
            (Hook::Input, self.input),
            (Hook::Forward, self.forward),
            (Hook::Output, self.output),
        ] {
            cmds.push(json!({"add": {"chain": {
                "family": FAMILY, "table": self.table, "name": chain_name(hook),
                "type": "filter", "hook": chain_name(hook), "prio": 0,
                "policy": policy_name(policy),
            }}}));
        }
        if self.rules.iter().any(|r| r.hook == Hook::Postrouting) {
            cmds.push(json!({"add": {"chain": {
                "family": FAMILY, "table": self.table, "name": "postrouting",
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept",
            }}}));
        }
        for rule in &self.rules {
            let mut r = json!({
                "family": FAMILY, "table": self.table, "chain": chain_name(rule.hook),
                "expr": rule_exprs(rule),
            });
            if let Some(c) = &rule.comment {
                r["comment"] = json!(truncate_comment(c));
            }
            cmds.push(json!({"add": {"rule": r}}));
        }
        json!({ "nftables": cmds })
    }
}

/// The chain name (also the hook name) for a hook.
pub fn chain_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    }
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Accept => "accept",
        Policy::Drop => "drop",
    }
}

/// nft limits comments to 128 bytes; cut on a char boundary.
pub(crate) fn truncate_comment(c: &str) -> String {
    let mut end = c.len().min(128);
    while !c.is_char_boundary(end) {
        end -= 1;
    }
    c[..end].to_string()
}

fn rule_exprs(rule: &Rule) -> Vec<Value> {
    let mut e = Vec::new();
    if let Some(name) = &rule.iif {
        e.push(eq(json!({"meta": {"key": "iifname"}}), json!(name)));
    }
    if let Some(name) = &rule.oif {
        e.push(eq(json!({"meta": {"key": "oifname"}}), json!(name)));
    }
    if let Some(net) = rule.from {
        e.push(addr_match(net, "saddr"));
    }
    if let Some(net) = rule.to {
        e.push(addr_match(net, "daddr"));
    }
    match rule.proto {
        Proto::Any => {}
        Proto::Tcp | Proto::Udp => {
            let p = if rule.proto == Proto::Tcp {
                "tcp"
            } else {
                "udp"
            };
            e.push(eq(json!({"meta": {"key": "l4proto"}}), json!(p)));
            if !rule.dst_ports.is_empty() {
                let items: Vec<Value> = rule
                    .dst_ports
                    .iter()
                    .map(|r| {
                        if r.first == r.last {
                            json!(r.first)
                        } else {
                            json!({"range": [r.first, r.last]})
                        }
                    })
                    .collect();
                let right = match items.as_slice() {
                    [one] => one.clone(),
                    _ => json!({ "set": items }),
                };
                e.push(eq(
                    json!({"payload": {"protocol": p, "field": "dport"}}),
                    right,
                ));
            }
        }
        Proto::Icmp => {
            e.push(eq(
                json!({"meta": {"key": "l4proto"}}),
                json!({"set": ["icmp", "ipv6-icmp"]}),
            ));
        }
    }
    if !rule.ct_states.is_empty() {
        let states: Vec<&str> = rule
            .ct_states
            .iter()
            .map(|s| match s {
                CtState::Established => "established",
                CtState::Related => "related",
                CtState::New => "new",
                CtState::Invalid => "invalid",
            })
            .collect();
        e.push(json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": states}}));
    }
    e.push(match rule.action {
        Action::Accept => json!({"accept": null}),
        Action::Drop => json!({"drop": null}),
        Action::Masquerade => json!({"masquerade": null}),
    });
    e
}

fn eq(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn addr_match(net: IpNet, field: &str) -> Value {
    let proto = if net.addr().is_ipv4() { "ip" } else { "ip6" };
    let right = if net.prefix_len() == net.max_prefix_len() {
        json!(net.addr().to_string())
    } else {
        json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
    };
    eq(
        json!({"payload": {"protocol": proto, "field": field}}),
        right,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::rule::PortRange;

    fn three_tier_like() -> Ruleset {
        Ruleset {
            forward: Policy::Drop,
            rules: vec![
                Rule::established_related(Hook::Forward),
                Rule::new(Hook::Forward, Action::Accept)
                    .from("172.20.0.0/24".parse().unwrap())
                    .to("172.21.0.0/24".parse().unwrap())
                    .proto(
                        Proto::Tcp,
                        vec![
                            PortRange::single(8500),
                            PortRange::single(8001),
                            PortRange {
                                first: 9000,
                                last: 9010,
                            },
                        ],
                    )
                    .comment("frontend -> backend"),
                Rule::new(Hook::Forward, Action::Accept)
                    .iif("host0")
                    .to("172.20.0.10/32".parse().unwrap())
                    .proto(Proto::Tcp, vec![PortRange::single(3000)]),
                Rule::new(Hook::Forward, Action::Accept)
                    .from("fd00::/64".parse().unwrap())
                    .proto(Proto::Icmp, vec![]),
                Rule::new(Hook::Postrouting, Action::Masquerade).oif("eth9"),
            ],
            ..Ruleset::default()
        }
    }

    #[test]
    fn document_replaces_the_table_atomically() {
        let doc: Value = serde_json::from_str(&three_tier_like().to_nft_json()).unwrap();
        let cmds = doc["nftables"].as_array().unwrap();
        assert!(cmds[1]["add"]["table"].is_object());
        assert!(cmds[2]["delete"]["table"].is_object());
        assert!(cmds[3]["add"]["table"].is_object());
        assert_eq!(cmds[3]["add"]["table"]["name"], "netns_kit");
    }

    #[test]
    fn chains_carry_their_policies() {
        let doc = three_tier_like().to_nft_value();
        let chains: Vec<&Value> = doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("chain"))
            .collect();
        let policy = |n: &str| {
            chains.iter().find(|c| c["name"] == n).unwrap()["policy"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(policy("forward"), "drop");
        assert_eq!(policy("input"), "accept");
        assert_eq!(policy("postrouting"), "accept");
    }

    #[test]
    fn ports_render_as_a_set_with_ranges() {
        let doc = three_tier_like().to_nft_value();
        let rule = &doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .nth(1)
            .unwrap()
            .clone();
        let text = rule.to_string();
        assert!(text.contains(r#"{"range":[9000,9010]}"#), "{text}");
        assert!(
            text.contains(r#""prefix":{"addr":"172.20.0.0","len":24}"#),
            "{text}"
        );
        assert_eq!(rule["comment"], "frontend -> backend");
    }

    #[test]
    fn nft_accepts_the_document_in_check_mode() {
        // `nft -c` only checks; it runs in a throwaway network namespace for good measure.
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let have_nft = std::path::Path::new("/usr/sbin/nft").exists();
        if !(is_root && have_nft) {
            assert!(
                std::env::var("ECOMM_REQUIRE_ALL").as_deref() != Ok("1"),
                "ECOMM_REQUIRE_ALL=1 but nft check needs root and /usr/sbin/nft"
            );
            eprintln!("skipping: needs root and nft");
            return;
        }
        use std::io::Write;
        let mut child = std::process::Command::new("unshare")
            .args(["--net", "/usr/sbin/nft", "-c", "-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(three_tier_like().to_nft_json().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft rejected the document: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn validate_rejects_masquerade_in_forward() {
        let rs = Ruleset {
            rules: vec![Rule::new(Hook::Forward, Action::Masquerade)],
            ..Ruleset::default()
        };
        assert!(matches!(
            rs.validate(),
            Err(crate::firewall::RulesetError::MasqueradeOutsidePostrouting { index: 0, .. })
        ));
        assert!(three_tier_like().validate().is_ok());
    }
}
