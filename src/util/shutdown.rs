//! The process-wide shutdown signal: a watch that turns true once, when a
//! graceful shutdown starts. Background services and connections select on it.

/// Receives the shutdown signal (`*borrow()` is true once it came).
pub type ShutdownWatch = tokio::sync::watch::Receiver<bool>;
