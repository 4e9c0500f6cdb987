//! The pure core: the config file's types and rules, the compiled snapshot, the
//! routing decision and its parts, and health as plain data. No sockets, no tasks.

pub mod capacity;
pub mod config;
pub mod health;
pub mod routing;
pub mod shift_guard;
pub mod snapshot;
