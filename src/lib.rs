//! meridian: an edge L7 gateway that decides, per request, which region's origin serves it.
#![forbid(unsafe_code)]

pub mod config;
