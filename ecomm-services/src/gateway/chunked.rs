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
        let size = chunk_size(&buf[at..at + line_end])?;
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
        if size > max.saturating_sub(body.len()) {
            return Err(ExchangeError::TooLarge(max));
        }
        // Where the chunk and its CRLF end; past usize::MAX no buffer can ever hold it.
        let Some(end) = at.checked_add(size).and_then(|end| end.checked_add(2)) else {
            return Err(ExchangeError::Malformed(format!(
                "chunk size {size:#x} does not fit in memory"
            )));
        };
        if buf.len() < end {
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

/// The size of a chunk-size line (`1*HEXDIG [ chunk-ext ]`, RFC 9112 §7.1): 1 to 16 hex
/// digits, nothing else (no sign, no `0x`), before any `;` extension.
fn chunk_size(line: &[u8]) -> Result<usize, ExchangeError> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or(b"")
        .trim_ascii();
    let invalid = || {
        ExchangeError::Malformed(format!(
            "invalid chunk size {:?}: expected 1 to 16 hex digits",
            String::from_utf8_lossy(&digits[..digits.len().min(32)])
        ))
    };
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid());
    }
    let size = digits.iter().fold(0u64, |size, digit| {
        // At most 16 hex digits: the shift never drops a set bit.
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => digit - b'A' + 10,
        };
        (size << 4) | u64::from(value)
    });
    usize::try_from(size).map_err(|_| invalid())
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
    fn a_huge_hex_size_under_an_unbounded_cap_is_a_typed_error_not_an_overflow() {
        // 16 hex digits: usize::MAX bytes announced, with no cap that would refuse them.
        assert!(matches!(
            decode_chunked(b"ffffffffffffffff\r\n", usize::MAX),
            Err(ExchangeError::Malformed(_))
        ));
        assert!(matches!(
            decode_chunked(b"fffffffffffffffe\r\nab", usize::MAX),
            Err(ExchangeError::Malformed(_))
        ));
    }

    #[test]
    fn a_size_with_a_sign_or_non_hex_digits_is_refused() {
        for wire in [
            &b"+4\r\nWiki\r\n0\r\n\r\n"[..],
            b"0x4\r\nWiki\r\n0\r\n\r\n",
            b"-0\r\n\r\n",
        ] {
            assert!(
                matches!(decode_chunked(wire, 1024), Err(ExchangeError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
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
