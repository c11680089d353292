//! Prices: the sheets ([`sheet`]) and the cost of counted bytes under them ([`pricer`]).

pub mod pricer;
pub mod sheet;

pub use pricer::{Cost, PriceQuery, Pricer};
pub use sheet::{BYTES_PER_GIB, PriceSheet, cost_usd};
