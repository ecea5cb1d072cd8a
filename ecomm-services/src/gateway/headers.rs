//! Header rewriting at the proxy boundary: hop-by-hop headers removed both ways,
//! X-Forwarded-For appended.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::http::REQUEST_ID;

/// Hop-by-hop headers (RFC 9110 §7.6.1) that never cross the proxy.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The `X-Forwarded-For` header name.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Removes hop-by-hop headers, including every header the `Connection` header names.
/// One pass over the names first: the common case (none present) costs no hash lookups.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let present = headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name.as_str() == "proxy-connection");
    if !present {
        return;
    }
    if let Some(connection) = headers.get(header::CONNECTION) {
        let named: Vec<HeaderName> = connection
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("proxy-connection");
}

/// Appends `client` to `X-Forwarded-For` (creating it when absent).
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    use std::io::Write as _;
    let mut buf = Vec::with_capacity(64);
    if let Some(existing) = headers.get(&X_FORWARDED_FOR) {
        if !existing.is_empty() {
            buf.extend_from_slice(existing.as_bytes());
            buf.extend_from_slice(b", ");
        }
    }
    let _ = write!(buf, "{client}");
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(buf)) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
}

/// Whether `name` is hop-by-hop: listed in RFC 9110 §7.6.1, `proxy-connection`, or named
/// by the message's `Connection` header (`connection`: its value, if any).
pub fn is_hop_by_hop(name: &[u8], connection: Option<&[u8]>) -> bool {
    let listed = HOP_BY_HOP
        .iter()
        .any(|hop| hop.as_str().as_bytes().eq_ignore_ascii_case(name))
        || name.eq_ignore_ascii_case(b"proxy-connection");
    listed
        || connection.is_some_and(|value| {
            value
                .split(|b| *b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(name))
        })
}

/// Writes the request header lines an upstream gets, straight from the client's `headers`:
/// hop-by-hop headers left out, `X-Forwarded-For` with `client` appended, `X-Request-Id`
/// set to `request_id`, and `Content-Length`/`Expect` left to the caller (it sends the body
/// whole). Equivalent to [`strip_hop_by_hop`] + [`append_forwarded_for`] + an insert, with no
/// header map changes.
pub fn write_upstream_headers(
    out: &mut Vec<u8>,
    headers: &HeaderMap,
    client: IpAddr,
    request_id: &HeaderValue,
) {
    let connection = headers.get(header::CONNECTION).map(HeaderValue::as_bytes);
    let mut forwarded: Option<&HeaderValue> = None;
    let mut extra_forwarded = false;
    for (name, value) in headers {
        if *name == X_FORWARDED_FOR {
            if forwarded.is_some() {
                extra_forwarded = true;
            } else {
                forwarded = Some(value);
            }
            continue;
        }
        if *name == REQUEST_ID
            || *name == header::CONTENT_LENGTH
            || *name == header::EXPECT
            || is_hop_by_hop(name.as_str().as_bytes(), connection)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if extra_forwarded {
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if !value.is_empty() {
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b", ");
            }
        }
    } else if let Some(value) = forwarded.filter(|v| !v.is_empty()) {
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b", ");
    }
    push_ip(out, client);
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(request_id.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `ip` in its usual text form (IPv4 without `fmt`: this runs once per request).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.255.9",
            "255.255.255.255",
            "::1",
            "fd00::7:1",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().into_bytes(), "{text}");
        }
    }

    #[test]
    fn strips_listed_and_named_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::ACCEPT));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, [10, 0, 0, 1].into());
        append_forwarded_for(&mut headers, [10, 0, 0, 2].into());
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2");
    }

    #[test]
    fn upstream_header_lines_leave_out_hop_by_hop_and_add_forwarding() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("x-secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        headers.insert(&REQUEST_ID, HeaderValue::from_static("old"));
        let mut out = Vec::new();
        write_upstream_headers(
            &mut out,
            &headers,
            [10, 0, 0, 3].into(),
            &HeaderValue::from_static("abc"),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "accept: */*\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2, 10.0.0.3\r\nx-request-id: abc\r\n"
        );
    }

    #[test]
    fn hop_by_hop_names_include_those_the_connection_header_lists() {
        assert!(is_hop_by_hop(b"Keep-Alive", None));
        assert!(is_hop_by_hop(b"x-hop", Some(b"close, X-Hop")));
        assert!(!is_hop_by_hop(b"x-end-to-end", Some(b"close, x-hop")));
    }
}
