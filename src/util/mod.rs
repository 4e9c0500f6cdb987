//! Small helpers every layer may use: the clock, file stamps, the one lock helper,
//! label value sets and the shutdown signal type.

pub mod clock;
pub mod files;
pub mod label_set;
pub mod lock;
pub mod shutdown;

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}
