//! HTTP handlers of `/api/orders*`.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::idempotency::{parse_key, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAY};
use super::model::{OrderPage, OrderRequest};
use super::placing::place_order;
use super::products::ProductClient;
use super::repo::{Cancel, OrderRepo};
use crate::http::Problem;

/// Page size of `GET /api/orders` when `size` is absent.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 100;

/// What the handlers share.
pub struct OrderState {
    /// The orders database.
    pub repo: OrderRepo,
    /// The product service.
    pub products: ProductClient,
}

/// The order API router (state applied).
pub fn routes(state: Arc<OrderState>) -> Router {
    crate::http::problem_fallbacks(
        Router::new()
            .route("/api/orders", post(create).get(list))
            .route("/api/orders/{id}", get(read))
            .route("/api/orders/{id}/cancel", post(cancel)),
    )
    .with_state(state)
}

fn parse_order_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw)
        .map_err(|_| Problem::bad_request(format!("order id {raw:?}: expected a UUID")))
}

async fn create(
    State(state): State<Arc<OrderState>>,
    headers: HeaderMap,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let key = parse_key(headers.get(IDEMPOTENCY_KEY))?;
    let Json(request) = body?;
    let placed = place_order(&state.repo, &state.products, &key, request).await?;
    let status = StatusCode::from_u16(placed.status)
        .map_err(|e| Problem::internal(format!("stored status {}: {e}", placed.status)))?;
    let location = HeaderValue::try_from(format!("/api/orders/{}", placed.order_id))
        .map_err(|e| Problem::internal(e.to_string()))?;
    let mut response = (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::LOCATION, location),
        ],
        placed.body,
    )
        .into_response();
    if placed.replayed {
        response.headers_mut().insert(
            HeaderName::from_static(IDEMPOTENT_REPLAY),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

async fn read(
    State(state): State<Arc<OrderState>>,
    Path(raw_id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_order_id(&raw_id)?;
    match state.repo.get(id).await? {
        Some(order) => Ok(Json(order).into_response()),
        None => Err(Problem::not_found(format!("order {id} does not exist"))),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    customer: Option<String>,
    page: Option<String>,
    size: Option<String>,
}

fn parse_bounded(name: &str, raw: Option<&str>, default: u32, max: u32) -> Result<u32, Problem> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Problem::bad_request(format!(
            "{name} {raw:?}: expected an integer in 1..={max}"
        ))),
    }
}

async fn list(
    State(state): State<Arc<OrderState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query?;
    let page = parse_bounded("page", query.page.as_deref(), 1, u32::MAX / MAX_PAGE_SIZE)?;
    let size = parse_bounded(
        "size",
        query.size.as_deref(),
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
    )?;
    let (items, total) = state
        .repo
        .list(query.customer.as_deref(), page, size)
        .await?;
    Ok(Json(OrderPage {
        items,
        page,
        size,
        total,
    })
    .into_response())
}

async fn cancel(
    State(state): State<Arc<OrderState>>,
    Path(raw_id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_order_id(&raw_id)?;
    match state.repo.cancel(id).await? {
        Cancel::Cancelled(order) => Ok(Json(order).into_response()),
        Cancel::NotPlaced(status) => Err(Problem::new(
            StatusCode::CONFLICT,
            "invalid-transition",
            "Order state does not allow this",
        )
        .with_detail(format!(
            "order {id} is {}; only a placed order can be cancelled",
            status.as_str()
        ))),
        Cancel::Missing => Err(Problem::not_found(format!("order {id} does not exist"))),
    }
}
