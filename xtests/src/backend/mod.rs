//! The backends a [`crate::deployment::Deployment`] runs on.

pub mod vm;
