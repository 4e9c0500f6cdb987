//! Small helpers every layer may use: the clock, file stamps, the one lock helper
//! and the shutdown signal type.

pub mod clock;
pub mod files;
pub mod lock;
pub mod shutdown;
