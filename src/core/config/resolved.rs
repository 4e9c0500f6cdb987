//! What validation resolves on its way, for `Snapshot::build` to compile from:
//! every region a field names as its index, every code and address parsed,
//! every header value made. Validation reports what does not resolve; a config
//! with errors never gets this far, so `build` meets no unknown name.

use std::net::SocketAddr;

use http::HeaderValue;

use crate::request::geo::{Continent, Country};

/// Index of a region in `Config::regions` and in `Snapshot::regions` (both
/// sorted by name).
pub type RegionIdx = usize;

/// The resolved parts of a valid config; each list is in the config's order.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Per region: its name as a header value.
    pub region_headers: Vec<HeaderValue>,
    /// Per region, per origin: its address split, and its own `host_header`.
    pub origins: Vec<Vec<OriginAddress>>,
    pub local_region: RegionIdx,
    pub write_region: Option<RegionIdx>,
    pub geo_countries: Vec<(Country, RegionIdx)>,
    pub geo_continents: Vec<(Continent, RegionIdx)>,
    pub geo_default: Option<RegionIdx>,
    pub residency: Vec<ResidencyRefs>,
    /// Per shift: its `from` and `to`.
    pub shifts: Vec<(RegionIdx, RegionIdx)>,
    /// `resolver.nameservers`.
    pub nameservers: Vec<SocketAddr>,
}

/// An origin's `address` as `host` (brackets taken off an IPv6 address) and
/// `port`, and its `host_header`.
#[derive(Debug, Clone)]
pub struct OriginAddress {
    pub host: String,
    pub port: u16,
    pub host_header: Option<HeaderValue>,
}

/// A residency group's regions and codes.
#[derive(Debug, Clone, Default)]
pub struct ResidencyRefs {
    pub regions: Vec<RegionIdx>,
    pub write_region: Option<RegionIdx>,
    pub countries: Vec<Country>,
    pub continents: Vec<Continent>,
}
