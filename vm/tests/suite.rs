//! The multi-VM suite (custom harness: one cluster shared by every scenario).
//! Lands after the driver; see the vm issue.

fn main() {
    eprintln!("suite: no scenarios yet");
}
