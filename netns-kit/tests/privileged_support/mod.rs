//! Shared by the privileged integration tests: the root check that skips (or fails under
//! ECOMM_REQUIRE_ALL=1), and small fixtures.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// True if the test may touch the kernel; otherwise prints why it skips. Under
/// ECOMM_REQUIRE_ALL=1 a missing capability fails the test instead.
pub fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("ECOMM_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{test}: needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and ECOMM_REQUIRE_ALL=1 is set");
    }
    eprintln!("skipping {test}: needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)");
    false
}

/// A TCP server that accepts and closes connections until dropped.
pub struct Acceptor {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Serve on `listener` (already bound inside its namespace).
    pub fn serve(listener: TcpListener) -> Acceptor {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => drop(s),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
        });
        Acceptor {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
