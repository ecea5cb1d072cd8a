//! Link impairment with netem (delay, jitter, loss, rate) as the root qdisc of a link,
//! applied and removed with `tc` running inside the namespace.

use std::process::Output;

use crate::error::{Error, Result};
use crate::link::check_ifname;
use crate::netns::Netns;
use crate::topology::Netem;

/// The tc binary (found on PATH).
pub const TC: &str = "tc";

/// The `tc qdisc replace ... netem` arguments for `netem` on `ifname`.
pub fn netem_args(ifname: &str, netem: &Netem) -> Result<Vec<String>> {
    check_ifname(ifname)?;
    let mut args: Vec<String> = ["qdisc", "replace", "dev", ifname, "root", "netem"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(d) = netem.delay_ms {
        args.extend(["delay".into(), format!("{d}ms")]);
        if let Some(j) = netem.jitter_ms {
            args.push(format!("{j}ms"));
        }
    } else if netem.jitter_ms.is_some() {
        return Err(Error::Invalid {
            kind: "netem jitter",
            value: format!("{:?}", netem.jitter_ms),
            expected: "a delay to jitter around (delay_ms)",
        });
    }
    if let Some(l) = netem.loss_percent {
        if !(0.0..=100.0).contains(&l) {
            return Err(Error::Invalid {
                kind: "netem loss",
                value: l.to_string(),
                expected: "a percentage in 0..=100",
            });
        }
        args.extend(["loss".into(), format!("{l}%")]);
    }
    if let Some(r) = netem.rate_kbit {
        args.extend(["rate".into(), format!("{r}kbit")]);
    }
    Ok(args)
}

/// Put `netem` on `ifname` in `ns` (replacing any root qdisc there).
pub fn apply(ns: &Netns, ifname: &str, netem: &Netem) -> Result<()> {
    let args = netem_args(ifname, netem)?;
    let out = ns.command(TC).args(&args).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("qdisc kind is unknown") {
        return Err(Error::Unsupported {
            feature: "netem (CONFIG_NET_SCH_NETEM)",
            detail: stderr.trim().to_string(),
        });
    }
    tool_result(ns, "tc qdisc replace", out)
}

/// Remove the impairment (restore the default qdisc); nothing to remove is not an error.
pub fn remove(ns: &Netns, ifname: &str) -> Result<()> {
    check_ifname(ifname)?;
    let out = ns
        .command(TC)
        .args(["qdisc", "del", "dev", ifname, "root"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && (text.contains("No such file")
            || text.contains("Cannot delete qdisc with handle of zero"))
    {
        return Ok(());
    }
    tool_result(ns, "tc qdisc del", out)
}

/// Whether the running kernel has netem (tries it on `lo` of a throw-away namespace).
pub fn kernel_supports_netem() -> Result<bool> {
    let ns = Netns::new_anonymous()?;
    let probe = Netem {
        delay_ms: Some(1),
        jitter_ms: None,
        loss_percent: None,
        rate_kbit: None,
    };
    match apply(&ns, "lo", &probe) {
        Ok(()) => Ok(true),
        Err(Error::Unsupported { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a netem qdisc is installed on `ifname` in `ns`.
pub fn is_impaired(ns: &Netns, ifname: &str) -> Result<bool> {
    check_ifname(ifname)?;
    let out = ns
        .command(TC)
        .args(["qdisc", "show", "dev", ifname])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("netem"))
}

fn tool_result(ns: &Netns, program: &str, out: Output) -> Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Tool {
            program: program.to_string(),
            ns: ns.label(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_arguments_follow_tc_syntax() {
        let n = Netem {
            delay_ms: Some(50),
            jitter_ms: Some(5),
            loss_percent: Some(1.5),
            rate_kbit: Some(10_000),
        };
        assert_eq!(
            netem_args("eth0", &n).unwrap().join(" "),
            "qdisc replace dev eth0 root netem delay 50ms 5ms loss 1.5% rate 10000kbit"
        );
    }

    #[test]
    fn jitter_without_delay_is_rejected() {
        let n = Netem {
            delay_ms: None,
            jitter_ms: Some(5),
            loss_percent: None,
            rate_kbit: None,
        };
        assert!(netem_args("eth0", &n).is_err());
    }
}
