//! Continuous client load through the gateway, from the frontend tier on vm1: one loop of
//! `GET /api/products/1`, one loop placing orders (each with its own Idempotency-Key and
//! customer, retried with the same key until acknowledged). Every attempt is logged with
//! vm1's clock in milliseconds, so a scenario can judge what happened after a fault.

use std::time::Duration;

use crate::lab::Lab;

/// One logged request.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// vm1's clock, ms since the epoch, when the response (or failure) came.
    pub at_ms: u64,
    /// The order's key (empty for GETs).
    pub key: String,
    /// HTTP status, 0 when no response.
    pub status: u16,
}

/// What a load run observed.
#[derive(Debug, Default)]
pub struct Report {
    /// Every GET.
    pub gets: Vec<Attempt>,
    /// Every order attempt.
    pub orders: Vec<Attempt>,
}

impl Report {
    /// Attempts after `t_ms` that did not succeed (`ok` is the success status).
    pub fn failures_after(attempts: &[Attempt], t_ms: u64, ok: u16) -> Vec<&Attempt> {
        attempts
            .iter()
            .filter(|a| a.at_ms > t_ms && a.status != ok)
            .collect()
    }

    /// Keys of the acknowledged (201) orders.
    pub fn acknowledged(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .orders
            .iter()
            .filter(|a| a.status == 201)
            .map(|a| a.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A running load; [`Load::stop`] ends it and collects the logs.
pub struct Load<'a> {
    lab: &'a Lab,
    dir: String,
}

/// The clock of the gateway's VM (vm1), in ms.
pub fn now_ms(lab: &Lab) -> u64 {
    lab.host_of("gateway")
        .succeed("date +%s%3N")
        .trim()
        .parse()
        .unwrap()
}

impl<'a> Load<'a> {
    /// Starts both loops; `tag` names the run (and prefixes customers and keys).
    pub fn start(lab: &'a Lab, tag: &str) -> Load<'a> {
        let dir = format!("/run/load-{tag}");
        let gw = lab.gateway_url();
        let vm1 = lab.host_of("gateway");
        vm1.succeed(&format!("mkdir -p {dir}"));
        let gets = format!(
            "while [ ! -e {dir}/stop ]; do \
               s=$(curl -s -o /dev/null -w '%{{http_code}}' -m 20 {gw}/api/products/1); \
               echo \"$(date +%s%3N) - $s\" >> {dir}/gets; sleep 0.05; \
             done"
        );
        let orders = format!(
            "i=0; while [ ! -e {dir}/stop ]; do i=$((i+1)); key={tag}-$i; \
               while :; do \
                 s=$(curl -s -o /dev/null -w '%{{http_code}}' -m 20 -X POST -H 'content-type: application/json' \
                     -H \"Idempotency-Key: $key\" \
                     -d \"{{\\\"customer\\\":\\\"$key@example.com\\\",\\\"items\\\":[{{\\\"product_id\\\":1,\\\"quantity\\\":1}}]}}\" \
                     {gw}/api/orders); \
                 echo \"$(date +%s%3N) $key $s\" >> {dir}/orders; \
                 [ \"$s\" = 201 ] && break; [ -e {dir}/stop ] && break; sleep 0.2; \
               done; sleep 0.2; \
             done"
        );
        vm1.spawn(
            &format!(
                "{} sh -c '{}'",
                lab.in_node("gateway"),
                gets.replace('\'', "'\\''")
            ),
            &format!("{dir}/gets.err"),
        );
        vm1.spawn(
            &format!(
                "{} sh -c '{}'",
                lab.in_node("gateway"),
                orders.replace('\'', "'\\''")
            ),
            &format!("{dir}/orders.err"),
        );
        vm1.wait_until_succeeds(
            &format!("test -s {dir}/gets && test -s {dir}/orders"),
            Duration::from_secs(30),
        );
        Load { lab, dir }
    }

    /// Stops both loops (each finishes its request; an unacknowledged order is retried
    /// until acknowledged first, so every key the log shows is settled) and parses the logs.
    pub fn stop(self) -> Report {
        let vm1 = self.lab.host_of("gateway");
        vm1.succeed(&format!("touch {}/stop", self.dir));
        // At most one request per loop is in flight after the stop mark; wait it out.
        vm1.wait_until_succeeds(
            "! pgrep -x curl >/dev/null && sleep 0.5 && ! pgrep -x curl >/dev/null",
            Duration::from_secs(20),
        );
        let parse = |file: &str| -> Vec<Attempt> {
            String::from_utf8_lossy(&vm1.read_file(&format!("{}/{file}", self.dir)))
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    let at_ms = it.next()?.parse().ok()?;
                    let key = it.next()?.trim_matches('-').to_string();
                    let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                    Some(Attempt { at_ms, key, status })
                })
                .collect()
        };
        Report {
            gets: parse("gets"),
            orders: parse("orders"),
        }
    }
}
