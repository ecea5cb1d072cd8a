//! Netem: add 50 ms of delay to one end of a veth pair, see it in the round trip, remove it.
//!
//! Asserts: with the impairment the ICMP round trip is at least 50 ms and `tc` shows a netem
//! qdisc; once removed, the qdisc is gone and the round trip is below 50 ms again.
//!
//! A kernel built without netem (CONFIG_NET_SCH_NETEM) answers "qdisc kind is unknown";
//! netns-kit turns that into `Error::Unsupported`, and this example then prints
//! `SKIP: netem unsupported on this kernel: ...` and exits with code 77 (the usual "skipped"
//! code, which `just examples` accepts from this example only).
//!
//! Run as root: `cargo run -p netns-kit --example netem_delay` (needs `tc`, from iproute2).

use std::error::Error;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use netns_kit::addr::Address;
use netns_kit::impair;
use netns_kit::link::{self, LinkChange};
use netns_kit::probe;
use netns_kit::topology::Netem;
use netns_kit::Netns;

/// Exit code meaning "not run here": the kernel lacks netem.
const SKIPPED: u8 = 77;

fn main() -> Result<ExitCode, Box<dyn Error>> {
    let a = Netns::new_anonymous()?;
    let b = Netns::new_anonymous()?;
    let b_ip: IpAddr = "10.50.0.2".parse()?;
    let mut a_nl = a.netlink()?;
    link::veth("eth0", "eth0")
        .index(10)
        .up()
        .peer_index(11)
        .peer_netns(b.fd())
        .create(&mut a_nl)?;
    Address::new(10, "10.50.0.1".parse()?, 24)?.add(&mut a_nl)?;
    let mut b_nl = b.netlink()?;
    LinkChange::of(11).up().queue(&mut b_nl);
    Address::new(11, b_ip, 24)?.queue_add(&mut b_nl);
    b_nl.flush()?;
    link::wait_oper_up(&mut a_nl, 10, Duration::from_secs(2))?;
    link::wait_oper_up(&mut b_nl, 11, Duration::from_secs(2))?;

    let delay = Duration::from_millis(50);
    let rtt = || -> Result<Duration, Box<dyn Error>> {
        Ok(probe::icmp_echo(&a, b_ip, Duration::from_secs(2))?.ok_or("no echo reply")?)
    };
    println!("round trip without netem: {:?}", rtt()?);

    let netem = Netem {
        delay_ms: Some(50),
        ..Netem::default()
    };
    match impair::apply(&a, "eth0", &netem) {
        Ok(()) => {}
        Err(netns_kit::Error::Unsupported { feature, detail }) => {
            eprintln!("SKIP: netem unsupported on this kernel: no {feature} (tc: {detail})");
            return Ok(ExitCode::from(SKIPPED));
        }
        Err(e) => return Err(e.into()),
    }
    assert!(impair::is_impaired(&a, "eth0")?);
    let slow = rtt()?;
    println!("round trip with netem delay 50ms: {slow:?}");
    assert!(slow >= delay, "{slow:?} < {delay:?}");

    impair::remove(&a, "eth0")?;
    assert!(!impair::is_impaired(&a, "eth0")?);
    let fast = rtt()?;
    println!("round trip after removing it: {fast:?}");
    assert!(fast < delay, "{fast:?} >= {delay:?}");
    Ok(ExitCode::SUCCESS)
}
