//! One reader of `/proc/<pid>/stat` (proc(5)): the process state, parent, group, CPU times
//! and start time that supervisors, leak checks and benchmarks need.
//!
//! The command name (field 2) may contain spaces and parentheses, so fields are counted after
//! the *last* `)`.
//!
//! ```
//! let me = netns_kit::procfs::Stat::of(std::process::id()).expect("this process is alive");
//! assert!(!me.is_zombie());
//! assert_eq!(me.start_time, netns_kit::procfs::start_time(std::process::id()).unwrap());
//! ```

/// The fields of `/proc/<pid>/stat` this crate and its users read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `T` (stopped), `X` (dead), …
    pub state: char,
    /// Field 4: the parent's pid.
    pub ppid: i32,
    /// Field 5: the process group id.
    pub pgrp: i32,
    /// Field 14: user CPU time, in clock ticks.
    pub utime: u64,
    /// Field 15: system CPU time, in clock ticks.
    pub stime: u64,
    /// Field 22: the start time, in clock ticks after boot. With the pid it names one process
    /// for good: a reused pid has a later start time.
    pub start_time: u64,
}

impl Stat {
    /// Reads `/proc/<pid>/stat`; `None` if the process is gone (or the file is not what
    /// proc(5) describes).
    pub fn of(pid: u32) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Parses the text of a `stat` file.
    pub fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        // `fields[0]` is field 3 of proc(5).
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).copied();
        Some(Stat {
            state: field(3)?.chars().next()?,
            ppid: field(4)?.parse().ok()?,
            pgrp: field(5)?.parse().ok()?,
            utime: field(14)?.parse().ok()?,
            stime: field(15)?.parse().ok()?,
            start_time: field(22)?.parse().ok()?,
        })
    }

    /// An exited process not yet reaped (`Z`), or a dead one (`X`).
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }

    /// User plus system CPU time, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime + self.stime
    }
}

/// The start time of `pid` if it is running and not a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    Stat::of(pid)
        .filter(|s| !s.is_zombie())
        .map(|s| s.start_time)
}

/// Whether `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    start_time(pid).is_some()
}

/// Whether `pid` is the very process that had `start_time` (same pid, same start, not a
/// zombie).
pub fn is_same_process(pid: u32, start_time: u64) -> bool {
    self::start_time(pid) == Some(start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 \
                    123456 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = Stat::parse(line).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                utime: 7,
                stime: 3,
                start_time: 123456,
            }
        );
        assert_eq!(s.cpu_ticks(), 10);
        assert!(!s.is_zombie());
    }

    #[test]
    fn truncated_or_foreign_text_is_none_not_a_panic() {
        for bad in [
            "",
            "12 (x",
            "12 (x) S 1",
            "12 (x) S one 2 3 4 5 6 7 8 9 10 11 12",
        ] {
            assert_eq!(Stat::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn this_process_is_itself_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let start = start_time(pid).unwrap();
        assert!(is_same_process(pid, start));
        assert!(!is_same_process(pid, start + 1));
        assert!(is_running(pid));
    }

    #[test]
    fn a_zombie_has_no_start_time() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not waited for: once it exits it stays a zombie until `child` is reaped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Stat::of(pid).is_some_and(|s| !s.is_zombie()) {
            assert!(std::time::Instant::now() < deadline, "`true` did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(Stat::of(pid).unwrap().is_zombie());
        assert_eq!(start_time(pid), None);
        child.wait().unwrap();
    }
}
