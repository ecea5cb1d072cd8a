//! The `netns-kit` command-line tool.

fn main() {
    eprintln!("netns-kit: error: the CLI is not built yet");
    std::process::exit(1);
}
