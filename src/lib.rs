//! meridian: an edge L7 gateway that decides, per request, which region's origin serves it.
//!
//! The folders are the layers, each using only those listed before it (enforced by
//! `tests/module_graph.rs`, described in `docs/ARCHITECTURE.md`):
//! `util` → `core` (pure policy and data) → `request` (what a request is) →
//! `telemetry` → `proxy` (the data path) → `services` (long-lived tasks) → `cli`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod core;
pub mod proxy;
pub mod request;
pub mod services;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod util;
