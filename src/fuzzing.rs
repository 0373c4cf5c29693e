//! Parsers of outside input that live inside private frontend modules, re-exported for the
//! fuzz targets in `fuzz/` only; not an API.

pub use crate::frontend::assets::{RangeAnswer, content_type, parse_range};
pub use crate::frontend::registry::V2Route;
