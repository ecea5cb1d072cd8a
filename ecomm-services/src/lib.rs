//! The e-commerce services (gateway, registry, product, order) behind one `ecomm` binary.
//!
//! Each service module exposes `XArgs` (its clap flags, every one with an env fallback) and
//! `run(args) -> anyhow::Result<()>`; `http` is the layer they share.

pub mod cache;
pub mod db;
pub mod fixtures;
pub mod flags;
pub mod gateway;
pub mod healthcheck;
pub mod http;
pub mod order;
pub mod product;
pub mod registry;
