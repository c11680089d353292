//! Price sheets: USD per GiB by traffic class and direction.
//!
//! The embedded sheet (`exporter/prices/aws-us-east-1.yaml`) holds AWS's published
//! data-transfer prices for us-east-1, each with its source URL and as-of date;
//! `--prices FILE` replaces it. Cost is computed from counted bytes, never estimated:
//! `cost_usd = bytes / 2^30 × usd_per_gib`.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

use crate::{classify::TrafficClass, cloud::Provider, error::ConfigError};

/// The embedded sheet's text.
pub const EMBEDDED_SHEET: &str = include_str!("../prices/aws-us-east-1.yaml");
/// Bytes in the GiB that prices are quoted per (AWS's billing "GB" is 2^30 bytes).
pub const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;

/// One price with its provenance.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per GiB (2^30 bytes) of L3 bytes.
    pub usd_per_gib: f64,
    /// URL of the provider's price page this number comes from.
    pub source: String,
    /// Date (YYYY-MM-DD) the number was read from `source`.
    pub as_of: String,
    /// What exactly the price covers.
    #[serde(default)]
    pub note: Option<String>,
}

/// Prices of one class, per direction. A missing direction is free.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DirectionalPrice {
    /// Price of bytes sent.
    pub egress: Option<Price>,
    /// Price of bytes received.
    pub ingress: Option<Price>,
}

/// A whole price sheet.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceSheet {
    /// Cloud provider: `aws`, `gcp` or `azure`.
    pub provider: Provider,
    /// Region the prices apply to, e.g. `us-east-1`.
    pub region: String,
    /// Must be `USD`: metric names say `usd`.
    pub currency: String,
    /// Prices by traffic class; a missing class is free.
    pub prices: BTreeMap<TrafficClass, DirectionalPrice>,
}

impl PriceSheet {
    /// The embedded AWS us-east-1 sheet.
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_SHEET, Path::new("<embedded aws-us-east-1.yaml>"))
            .expect("the embedded price sheet is valid (checked by a unit test)")
    }

    /// Loads `--prices FILE`, or the embedded sheet when `path` is `None`.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Parse`] (names field, line and column) or
    /// [`ConfigError::Invalid`] (every negative, non-finite or undated price, and a
    /// currency other than USD).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::embedded());
        };
        Self::parse(&ConfigError::read_file(path)?, path)
    }

    /// Parses and validates a sheet; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`PriceSheet::load`].
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let sheet: Self = ConfigError::parse_yaml(text, origin)?;
        let mut problems = Vec::new();
        if sheet.currency != "USD" {
            problems.push(format!("currency: {:?} is not supported, use USD", sheet.currency));
        }
        for (class, prices) in &sheet.prices {
            for (direction, price) in [("egress", &prices.egress), ("ingress", &prices.ingress)] {
                let Some(price) = price else { continue };
                let at = format!("prices.{}.{direction}", class.as_str());
                if !price.usd_per_gib.is_finite() || price.usd_per_gib < 0.0 {
                    problems.push(format!(
                        "{at}.usd_per_gib: {} must be a finite number ≥ 0",
                        price.usd_per_gib
                    ));
                }
                if price.source.trim().is_empty() {
                    problems.push(format!("{at}.source: say where the price comes from"));
                }
                if price.as_of.trim().is_empty() {
                    problems.push(format!("{at}.as_of: say when the price was read"));
                }
            }
        }
        if problems.is_empty() {
            Ok(sheet)
        } else {
            Err(ConfigError::Invalid { path: origin.to_owned(), problems })
        }
    }

    /// USD per GiB for `class` in `direction` (`egress` when true); 0 when the sheet has no
    /// price for it.
    pub fn usd_per_gib(&self, class: TrafficClass, egress: bool) -> f64 {
        self.prices
            .get(&class)
            .and_then(|p| if egress { p.egress.as_ref() } else { p.ingress.as_ref() })
            .map_or(0.0, |p| p.usd_per_gib)
    }
}

/// Cost in USD of `bytes` at `usd_per_gib`.
pub fn cost_usd(bytes: u64, usd_per_gib: f64) -> f64 {
    bytes as f64 / BYTES_PER_GIB * usd_per_gib
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sheet_is_valid_and_has_the_published_prices() {
        let s = PriceSheet::embedded();
        assert_eq!((s.provider, s.region.as_str()), (Provider::Aws, "us-east-1"));
        assert_eq!(s.usd_per_gib(TrafficClass::Internet, true), 0.09);
        assert_eq!(s.usd_per_gib(TrafficClass::Internet, false), 0.0);
        assert_eq!(s.usd_per_gib(TrafficClass::CrossZone, true), 0.01);
        assert_eq!(s.usd_per_gib(TrafficClass::CrossZone, false), 0.01);
        assert_eq!(s.usd_per_gib(TrafficClass::CrossRegion, true), 0.02);
        assert_eq!(s.usd_per_gib(TrafficClass::SameHost, true), 0.0);
        for p in s.prices.values() {
            for price in [&p.egress, &p.ingress].into_iter().flatten() {
                assert!(price.source.starts_with("https://aws.amazon.com/"));
                assert_eq!(price.as_of.len(), 10, "YYYY-MM-DD");
            }
        }
    }

    #[test]
    fn one_gib_costs_the_price() {
        assert_eq!(cost_usd(1 << 30, 0.09), 0.09);
        assert_eq!(cost_usd(0, 0.09), 0.0);
    }

    #[test]
    fn bad_sheets_name_the_field() {
        let p = Path::new("p.yaml");
        let head = "provider: aws\nregion: r\ncurrency: USD\nprices:\n";
        let neg =
            format!("{head}  internet:\n    egress: {{usd_per_gib: -1, source: s, as_of: d}}\n");
        let e = PriceSheet::parse(&neg, p).unwrap_err().to_string();
        assert!(e.contains("prices.internet.egress.usd_per_gib"), "{e}");
        let unknown =
            format!("{head}  interweb:\n    egress: {{usd_per_gib: 1, source: s, as_of: d}}\n");
        let e = PriceSheet::parse(&unknown, p).unwrap_err().to_string();
        assert!(e.contains("interweb") && e.contains("line 5"), "{e}");
        let eur = "provider: aws\nregion: r\ncurrency: EUR\nprices: {}\n";
        assert!(PriceSheet::parse(eur, p).unwrap_err().to_string().contains("currency"));
    }
}
