//! Request limits at the gateway, against the real `ecomm gateway` and a real upstream: a
//! head over the total bound, a header line over its bound or too many header lines get 431,
//! a request line over its bound 414, a body over the cap 413 — problem+json, counted in
//! `/metrics`, and never forwarded — while a request exactly at each bound goes through.

mod support;

use std::net::SocketAddr;

use support::client;
use support::ecomm::Ecomm;
use support::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The defaults `ecomm gateway --help` states.
const MAX_HEAD: usize = 60 * 1024;
const MAX_REQUEST_LINE: usize = 8 * 1024;
const MAX_HEADER_LINE: usize = 8 * 1024;
const MAX_HEADERS: usize = 96;

/// A gateway with default limits in front of one upstream serving both routes.
fn stack(extra: &[&str]) -> (Upstream, Ecomm, SocketAddr) {
    let upstream = Upstream::start("a");
    let addr = upstream.addr.to_string();
    let mut args = vec!["--product-upstreams", &addr, "--order-upstreams", &addr];
    args.extend_from_slice(extra);
    let (gateway, gw) = Ecomm::gateway(&args);
    (upstream, gateway, gw)
}

/// `GET target` with `host`, `connection: close` and `headers`, as raw bytes.
fn get(target: &str, headers: &[String]) -> Vec<u8> {
    let mut head = format!("GET {target} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n");
    for line in headers {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// `GET /api/products/1` whose head is exactly `total` bytes, padded with header lines of
/// at most `max_line` bytes (line end included).
fn get_of_size(total: usize, max_line: usize) -> Vec<u8> {
    let base = get("/api/products/1", &[]).len();
    let mut remaining = total - base;
    let mut headers = Vec::new();
    while remaining > 0 {
        let mut take = remaining.min(max_line);
        if remaining - take > 0 && remaining - take < 16 {
            take -= 16;
        }
        // "x-fNN: " is 7 bytes, the CRLF 2.
        headers.push(format!("x-f{:02}: {}", headers.len(), "a".repeat(take - 9)));
        remaining -= take;
    }
    let wire = get("/api/products/1", &headers);
    assert_eq!(wire.len(), total);
    wire
}

/// Header lines `x-hNNN: 1`, `count` of them.
fn small_headers(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("x-h{i:03}: 1")).collect()
}

/// Sends `request` on a fresh connection; everything the gateway answers until it closes.
async fn exchange(gw: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(gw).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_to_close(&mut stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the gateway closes the connection")
    .expect("the answer is read, not reset");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads exactly one response (head and Content-Length body) off a keep-alive connection.
async fn read_one(stream: &mut TcpStream) -> String {
    let mut wire = Vec::new();
    let mut byte = [0u8; 1];
    while !wire.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        wire.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&wire).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    wire.extend_from_slice(&body);
    String::from_utf8_lossy(&wire).into_owned()
}

/// Asserts `answer` is one problem+json response with `status` and `type` `slug`.
fn assert_problem(answer: &str, status: u16, slug: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "expected {status}: {answer:.300}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let head = head.to_lowercase();
    assert!(
        head.contains("\r\ncontent-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("\r\nx-request-id: "), "{head}");
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["type"], format!("urn:ecomm:problem:{slug}"));
    assert_eq!(problem["status"], status);
}

fn assert_ok(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:.300}");
}

/// `gateway_requests_rejected_total{reason="…"}` as `/metrics` reports it.
async fn rejected(gw: SocketAddr, reason: &str) -> u64 {
    let metrics = client()
        .get(format!("http://{gw}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("gateway_requests_rejected_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in {metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_100_kb_header_gets_431_and_never_reaches_the_upstream() {
    let (upstream, _gateway, gw) = stack(&[]);
    assert_eq!(rejected(gw, "header_line_too_long").await, 0);

    let answer = exchange(
        gw,
        &get(
            "/api/products/1",
            &[format!("x-big: {}", "a".repeat(100_000))],
        ),
    )
    .await;

    assert_problem(&answer, 431, "request-header-fields-too-large");
    assert_eq!(upstream.gets(), 0, "the upstream never saw the request");
    assert_eq!(rejected(gw, "header_line_too_long").await, 1);
}

#[tokio::test]
async fn a_head_over_the_total_bound_gets_431_and_one_at_the_bound_passes() {
    let (upstream, _gateway, gw) = stack(&[]);

    let over = exchange(gw, &get_of_size(MAX_HEAD + 1, 8000)).await;
    assert_problem(&over, 431, "request-header-fields-too-large");
    assert!(over.contains("request head exceeds 61440 bytes"), "{over}");
    assert_eq!(upstream.gets(), 0, "the upstream never saw the request");
    assert_eq!(rejected(gw, "head_too_large").await, 1);

    let at = exchange(gw, &get_of_size(MAX_HEAD, 8000)).await;
    assert_ok(&at);
    assert_eq!(upstream.gets(), 1);
    assert_eq!(rejected(gw, "head_too_large").await, 1);
}

#[tokio::test]
async fn a_header_line_over_its_bound_gets_431_and_one_at_the_bound_passes() {
    let (upstream, _gateway, gw) = stack(&[]);
    // "x-big: " is 7 bytes of the line.
    let line = |len: usize| format!("x-big: {}", "b".repeat(len - 7));

    let over = exchange(gw, &get("/api/products/1", &[line(MAX_HEADER_LINE + 1)])).await;
    assert_problem(&over, 431, "request-header-fields-too-large");
    assert_eq!(upstream.gets(), 0, "the upstream never saw the request");
    assert_eq!(rejected(gw, "header_line_too_long").await, 1);

    let at = exchange(gw, &get("/api/products/1", &[line(MAX_HEADER_LINE)])).await;
    assert_ok(&at);
    assert_eq!(upstream.gets(), 1);
    let seen = upstream.seen.last_headers.lock().unwrap()["x-big"].len();
    assert_eq!(seen, MAX_HEADER_LINE - 7, "the header was forwarded whole");
}

#[tokio::test]
async fn too_many_header_lines_get_431_and_exactly_the_bound_passes() {
    let (upstream, _gateway, gw) = stack(&[]);
    // host and connection are two of the lines.
    let over = exchange(
        gw,
        &get("/api/products/1", &small_headers(MAX_HEADERS + 1 - 2)),
    )
    .await;
    assert_problem(&over, 431, "request-header-fields-too-large");
    assert_eq!(upstream.gets(), 0, "the upstream never saw the request");
    assert_eq!(rejected(gw, "too_many_headers").await, 1);

    let at = exchange(gw, &get("/api/products/1", &small_headers(MAX_HEADERS - 2))).await;
    assert_ok(&at);
    assert_eq!(upstream.gets(), 1);
}

#[tokio::test]
async fn a_request_line_over_its_bound_gets_414_and_one_at_the_bound_passes() {
    let (upstream, _gateway, gw) = stack(&[]);
    // "GET " + target + " HTTP/1.1"
    let target = |line: usize| format!("/api/products/{}", "7".repeat(line - 13 - 14));

    let over = exchange(gw, &get(&target(MAX_REQUEST_LINE + 1), &[])).await;
    assert_problem(&over, 414, "uri-too-long");
    assert_eq!(upstream.gets(), 0, "the upstream never saw the request");
    assert_eq!(rejected(gw, "request_line_too_long").await, 1);

    let at = exchange(gw, &get(&target(MAX_REQUEST_LINE), &[])).await;
    assert_ok(&at);
    assert_eq!(upstream.gets(), 1);
}

#[tokio::test]
async fn a_body_over_the_cap_gets_413_counted_and_one_at_the_cap_passes() {
    let (upstream, _gateway, gw) = stack(&["--max-body-bytes", "1024"]);
    let order = |len: usize| {
        let padding = len - r#"{"customer":""}"#.len();
        format!(r#"{{"customer":"{}"}}"#, "c".repeat(padding))
    };
    let post = |body: String| {
        client()
            .post(format!("http://{gw}/api/orders"))
            .header("content-type", "application/json")
            .header("idempotency-key", "k1")
            .body(body)
            .send()
    };

    let over = post(order(1025)).await.unwrap();
    assert_eq!(over.status(), 413);
    assert_eq!(over.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = over.json().await.unwrap();
    assert_eq!(problem["type"], "urn:ecomm:problem:payload-too-large");
    assert_eq!(upstream.posts(), 0, "the upstream never saw the request");
    assert_eq!(rejected(gw, "body_too_large").await, 1);

    let at = post(order(1024)).await.unwrap();
    assert_eq!(at.status(), 201);
    assert_eq!(upstream.posts(), 1);
    assert_eq!(rejected(gw, "body_too_large").await, 1);
}

#[tokio::test]
async fn the_bounds_are_flags() {
    let (upstream, _gateway, gw) = stack(&[
        "--max-head-bytes",
        "2048",
        "--max-request-line-bytes",
        "64",
        "--max-header-line-bytes",
        "1500",
        "--max-headers",
        "4",
    ]);
    let cases = [
        (get_of_size(2049, 1000), 431, "head_too_large"),
        (
            get(&format!("/api/products/{}", "1".repeat(40)), &[]),
            414,
            "request_line_too_long",
        ),
        (
            get("/api/products/1", &[format!("x-l: {}", "l".repeat(1500))]),
            431,
            "header_line_too_long",
        ),
        (
            get("/api/products/1", &small_headers(3)),
            431,
            "too_many_headers",
        ),
    ];
    for (request, status, reason) in cases {
        let answer = exchange(gw, &request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{reason}: {answer:.200}"
        );
        assert_eq!(rejected(gw, reason).await, 1, "{reason}");
    }
    assert_eq!(upstream.gets(), 0);
    let within = exchange(gw, &get("/api/products/1", &small_headers(2))).await;
    assert_ok(&within);
    assert_eq!(upstream.gets(), 1);
}

#[tokio::test]
async fn heads_are_checked_on_keep_alive_connections_after_a_body() {
    let (upstream, _gateway, gw) = stack(&[]);
    let mut stream = TcpStream::connect(gw).await.unwrap();
    let body = r#"{"customer":"alice@example.com","items":[]}"#;
    let post = format!(
        "POST /api/orders HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\nidempotency-key: k1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(post.as_bytes()).await.unwrap();
    let first = read_one(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 201 "), "{first}");

    let oversized = get(
        "/api/products/1",
        &[format!("x-big: {}", "a".repeat(MAX_HEADER_LINE))],
    );
    stream.write_all(&oversized).await.unwrap();
    let second = read_to_close(&mut stream).await;

    assert_problem(&second, 431, "request-header-fields-too-large");
    assert_eq!(
        upstream.gets(),
        0,
        "the upstream never saw the second request"
    );
    assert_eq!(upstream.posts(), 1);
    assert_eq!(rejected(gw, "header_line_too_long").await, 1);
}

#[tokio::test]
async fn a_pipelined_head_over_a_bound_is_refused_in_turn() {
    let (upstream, _gateway, gw) = stack(&[]);
    // Both requests in one write: the second head arrives before the first request starts.
    let mut wire = b"GET /api/products/1 HTTP/1.1\r\nhost: gateway\r\n\r\n".to_vec();
    wire.extend_from_slice(&get(
        "/api/products/2",
        &[format!("x-big: {}", "a".repeat(MAX_HEADER_LINE))],
    ));

    let answers = exchange(gw, &wire).await;

    let second_at = answers.find("HTTP/1.1 431 ").expect("a 431 after the 200");
    assert_ok(&answers[..second_at]);
    assert_problem(
        &answers[second_at..],
        431,
        "request-header-fields-too-large",
    );
    assert_eq!(upstream.gets(), 1, "only the first request was forwarded");
    assert_eq!(rejected(gw, "header_line_too_long").await, 1);
}

#[tokio::test]
async fn heads_after_a_chunked_body_are_measured_once_parsed() {
    let (upstream, _gateway, gw) = stack(&[]);
    let mut stream = TcpStream::connect(gw).await.unwrap();
    let body = br#"{"customer":"alice@example.com","items":[]}"#;
    let mut post = b"POST /api/orders HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\nidempotency-key: k1\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    post.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    post.extend_from_slice(body);
    post.extend_from_slice(b"\r\n0\r\n\r\n");
    stream.write_all(&post).await.unwrap();
    let first = read_one(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 201 "), "{first}");

    // Within hyper's own limits, over the gateway's: refused after parsing, as problem+json.
    let oversized = get(
        "/api/products/1",
        &[format!("x-big: {}", "a".repeat(MAX_HEADER_LINE))],
    );
    stream.write_all(&oversized).await.unwrap();
    let second = read_to_close(&mut stream).await;

    assert_problem(&second, 431, "request-header-fields-too-large");
    assert_eq!(
        upstream.gets(),
        0,
        "the upstream never saw the second request"
    );
    assert_eq!(rejected(gw, "header_line_too_long").await, 1);
}
