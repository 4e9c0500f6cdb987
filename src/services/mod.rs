//! Long-lived tasks with an owner and a shutdown path: the server that starts
//! everything, reload, probes, the Route 53 reconciler and the admin listener.

pub mod admin;
pub mod api;
pub mod dns;
pub mod probes;
pub mod reload;
pub mod resolver;
pub mod server;
pub mod shared;
