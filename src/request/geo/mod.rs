//! GeoIP: country, continent and coordinates of a client address. `codes` holds
//! the ISO 3166-1 country and continent codes (and the table from one to the
//! other); `reader` reads a MaxMind-format database, keeping one open copy per
//! file.

mod codes;
mod reader;

pub use codes::{Continent, Country};
pub use reader::{GeoDb, GeoError, GeoInfo, GeoResult};
