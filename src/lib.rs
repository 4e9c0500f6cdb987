//! meridian: an edge L7 gateway that decides, per request, which region's origin serves it.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod client;
pub mod clock;
pub mod config;
pub mod cookie;
pub mod demo;
pub mod dns;
pub mod events;
pub mod explain;
pub mod facts;
pub mod files;
pub mod geo;
pub mod health;
pub mod lock;
pub mod logging;
pub mod metric_labels;
pub mod metrics;
pub mod pool;
pub mod probes;
pub mod proxy;
pub mod proxy_protocol;
pub mod rates;
pub mod reload;
pub mod retry_budget;
pub mod routing;
pub mod series;
pub mod server;
pub mod shared;
pub mod shutdown;
pub mod snapshot;
pub mod status;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod tokens;
