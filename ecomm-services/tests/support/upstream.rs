//! A small real upstream: an axum server on 127.0.0.1:0 with its own tokio runtime, so
//! `kill()` closes its listener and every connection at once, like a crashed process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ecomm_services::http::Problem;
use serde_json::json;

/// What an upstream saw.
#[derive(Default)]
pub struct Seen {
    /// GET requests answered.
    pub gets: AtomicUsize,
    /// POST requests answered.
    pub posts: AtomicUsize,
    /// Headers of the last request.
    pub last_headers: Mutex<HeaderMap>,
    /// Whether /readyz answers 503.
    pub unready: std::sync::atomic::AtomicBool,
    /// Delay before answering product GETs, in milliseconds (default 0).
    pub slow_ms: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
struct App {
    name: String,
    seen: Arc<Seen>,
}

/// A running upstream.
pub struct Upstream {
    /// Its name, echoed in every answer as `instance`.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub seen: Arc<Seen>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Upstream {
    /// Starts an upstream named `name`.
    pub fn start(name: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Seen::default());
        let app = App {
            name: name.to_owned(),
            seen: seen.clone(),
        };
        let router = Router::new()
            .route("/readyz", get(readyz))
            .route("/api/products/slow", get(slow))
            .route("/api/products/{id}", get(product))
            .route("/api/products", get(list))
            .route("/api/orders", post(create_order))
            .with_state(app);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            name: name.to_owned(),
            addr,
            seen,
            runtime: Some(runtime),
        }
    }

    /// Kills it: listener and all connections close immediately.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// GETs answered so far.
    pub fn gets(&self) -> usize {
        self.seen.gets.load(Ordering::SeqCst)
    }

    /// POSTs answered so far.
    pub fn posts(&self) -> usize {
        self.seen.posts.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn readyz(State(app): State<App>) -> StatusCode {
    if app.seen.unready.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

fn remember(app: &App, headers: &HeaderMap) {
    *app.seen.last_headers.lock().unwrap() = headers.clone();
}

async fn product(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    remember(&app, &headers);
    let delay = app.seen.slow_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    app.seen.gets.fetch_add(1, Ordering::SeqCst);
    let mut response = Json(json!({"instance": app.name, "id": id})).into_response();
    // Hop-by-hop headers the gateway must not pass to the client.
    response
        .headers_mut()
        .insert("connection", HeaderValue::from_static("x-upstream-hop"));
    response
        .headers_mut()
        .insert("x-upstream-hop", HeaderValue::from_static("1"));
    response
        .headers_mut()
        .insert("keep-alive", HeaderValue::from_static("timeout=5"));
    response
        .headers_mut()
        .insert("x-end-to-end", HeaderValue::from_static("kept"));
    response
}

async fn list(State(app): State<App>, headers: HeaderMap) -> Json<serde_json::Value> {
    remember(&app, &headers);
    app.seen.gets.fetch_add(1, Ordering::SeqCst);
    Json(json!({"instance": app.name, "items": []}))
}

async fn slow(State(app): State<App>) -> Json<serde_json::Value> {
    tokio::time::sleep(Duration::from_secs(30)).await;
    Json(json!({"instance": app.name}))
}

async fn create_order(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    remember(&app, &headers);
    let Json(body) = body?;
    app.seen.posts.fetch_add(1, Ordering::SeqCst);
    Ok((
        StatusCode::CREATED,
        Json(json!({"instance": app.name, "order": body})),
    ))
}
