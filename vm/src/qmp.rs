//! A minimal QMP client (QEMU Machine Protocol over a unix socket) for lifecycle:
//! `stop`/`cont` (freeze/thaw), `system_reset`, `quit`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// A negotiated QMP session.
#[derive(Debug)]
pub struct Qmp {
    vm: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `path`, reads the greeting and leaves capabilities negotiation mode.
    pub fn connect(vm: &str, path: &Path) -> Result<Qmp> {
        let err = |detail: String| Error::Qmp {
            vm: vm.to_string(),
            command: "connect".into(),
            detail,
        };
        let stream =
            UnixStream::connect(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| err(e.to_string()))?;
        let writer = stream.try_clone().map_err(|e| err(e.to_string()))?;
        let mut qmp = Qmp {
            vm: vm.to_string(),
            reader: BufReader::new(stream),
            writer,
        };
        let mut greeting = String::new();
        qmp.reader
            .read_line(&mut greeting)
            .map_err(|e| err(format!("greeting: {e}")))?;
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    /// Executes a QMP command without arguments and waits for its `return`.
    pub fn execute(&mut self, command: &str) -> Result<()> {
        let err = |detail: String| Error::Qmp {
            vm: self.vm.clone(),
            command: command.to_string(),
            detail,
        };
        let line = format!("{{\"execute\":\"{command}\"}}\n");
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        loop {
            let mut reply = String::new();
            let n = self
                .reader
                .read_line(&mut reply)
                .map_err(|e| err(e.to_string()))?;
            if n == 0 {
                // `quit` closes the socket instead of answering, sometimes.
                return if command == "quit" {
                    Ok(())
                } else {
                    Err(err("connection closed".into()))
                };
            }
            let value: serde_json::Value =
                serde_json::from_str(&reply).map_err(|e| err(format!("{e}: {reply}")))?;
            if value.get("return").is_some() {
                return Ok(());
            }
            if let Some(e) = value.get("error") {
                return Err(err(e.to_string()));
            }
            // An asynchronous event: keep reading.
        }
    }
}
