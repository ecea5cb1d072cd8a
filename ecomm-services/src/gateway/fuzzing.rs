//! Entry points for the fuzz targets under `fuzz/` (feature `fuzzing`; not API, hidden from
//! the docs): the upstream response head parser and the chunked decoder, run over a whole
//! buffer the way [`UpstreamConn`](super::UpstreamConn) runs them over what it has read.

use bytes::Bytes;
use http::Response;

use super::chunked::{decode_chunked, Chunked};
use super::upstream_conn::{parse_response, ExchangeError};

/// Parses `buf` as an upstream response (head, then the body its framing announces) and
/// builds the response the gateway would forward; `None` when more bytes are needed.
pub fn response(
    buf: &[u8],
    head_request: bool,
    max_body: usize,
) -> Result<Option<Response<Bytes>>, ExchangeError> {
    parse_response(buf, head_request, max_body)
}

/// Decodes the chunked body at the start of `buf`: the body and the bytes it took, or
/// `None` when more bytes are needed.
pub fn chunked(buf: &[u8], max: usize) -> Result<Option<(Bytes, usize)>, ExchangeError> {
    Ok(match decode_chunked(buf, max)? {
        Chunked::Complete { body, consumed } => Some((body, consumed)),
        Chunked::Incomplete => None,
    })
}
