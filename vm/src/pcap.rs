//! A minimal pcap (libpcap classic format, Ethernet link type) writer for the switch's
//! frame capture: open the file with Wireshark or `tcpdump -r`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Largest frame recorded whole (longer frames are truncated in the file), bytes.
const SNAPLEN: u32 = 65535;
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;

/// An open capture file.
#[derive(Debug)]
pub struct PcapWriter {
    file: File,
}

impl PcapWriter {
    /// Creates (truncates) `path` and writes the global header.
    pub fn create(path: &Path) -> Result<PcapWriter> {
        let mut file = File::create(path).map_err(Error::io("create capture", path))?;
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&SNAPLEN.to_le_bytes());
        header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        file.write_all(&header)
            .map_err(Error::io("write capture", path))?;
        Ok(PcapWriter { file })
    }

    /// Appends one frame with the current time; errors are ignored (capture is best effort).
    pub fn record(&mut self, frame: &[u8]) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let kept = frame.len().min(SNAPLEN as usize);
        let mut rec = Vec::with_capacity(16 + kept);
        rec.extend_from_slice(&(now.as_secs() as u32).to_le_bytes());
        rec.extend_from_slice(&now.subsec_micros().to_le_bytes());
        rec.extend_from_slice(&(kept as u32).to_le_bytes());
        rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        rec.extend_from_slice(&frame[..kept]);
        let _ = self.file.write_all(&rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_is_a_header_then_one_record_per_frame() {
        let path = std::env::temp_dir().join(format!("vm-pcap-test-{}.pcap", std::process::id()));
        let mut w = PcapWriter::create(&path).unwrap();
        w.record(&[0xffu8; 60]);
        drop(w);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(bytes.len(), 24 + 16 + 60);
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(
            u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
            LINKTYPE_ETHERNET
        );
        assert_eq!(u32::from_le_bytes(bytes[32..36].try_into().unwrap()), 60);
    }
}
