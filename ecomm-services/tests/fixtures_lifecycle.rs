//! The PostgreSQL and Redis fixtures start real servers, survive a stop/restart on the same
//! port, and leave no process or directory behind when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;

use ecomm_services::fixtures::{or_skip, Postgres, Redis};

fn process_exists(pid: u32) -> bool {
    netns_kit::procfs::is_running(pid)
}

fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

#[test]
fn redis_starts_restarts_on_the_same_port_and_cleans_up() {
    let Some(mut redis) = or_skip(Redis::start()) else {
        return;
    };
    let port = redis.port();
    let first_pid = redis.pid().unwrap();
    assert!(redis_ping(port), "a fresh redis answers PING");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));

    redis.kill();
    assert!(!redis_ping(port), "a killed redis is gone");
    assert!(redis.pid().is_none());

    redis.restart().unwrap();
    assert_eq!(redis.port(), port, "restart keeps the port");
    assert!(redis_ping(port));
    let second_pid = redis.pid().unwrap();
    assert_ne!(first_pid, second_pid);

    redis.stop().unwrap();
    assert!(!redis_ping(port));
    redis.restart().unwrap();
    let third_pid = redis.pid().unwrap();
    drop(redis);
    assert!(!process_exists(third_pid), "drop kills redis-server");
    assert!(!redis_ping(port));
}

#[tokio::test]
async fn postgres_starts_answers_sql_restarts_and_cleans_up() {
    let Some(mut pg) = or_skip(Postgres::start()) else {
        return;
    };
    let url = pg.url("postgres");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client.query_one("SELECT 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    client
        .batch_execute("CREATE DATABASE survives")
        .await
        .unwrap();
    drop(client);

    let port = pg.port();
    pg.stop().unwrap();
    assert!(pg.pid().is_none());
    assert!(tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .is_err());

    pg.restart().unwrap();
    assert_eq!(pg.port(), port, "restart keeps the port");
    let (client, conn) = tokio_postgres::connect(&pg.url("survives"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.query_one("SELECT 1", &[]).await.unwrap();
    drop(client);

    pg.kill();
    pg.restart().unwrap();
    let pid = pg.pid().unwrap();
    let data_dir = pg.data_dir();
    assert!(data_dir.exists());
    drop(pg);
    assert!(!process_exists(pid), "drop stops the postmaster");
    assert!(!data_dir.exists(), "drop removes the data directory");
}

/// Set in the child process of `servers_die_with_a_sigkilled_test_process`.
const VICTIM_ENV: &str = "ECOMM_FIXTURE_VICTIM";

/// Not a test on its own: the process that gets SIGKILLed by
/// `servers_die_with_a_sigkilled_test_process`. Starts both servers, reports their pids and
/// directories on stdout, then waits to be killed.
#[test]
#[ignore = "run as a child by servers_die_with_a_sigkilled_test_process"]
fn victim_holding_servers() {
    if std::env::var_os(VICTIM_ENV).is_none() {
        eprintln!("only meaningful as the child of servers_die_with_a_sigkilled_test_process");
        return;
    }
    let redis = Redis::start().unwrap();
    let pg = Postgres::start().unwrap();
    println!(
        "VICTIM {} {} {}",
        redis.pid().unwrap(),
        pg.pid().unwrap(),
        pg.data_dir().parent().unwrap().display()
    );
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(300));
}

#[test]
fn servers_die_with_a_sigkilled_test_process_and_their_dirs_are_swept() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    // Skip (or fail under ECOMM_REQUIRE_ALL) exactly as the fixtures themselves would.
    let Some(probe) = or_skip(Redis::start()) else {
        return;
    };
    drop(probe);

    let mut victim = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "victim_holding_servers",
            "--nocapture",
        ])
        .env(VICTIM_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = victim.stdout.take().unwrap();
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find(|l| l.starts_with("VICTIM "))
        .expect("the victim reports its servers");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let redis_pid: u32 = fields[1].parse().unwrap();
    let pg_pid: u32 = fields[2].parse().unwrap();
    let pg_dir = std::path::PathBuf::from(fields[3]);
    assert!(process_exists(redis_pid) && process_exists(pg_pid));
    assert!(pg_dir.exists());

    victim.kill().unwrap(); // SIGKILL: no destructor runs in the victim.
    victim.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while (process_exists(redis_pid) || process_exists(pg_pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !process_exists(redis_pid),
        "redis-server outlived its test process"
    );
    assert!(
        !process_exists(pg_pid),
        "postgres outlived its test process"
    );

    let swept = ecomm_services::fixtures::remove_fixture_leftovers();
    assert!(swept.contains(&pg_dir), "{pg_dir:?} not in {swept:?}");
    assert!(!pg_dir.exists());
}
