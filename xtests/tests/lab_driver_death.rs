//! The lab driver survives its own death: `lab up` SIGKILLed at several points while it starts
//! the stack, and the lab's components SIGKILLed at random while it is up. Either way `lab down`
//! removes every process, namespace, link, rule and the host route, `lab up` converges again,
//! and PostgreSQL's data directory (with the orders in it) is kept.
//!
//! These run the real `lab` binary as a process, under a unique lab name and a temporary state
//! directory, so a user's lab named "lab" is never touched. The host link and its route are
//! the declaration's (there is one per machine): each test first checks no other lab holds
//! them, and always takes its lab down at the end, even when an assertion fails.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netns_kit::topology::{Naming, Plan};
use xtests::footprint::Footprint;
use xtests::http::{Request, Response};
use xtests::ns::NsHandle;
use xtests::state::LabState;
use xtests::topology_file;

/// One lab at a time in this file: both tests need the machine's one host link.
static HOST_LINK: Mutex<()> = Mutex::new(());

/// A lab driven through the `lab` binary, taken down when dropped (whatever the test did).
struct LabCli {
    name: String,
    dir: PathBuf,
    ecomm: PathBuf,
    host_ifname: String,
    host_routes: Vec<String>,
}

impl LabCli {
    /// A lab named `ld<pid><tag>` in a fresh temporary state directory; `None` (test skipped)
    /// when another lab holds the declaration's host link or route, unless ECOMM_REQUIRE_ALL=1.
    fn new(tag: &str) -> Option<LabCli> {
        let name = format!("ld{:x}{tag}", std::process::id() & 0xffff);
        let dir = std::env::temp_dir().join(format!("lab-driver-death-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (_, topology) = topology_file::load(&topology_file::shared_file(), 3).unwrap();
        let plan = Plan::for_run(
            &topology,
            "00000000",
            Naming::Named {
                prefix: name.clone(),
            },
        )
        .unwrap();
        let host = plan
            .host_link
            .as_ref()
            .expect("the declaration has a host link");
        let lab = LabCli {
            name,
            dir,
            ecomm: xtests::lab::ecomm_binary().unwrap(),
            host_ifname: host.host_ifname.clone(),
            host_routes: host
                .host_routes
                .iter()
                .map(|r| r.dest.to_string())
                .collect(),
        };
        let mut taken = ip(&[
            "-o",
            "addr",
            "show",
            "to",
            &host.host_addr.trunc().to_string(),
        ]);
        for dest in &lab.host_routes {
            taken.push_str(&ip(&["route", "show", "exact", dest]));
        }
        if !taken.trim().is_empty() {
            let why = format!(
                "another lab holds the host link or route of the declaration ({}); take it down first:\n{taken}",
                host.host_addr
            );
            if std::env::var("ECOMM_REQUIRE_ALL").as_deref() == Ok("1") {
                panic!("{why}");
            }
            eprintln!("skipped: {why}");
            return None;
        }
        Some(lab)
    }

    /// Runs `lab <args>` with `env` added; its output, echoed for the test log.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_lab"))
            .arg("--dir")
            .arg(&self.dir)
            .arg("--name")
            .arg(&self.name)
            .args(args)
            .envs(env.iter().copied())
            .env("ECOMM_BIN", &self.ecomm)
            .output()
            .unwrap();
        eprintln!(
            "$ lab {} {}-> {} in {:.1}s\n{}{}",
            args.join(" "),
            env.iter()
                .map(|(k, v)| format!("[{k}={v}] "))
                .collect::<String>(),
            out.status,
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `lab up`, which must succeed; its stdout.
    fn up(&self) -> String {
        let out = self.run(&["up", "--ecomm", &self.ecomm.to_string_lossy()], &[]);
        assert!(out.status.success(), "lab up failed: {}", out.status);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `lab up` with the driver SIGKILLing itself at fault point `point`.
    fn up_killed_at(&self, point: &str) {
        let out = self.run(
            &["up", "--ecomm", &self.ecomm.to_string_lossy()],
            &[("LAB_FAULT_AFTER", point)],
        );
        assert_eq!(
            out.status.signal(),
            Some(9),
            "lab up was to be SIGKILLed at {point}, it ended {}",
            out.status
        );
    }

    /// `lab down` with the driver SIGKILLing itself at fault point `point`.
    fn down_killed_at(&self, point: &str) {
        let out = self.run(&["down"], &[("LAB_FAULT_AFTER", point)]);
        assert_eq!(
            out.status.signal(),
            Some(9),
            "lab down was to be SIGKILLed at {point}, it ended {}",
            out.status
        );
    }

    /// `lab up` started in the background; returned once `path` exists (relative: under the
    /// state directory), or None if it ended first. Polled every millisecond.
    fn up_until_exists(&self, path: &Path) -> (std::process::Child, bool) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lab"))
            .arg("--dir")
            .arg(&self.dir)
            .arg("--name")
            .arg(&self.name)
            .args(["up", "--ecomm", &self.ecomm.to_string_lossy()])
            .env("ECOMM_BIN", &self.ecomm)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        let seen = loop {
            if self.dir.join(path).exists() {
                break true;
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > until {
                break false;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        (child, seen)
    }

    /// `lab up` SIGKILLed from outside `delay` after `path` appears (relative: under the
    /// state directory).
    fn up_killed_when_exists(&self, path: &Path, delay: Duration) {
        let (mut child, seen) = self.up_until_exists(path);
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!(
            "$ lab up -> {status} (SIGKILLed {delay:?} after {} appeared)",
            path.display()
        );
        assert!(
            seen,
            "lab up ended ({status}) before {} appeared",
            path.display()
        );
        assert_eq!(status.signal(), Some(9), "lab up was SIGKILLed");
    }

    /// `lab down`, which must succeed.
    fn down(&self) {
        let out = self.run(&["down"], &[]);
        assert!(out.status.success(), "lab down failed: {}", out.status);
    }

    /// `lab status`: true when every component is ready.
    fn status_ready(&self) -> bool {
        self.run(&["status"], &[]).status.success()
    }

    fn state(&self) -> Option<LabState> {
        LabState::load(&self.dir).unwrap()
    }

    /// The lab's names under /run/netns.
    fn namespaces(&self) -> Vec<String> {
        let prefix = format!("{}-", self.name);
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// What of the lab is on the machine now, to compare after `down`: run id, namespace
    /// inodes, recorded pids.
    fn footprint(&self) -> Footprint {
        let state = self.state();
        let recorded = netns_kit::topology::state::RunState::load(
            Path::new(netns_kit::topology::state::STATE_DIR),
            &self.name,
        )
        .ok();
        let run_id = state
            .as_ref()
            .map(|s| s.run_id.clone())
            .or(recorded.map(|r| r.run_id))
            .expect("a killed `lab up` left a run id on disk");
        let names = self.namespaces();
        Footprint {
            run_id,
            ns_inodes: names
                .iter()
                .filter_map(|n| std::fs::metadata(Path::new("/run/netns").join(n)).ok())
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .collect(),
            pids: state
                .map(|s| s.pids.into_values().collect())
                .unwrap_or_default(),
            named: names,
        }
    }

    /// Every trace of the lab left on the machine (empty = clean): processes in its
    /// namespaces or carrying its run id, names under /run/netns, the host link, the host
    /// routes, nftables naming the run, the state file.
    fn leftovers(&self, footprint: &Footprint) -> Vec<String> {
        let mut left = footprint.leftovers();
        left.extend(
            xtests::process::processes_in_namespaces(&footprint.ns_inodes)
                .into_iter()
                .map(|pid| format!("process {pid} inside a namespace of the lab")),
        );
        left.extend(
            self.namespaces()
                .into_iter()
                .map(|n| format!("/run/netns/{n}")),
        );
        if !ip(&["-o", "link", "show", "dev", &self.host_ifname]).is_empty() {
            left.push(format!("host link {}", self.host_ifname));
        }
        for dest in &self.host_routes {
            let route = ip(&["route", "show", "exact", dest]);
            if !route.trim().is_empty() {
                left.push(format!("host route {}", route.trim()));
            }
        }
        let ruleset = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if ruleset.contains(&footprint.run_id) {
            left.push(format!("host nftables name run {}", footprint.run_id));
        }
        if LabState::path(&self.dir).exists() {
            left.push("state.json still there".into());
        }
        left
    }

    /// Asserts PostgreSQL's data directory is still there (a cluster, not a half-made one).
    fn assert_database_kept(&self) {
        let pg_version = self.dir.join("postgres/data/PG_VERSION");
        assert!(
            pg_version.exists(),
            "{} is gone: the database directory must survive down",
            pg_version.display()
        );
    }

    /// Sends `req` to the gateway from inside the gateway's namespace.
    fn via_gateway(&self, req: &Request) -> Result<Response, xtests::LabError> {
        let state = self.state().expect("the lab is up");
        let gateway: SocketAddr = state
            .components
            .iter()
            .find(|c| c.name == "gateway")
            .map(|c| c.addr)
            .expect("the declaration has a gateway");
        let ns = NsHandle::open(
            "gateway",
            &Path::new("/run/netns").join(state.namespace("gateway").unwrap()),
        )?;
        req.send(&ns, gateway)
    }

    /// Places an order through the gateway; its id.
    fn place_order(&self, key: &str) -> String {
        let body = serde_json::json!({
            "customer": "death@example.com",
            "items": [{"product_id": 1, "quantity": 2}],
        });
        let req = Request::post_json("/api/orders", &body).header("Idempotency-Key", key);
        let resp = eventually(|| self.via_gateway(&req).ok().filter(|r| r.status == 201))
            .expect("POST /api/orders answers 201");
        resp.json().unwrap()["id"].as_str().unwrap().to_string()
    }

    /// Asserts order `id` is served by the gateway (read back from PostgreSQL).
    fn assert_order_kept(&self, id: &str) {
        let req = Request::get(format!("/api/orders/{id}"));
        let resp = eventually(|| self.via_gateway(&req).ok().filter(|r| r.status == 200))
            .unwrap_or_else(|| panic!("GET /api/orders/{id} never answered 200"));
        let order = resp.json().unwrap();
        assert_eq!(order["id"], id);
        assert_eq!(order["customer"], "death@example.com");
        assert_eq!(order["total_cents"], 2 * 4999);
    }
}

impl Drop for LabCli {
    fn drop(&mut self) {
        // Always: the host link and route must not outlive the test (if an `up` of a failed
        // test still holds the lab's lock, wait for it).
        let until = Instant::now() + Duration::from_secs(120);
        while self.run(&["down"], &[]).status.code() == Some(2) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ip <args>` in the host's namespace (read only): its stdout.
fn ip(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Polls `f` every 100 ms for at most 30 s until it returns something.
fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A small deterministic generator (splitmix64): the random kills are replayable by seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn a_lab_up_killed_while_it_starts_the_stack_is_taken_down_completely_and_comes_up_again() {
    if !xtests::privileged("the lab driver death test") {
        return;
    }
    let _one_lab = HOST_LINK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = LabCli::new("a") else { return };

    // Killed while initdb builds the cluster: nothing is left, and no half-made cluster is
    // taken for a real one (the next `up` creates the database from scratch).
    lab.up_killed_when_exists(Path::new("postgres/data.initdb/base"), Duration::ZERO);
    let footprint = lab.footprint();
    lab.down();
    assert_eq!(
        lab.leftovers(&footprint),
        Vec::<String>::new(),
        "after a kill mid-initdb"
    );

    // A first full run creates the database and an order in it.
    lab.up();
    let order = lab.place_order("before-the-kills");
    let footprint = lab.footprint();
    lab.down();
    assert_eq!(lab.leftovers(&footprint), Vec::<String>::new());
    lab.assert_database_kept();

    // Killed inside the apply (which takes ~10 ms): 0-10 ms after netns-kit recorded the run.
    let record = netns_kit::topology::state::RunState::path(
        Path::new(netns_kit::topology::state::STATE_DIR),
        &lab.name,
    );
    for ms in [0, 2, 4, 6, 8, 10] {
        lab.up_killed_when_exists(&record, Duration::from_millis(ms));
        let footprint = lab.footprint();
        eprintln!(
            "killed mid-apply with {} namespaces made",
            footprint.named.len()
        );
        lab.down();
        assert_eq!(
            lab.leftovers(&footprint),
            Vec::<String>::new(),
            "after a kill {ms} ms into the apply"
        );
        lab.assert_database_kept();
    }

    // (fault point, whether `lab up` is run again on the wreck before `lab down`)
    let kills = [
        ("intent", true),            // state written, nothing applied yet
        ("applied", false),          // topology up, state not yet marked applied
        ("spawned:postgres", true),  // postmaster running, its pid not recorded yet
        ("ready:postgres", false),   // data stores up, no service yet
        ("spawned:product-2", true), // mid-services: product-2 spawned but not recorded
        ("ready:gateway", false),    // everything up, the driver dies before its summary
    ];
    for (point, up_again) in kills {
        eprintln!("--- SIGKILL `lab up` at {point} ---");
        lab.up_killed_at(point);
        let mut footprint = lab.footprint();
        if point == "intent" {
            let state = lab
                .state()
                .expect("the intent is on disk before anything is made");
            assert!(!state.applied && footprint.named.is_empty());
        } else {
            assert!(
                !footprint.named.is_empty(),
                "the killed `lab up` left its namespaces for `down` to find"
            );
        }
        if up_again {
            lab.up();
            assert!(
                lab.status_ready(),
                "lab up after a kill at {point} converges"
            );
            lab.assert_order_kept(&order);
            footprint
                .pids
                .extend(lab.state().unwrap().pids.into_values());
        }
        lab.down();
        assert_eq!(
            lab.leftovers(&footprint),
            Vec::<String>::new(),
            "after a kill at {point}"
        );
        lab.assert_database_kept();
    }

    // A `down` while an `up` is still at work refuses, and leaves that `up` to finish.
    let (mut building, seen) = lab.up_until_exists(Path::new("state.json"));
    assert!(seen, "lab up wrote its state");
    let pid = nix::unistd::Pid::from_raw(building.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let refused = lab.run(&["down"], &[]);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(refused.status.code(), Some(2), "down refuses while up runs");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lab.lock"));
    assert!(
        building.wait().unwrap().success(),
        "the interrupted up finished"
    );
    assert!(lab.status_ready());
    let footprint = lab.footprint();
    lab.down();
    assert_eq!(lab.leftovers(&footprint), Vec::<String>::new());

    // `lab down` killed midway: the next `down` finishes the job.
    for point in ["down:stopped", "down:removed"] {
        eprintln!("--- SIGKILL `lab down` at {point} ---");
        lab.up();
        let footprint = lab.footprint();
        lab.down_killed_at(point);
        lab.down();
        assert_eq!(
            lab.leftovers(&footprint),
            Vec::<String>::new(),
            "after a down killed at {point}"
        );
    }

    // The data survived every kill: a fresh `up` serves the order placed before them.
    lab.up();
    lab.assert_order_kept(&order);
    let footprint = lab.footprint();
    lab.down();
    assert_eq!(lab.leftovers(&footprint), Vec::<String>::new());
    lab.assert_database_kept();
}

#[test]
fn components_killed_at_random_are_restarted_by_up_and_removed_by_down() {
    if !xtests::privileged("the lab driver death test") {
        return;
    }
    let _one_lab = HOST_LINK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = LabCli::new("b") else { return };
    let seed = std::env::var("LAB_DEATH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("random kills: seed {seed} (replay with LAB_DEATH_SEED={seed})");
    let mut rng = SplitMix(seed);

    lab.up();
    let order = lab.place_order("before-the-crashes");
    let before: BTreeMap<String, (i32, u64)> = lab.state().unwrap().pids;
    let mut survivors: Vec<String> = before.keys().cloned().collect();
    let count = 2 + (rng.next() % 2) as usize;
    let mut victims = BTreeSet::new();
    while victims.len() < count {
        let i = (rng.next() % survivors.len() as u64) as usize;
        victims.insert(survivors.swap_remove(i));
    }
    eprintln!("SIGKILL {victims:?}");
    for name in &victims {
        let (pid, _) = before[name];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    assert!(!lab.status_ready(), "status reports the killed components");

    // `up` restarts exactly the dead ones and keeps the rest.
    let said = lab.up();
    assert!(said.contains("started again"), "{said}");
    assert!(lab.status_ready(), "every component is ready again");
    let after = lab.state().unwrap().pids;
    for (name, pid) in &before {
        if victims.contains(name) {
            assert_ne!(after.get(name), Some(pid), "{name} was restarted");
        } else {
            assert_eq!(after.get(name), Some(pid), "{name} was kept running");
        }
    }
    lab.assert_order_kept(&order);

    // `down` with one component dead and one recorded pid now naming an unrelated process:
    // no error for the dead one, and the unrelated process is never signalled.
    let mut footprint = lab.footprint();
    let mut state = lab.state().unwrap();
    let dead = survivors[(rng.next() % survivors.len() as u64) as usize].clone();
    let (dead_pid, _) = state.pids[&dead];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dead_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // And always the postmaster alone (not its group): its backends, session leaders of their
    // own, are orphaned in the postgres namespace, recorded nowhere.
    let (postmaster, _) = state.pids["postgres"];
    if dead != "postgres" {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(postmaster),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let mut bystander = Command::new("sleep").arg("600").spawn().unwrap();
    let bystander_pid = bystander.id() as i32;
    let reused = victims.iter().next().unwrap().clone();
    let real = state.pids[&reused];
    footprint.pids.push(real);
    let wrong_start = xtests::process::start_time(bystander_pid).unwrap() + 1;
    state
        .pids
        .insert(reused.clone(), (bystander_pid, wrong_start));
    state.save(&lab.dir).unwrap();
    eprintln!("killed {dead} (pid {dead_pid}) and the postmaster ({postmaster}); {reused}'s pid now names an unrelated `sleep` ({bystander_pid})");
    lab.down();
    let bystander_alive = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(
        bystander_alive,
        "lab down signalled an unrelated process whose pid it had on record"
    );
    assert_eq!(lab.leftovers(&footprint), Vec::<String>::new());
    lab.assert_database_kept();

    // PostgreSQL recovers its SIGKILLed cluster: the order is still there.
    lab.up();
    lab.assert_order_kept(&order);
    let footprint = lab.footprint();
    lab.down();
    assert_eq!(lab.leftovers(&footprint), Vec::<String>::new());
    lab.assert_database_kept();
}
