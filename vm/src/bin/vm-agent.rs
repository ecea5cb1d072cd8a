//! The guest agent: PID 1 in every VM. It finds the virtio serial port named
//! `vm.agent`, answers length-prefixed JSON requests on it one at a time (run a
//! command, spawn a background process, read or write a file), and reaps every
//! process in the guest (as init must). Its own log goes to the console (ttyS0).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use vm::protocol::{read_frame, write_frame, Envelope, Request, Response};

/// The virtio serial port name the host's `virtserialport` carries.
const PORT_NAME: &str = "vm.agent";
/// How long output readers may linger after the command exited (grandchildren holding the pipe).
const DRAIN: Duration = Duration::from_millis(500);

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
