//! The command line's subcommands that are more than a call: `status`, `explain`, `demo`.

pub mod demo;
pub mod explain;
pub mod status;
