//! HTTP handlers of `/api/products*`.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use super::catalogue::{Catalogue, Served};
use super::model::ProductInput;
use crate::http::Problem;

/// Page size when `size` is absent.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Header telling whether a read came from Redis (`hit`) or PostgreSQL (`miss`).
pub const X_CACHE: &str = "x-cache";

/// The product API router (state applied).
pub fn routes(catalogue: Arc<Catalogue>) -> Router {
    crate::http::problem_fallbacks(
        Router::new()
            .route("/api/products", get(list).post(create))
            .route("/api/products/{id}", get(read).put(replace).delete(remove)),
    )
    .with_state(catalogue)
}

#[derive(Deserialize)]
struct PageQuery {
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

/// Parses a product id from the path: a positive integer.
pub fn parse_id(raw: &str) -> Result<i64, Problem> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(Problem::bad_request(format!(
            "product id {raw:?}: expected a positive integer"
        ))),
    }
}

fn served(served: Served, what: impl FnOnce() -> String) -> Response {
    let cache = HeaderValue::from_static(served.status.as_str());
    match served.body {
        Some(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::HeaderName::from_static(X_CACHE), cache),
            ],
            body,
        )
            .into_response(),
        None => {
            let mut response = Problem::not_found(what()).into_response();
            response
                .headers_mut()
                .insert(header::HeaderName::from_static(X_CACHE), cache);
            response
        }
    }
}

async fn list(
    State(catalogue): State<Arc<Catalogue>>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query?;
    let page = parse_bounded("page", query.page.as_deref(), 1, u32::MAX / MAX_PAGE_SIZE)?;
    let size = parse_bounded(
        "size",
        query.size.as_deref(),
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
    )?;
    let page_served = catalogue.page(page, size).await?;
    Ok(served(page_served, || "no such page".into()))
}

async fn read(
    State(catalogue): State<Arc<Catalogue>>,
    Path(raw_id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&raw_id)?;
    let product = catalogue.get(id).await?;
    Ok(served(product, || format!("product {id} does not exist")))
}

async fn create(
    State(catalogue): State<Arc<Catalogue>>,
    body: Result<Json<ProductInput>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(input) = body?;
    let valid = input
        .validate()
        .map_err(|e| Problem::validation(e.to_string()))?;
    let product = catalogue.create(&valid).await?;
    let location = HeaderValue::try_from(format!("/api/products/{}", product.id))
        .map_err(|e| Problem::internal(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(product),
    )
        .into_response())
}

async fn replace(
    State(catalogue): State<Arc<Catalogue>>,
    Path(raw_id): Path<String>,
    body: Result<Json<ProductInput>, JsonRejection>,
) -> Result<Response, Problem> {
    let id = parse_id(&raw_id)?;
    let Json(input) = body?;
    let valid = input
        .validate()
        .map_err(|e| Problem::validation(e.to_string()))?;
    match catalogue.update(id, &valid).await? {
        Some(product) => Ok(Json(product).into_response()),
        None => Err(Problem::not_found(format!("product {id} does not exist"))),
    }
}

async fn remove(
    State(catalogue): State<Arc<Catalogue>>,
    Path(raw_id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&raw_id)?;
    if catalogue.delete(id).await? {
        Ok((StatusCode::NO_CONTENT, Bytes::new()).into_response())
    } else {
        Err(Problem::not_found(format!("product {id} does not exist")))
    }
}
