//! What meridian tells people: metrics and their label sets, rolling rates and
//! series, the event journal, the access log and logging.

pub mod access_log;
pub mod events;
pub mod labels;
pub mod logging;
pub mod metric_labels;
pub mod metrics;
pub mod rates;
pub mod series;
