//! `ecomm healthcheck URL` exits 0 on 2xx and 1 otherwise.

mod support;

use std::process::Command;
use std::sync::atomic::Ordering;

use support::upstream::Upstream;

fn healthcheck(url: &str) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_ecomm"))
        .args(["healthcheck", url])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

#[test]
fn exit_codes_follow_the_answer() {
    let upstream = Upstream::start("a");
    let url = format!("http://{}/readyz", upstream.addr);
    assert_eq!(healthcheck(&url), 0, "2xx");

    upstream.seen.unready.store(true, Ordering::SeqCst);
    assert_eq!(healthcheck(&url), 1, "503");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(
        healthcheck(&format!("http://{closed}/readyz")),
        1,
        "refused"
    );
    assert_eq!(healthcheck("not a url"), 1, "invalid URL");
}
