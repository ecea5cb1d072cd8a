//! Decoding a whole `Transfer-Encoding: chunked` body (RFC 9112 §7.1) from a buffer, for
//! upstream responses the gateway buffers before answering.

use bytes::Bytes;

use super::upstream_conn::ExchangeError;

/// Longest chunk-size line accepted (size, extensions), in bytes.
const MAX_LINE: usize = 4096;

/// Result of decoding what has arrived so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// More bytes are needed.
    Incomplete,
    /// The whole body, and how many bytes of the buffer it (with trailers) took.
    Complete {
        /// The decoded body.
        body: Bytes,
        /// Bytes consumed from the buffer.
        consumed: usize,
    },
}

/// Decodes the chunked body at the start of `buf`, refusing bodies above `max` bytes.
pub fn decode_chunked(buf: &[u8], max: usize) -> Result<Chunked, ExchangeError> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&buf[at..]) else {
            return too_long_or_incomplete(buf.len() - at);
        };
        let line = &buf[at..at + line_end];
        let size_text = line
            .split(|b| *b == b';')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|t| !t.is_empty() && t.len() <= 16)
            .and_then(|t| usize::from_str_radix(t, 16).ok())
            .ok_or_else(|| ExchangeError::Malformed("invalid chunk size".into()))?;
        at += line_end + 2;
        if size == 0 {
            // Trailer section: header lines until an empty line (trailers are dropped).
            loop {
                let Some(end) = find_crlf(&buf[at..]) else {
                    return too_long_or_incomplete(buf.len() - at);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Chunked::Complete {
                        body: Bytes::from(body),
                        consumed: at,
                    });
                }
            }
        }
        if body.len().saturating_add(size) > max {
            return Err(ExchangeError::TooLarge(max));
        }
        if buf.len() < at + size + 2 {
            return Ok(Chunked::Incomplete);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size;
        if &buf[at..at + 2] != b"\r\n" {
            return Err(ExchangeError::Malformed(
                "chunk not followed by CRLF".into(),
            ));
        }
        at += 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn too_long_or_incomplete(pending: usize) -> Result<Chunked, ExchangeError> {
    if pending > MAX_LINE {
        Err(ExchangeError::Malformed("chunk line too long".into()))
    } else {
        Ok(Chunked::Incomplete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let decoded = decode_chunked(wire, 1024).unwrap();
        assert_eq!(
            decoded,
            Chunked::Complete {
                body: Bytes::from_static(b"Wikipedia"),
                consumed: wire.len() - 4,
            }
        );
    }

    #[test]
    fn a_partial_body_needs_more_bytes() {
        assert_eq!(
            decode_chunked(b"4\r\nWi", 1024).unwrap(),
            Chunked::Incomplete
        );
        assert_eq!(
            decode_chunked(b"4\r\nWiki\r\n0\r\n", 1024).unwrap(),
            Chunked::Incomplete
        );
    }

    #[test]
    fn garbage_and_oversize_are_refused() {
        assert!(matches!(
            decode_chunked(b"zz\r\n", 1024),
            Err(ExchangeError::Malformed(_))
        ));
        assert!(matches!(
            decode_chunked(b"400\r\n", 16),
            Err(ExchangeError::TooLarge(16))
        ));
    }
}
