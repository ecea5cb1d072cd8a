//! The guest agent: PID 1 in every VM. It finds the virtio serial port named
//! `vm.agent`, answers length-prefixed JSON requests on it one at a time (run a
//! command, spawn a background process, read or write a file, start a TCP exchange on a
//! thread of its own and hand out the finished ones), and reaps every
//! process in the guest (as init must). Its own log goes to the console (ttyS0).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use vm::protocol::{read_frame, write_frame, Envelope, Exchanged, Request, Response};

/// The virtio serial port name the host's `virtserialport` carries.
const PORT_NAME: &str = "vm.agent";
/// How long output readers may linger after the command exited (grandchildren holding the pipe).
const DRAIN: Duration = Duration::from_millis(500);

/// The next exchange's job id.
static NEXT_JOB: AtomicU64 = AtomicU64::new(1);
/// Finished exchanges not yet collected.
static EXCHANGED: Mutex<Vec<Exchanged>> = Mutex::new(Vec::new());

/// Exit statuses collected by the reaper, by pid.
#[derive(Default)]
struct Reaped {
    statuses: Mutex<HashMap<u32, i32>>,
    changed: Condvar,
}

impl Reaped {
    /// Waits until `pid` has exited or `deadline` passes; returns its code.
    fn wait(&self, pid: u32, deadline: Instant) -> Option<i32> {
        let mut map = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(code) = map.remove(&pid) {
                return Some(code);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            map = self
                .changed
                .wait_timeout(map, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

fn log(msg: &str) {
    eprintln!("vm-agent: {msg}");
}

fn main() {
    // SAFETY: setting env vars before any thread is spawned.
    unsafe {
        std::env::set_var(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        std::env::set_var("HOME", "/root");
    }
    let reaped = Arc::new(Reaped::default());
    {
        let reaped = reaped.clone();
        std::thread::spawn(move || reap(&reaped));
    }
    let port = loop {
        match find_port() {
            Some(p) => break p,
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    log(&format!("serving on {}", port.display()));
    loop {
        match serve(&port, &reaped) {
            Ok(()) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                log(&format!("port error: {e}"));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Reaps every child (init duty) and records exit codes for waiters.
fn reap(reaped: &Reaped) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer to a local c_int.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid <= 0 {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        let mut map = reaped.statuses.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(pid as u32, code);
        if map.len() > 10_000 {
            map.clear();
        }
        reaped.changed.notify_all();
    }
}

/// The `/dev/vportNpM` whose sysfs name is [`PORT_NAME`].
fn find_port() -> Option<PathBuf> {
    for entry in fs::read_dir("/sys/class/virtio-ports").ok()?.flatten() {
        let name = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim() == PORT_NAME {
            return Some(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    None
}

fn serve(port: &PathBuf, reaped: &Reaped) -> std::io::Result<()> {
    let mut reader = OpenOptions::new().read(true).write(true).open(port)?;
    let mut writer = reader.try_clone()?;
    loop {
        let req: Envelope<Request> = match read_frame(&mut reader) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let resp = handle(req.msg, reaped);
        write_frame(
            &mut writer,
            &Envelope {
                id: req.id,
                msg: resp,
            },
        )?;
    }
}

fn handle(req: Request, reaped: &Reaped) -> Response {
    let result = match req {
        Request::Ping => Ok(Response::Pong {
            uptime_ms: uptime_ms(),
        }),
        Request::Run { cmd, timeout_ms } => run(&cmd, Duration::from_millis(timeout_ms), reaped),
        Request::Spawn { cmd, log } => spawn(&cmd, &log),
        Request::WriteFile {
            path,
            data_b64,
            mode,
        } => write_file(&path, &data_b64, mode),
        Request::ReadFile { path } => fs::read(&path)
            .map(|d| Response::Data {
                data_b64: base64::engine::general_purpose::STANDARD.encode(d),
            })
            .map_err(|e| format!("read {path}: {e}")),
        Request::Exchange {
            netns,
            addr,
            data_b64,
            timeout_ms,
        } => exchange(
            netns.as_deref(),
            &addr,
            &data_b64,
            Duration::from_millis(timeout_ms),
        ),
        Request::Collect => Ok(Response::Collected {
            done: std::mem::take(&mut *EXCHANGED.lock().unwrap_or_else(|p| p.into_inner())),
        }),
    };
    result.unwrap_or_else(|message| Response::Error { message })
}

fn uptime_ms() -> u64 {
    let text = fs::read_to_string("/proc/uptime").unwrap_or_default();
    let secs: f64 = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    (secs * 1000.0) as u64
}

fn run(cmd: &str, timeout: Duration, reaped: &Reaped) -> Result<Response, String> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("spawn /bin/sh: {e}"))?;
    let pid = child.id();
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    // The reaper owns waiting; `child` is dropped without wait (std does not reap on drop).
    drop(child);
    let started = Instant::now();
    let (code, timed_out) = match reaped.wait(pid, started + timeout) {
        Some(code) => (code, false),
        None => {
            // SAFETY: kill(2) on our own process group; no memory involved.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            (
                reaped
                    .wait(pid, Instant::now() + Duration::from_secs(5))
                    .unwrap_or(137),
                true,
            )
        }
    };
    let stdout = out.recv_timeout(DRAIN).unwrap_or_default();
    let stderr = err.recv_timeout(DRAIN).unwrap_or_default();
    Ok(Response::Ran {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
    })
}

/// Reads a pipe to its end on a thread; the result arrives on the channel.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

fn spawn(cmd: &str, log: &str) -> Result<Response, String> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("open log {log}: {e}"))?;
    let file2 = file
        .try_clone()
        .map_err(|e| format!("dup log {log}: {e}"))?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| format!("spawn /bin/sh: {e}"))?;
    Ok(Response::Spawned { pid: child.id() })
}

fn write_file(path: &str, data_b64: &str, mode: u32) -> Result<Response, String> {
    let data = base64::engine::general_purpose::STANDARD
        .decode(data_b64)
        .map_err(|e| format!("base64 for {path}: {e}"))?;
    if let Some(parent) = std::path::Path::new(path).parent() {
        fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    let mut f = File::create(path).map_err(|e| format!("create {path}: {e}"))?;
    std::io::Write::write_all(&mut f, &data).map_err(|e| format!("write {path}: {e}"))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {path}: {e}"))?;
    Ok(Response::Written)
}

/// Starts one TCP exchange on a thread of its own (see [`Request::Exchange`]); its outcome
/// lands in [`EXCHANGED`]. Bad input is answered at once.
fn exchange(
    netns: Option<&str>,
    addr: &str,
    data_b64: &str,
    timeout: Duration,
) -> Result<Response, String> {
    let to: SocketAddr = addr
        .parse()
        .map_err(|e| format!("exchange address {addr:?}: {e}: expected ip:port"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(data_b64)
        .map_err(|e| format!("exchange data: base64: {e}"))?;
    let ns = netns
        .map(|p| File::open(p).map_err(|e| format!("open netns {p}: {e}")))
        .transpose()?;
    let job = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
    std::thread::Builder::new()
        .name(format!("exchange-{job}"))
        .spawn(move || {
            let outcome = exchange_here(ns, to, &data, timeout);
            let (data_b64, error) = match outcome {
                Ok(got) => (
                    Some(base64::engine::general_purpose::STANDARD.encode(got)),
                    None,
                ),
                Err(e) => (None, Some(e)),
            };
            EXCHANGED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Exchanged {
                    job,
                    data_b64,
                    error,
                });
        })
        .map_err(|e| format!("start the exchange thread: {e}"))?;
    Ok(Response::Started { job })
}

/// The exchange itself, on the calling thread, which enters `ns` for good: it is a thread
/// spawned for this one exchange and ends with it.
fn exchange_here(
    ns: Option<File>,
    to: SocketAddr,
    data: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    if let Some(ns) = ns {
        // SAFETY: setns(2) on a namespace fd this thread owns; it moves only the calling
        // thread, which runs nothing after this exchange, so no other code sees the change.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
    }
    let deadline = Instant::now() + timeout;
    let said = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".to_string(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".to_string(),
        _ => e.to_string(),
    };
    let mut stream = TcpStream::connect_timeout(&to, timeout).map_err(said)?;
    stream.set_write_timeout(Some(timeout)).map_err(said)?;
    stream.write_all(data).map_err(said)?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = stream.shutdown(Shutdown::Both);
            return Err("timed out".into());
        }
        stream.set_read_timeout(Some(left)).map_err(said)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(said(e)),
        }
    }
}
