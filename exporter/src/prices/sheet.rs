//! Price sheets: USD per GiB by traffic class and direction, per-service and per-region
//! exceptions, tiers, and the processing charges of egress paths (NAT gateway, VPC interface
//! endpoint, transit gateway).
//!
//! Embedded sheets (`exporter/prices/<provider>-<region>.yaml`) hold the providers' published
//! list prices, each number with its source URL and as-of date; `--prices FILE` replaces them.
//! A class, direction or path missing from a sheet is free.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::{classify::TrafficClass, cloud::Provider, error::ConfigError, paths::EgressPath};

/// Bytes in the GiB that prices are quoted per (the "GB" of AWS, GCP and Azure bills is 2^30
/// bytes).
pub const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;

/// One price with its provenance: flat (`usd_per_gib`) or tiered by monthly volume (`tiers`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per GiB (2^30 bytes) of L3 bytes, for a flat price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_gib: Option<f64>,
    /// Volume tiers in order, for a tiered price: each applies up to `up_to_gib` GiB
    /// transferred in the calendar month (UTC); the last has no bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// URL of the provider's price page this number comes from.
    pub source: String,
    /// Date (YYYY-MM-DD) the number was read from `source`.
    pub as_of: String,
    /// What exactly the price covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One volume tier.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Upper bound of the tier in GiB per month (cumulative); `None` for the last tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_gib: Option<f64>,
    /// USD per GiB within the tier.
    pub usd_per_gib: f64,
    /// An account-wide free allowance (AWS's 100 GB a month): applied only with
    /// `pricing.free_tier: true`, since other nodes of the account share it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub free_tier: bool,
}

/// Prices of one direction pair. A missing direction is free.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DirectionalPrice {
    /// Price of bytes sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Price>,
    /// Price of bytes received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Price>,
}

impl DirectionalPrice {
    /// The price of one direction.
    pub fn get(&self, egress: bool) -> Option<&Price> {
        if egress { self.egress.as_ref() } else { self.ingress.as_ref() }
    }
}

/// Prices of one traffic class: the default per direction, and exceptions by the remote's
/// service (`S3`) and by the remote's region (`us-east-2`). A service exception wins over a
/// region exception, which wins over the default; an exception replaces both directions.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassPrices {
    /// Price of bytes sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Price>,
    /// Price of bytes received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Price>,
    /// Exceptions by remote service, as the provider spells it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, DirectionalPrice>,
    /// Exceptions by remote region, as the provider spells it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regions: BTreeMap<String, DirectionalPrice>,
}

/// Services whose same-region traffic through a NAT gateway a free gateway endpoint would
/// carry instead (AWS: S3 and DynamoDB gateway endpoints), with the source saying so.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayEndpoints {
    /// Service names as in the provider's range file.
    pub services: Vec<String>,
    /// Where the provider documents it.
    pub source: String,
}

/// A whole price sheet.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceSheet {
    /// Cloud provider: `aws`, `gcp` or `azure`.
    pub provider: Provider,
    /// Region the prices apply to, as the provider spells it (`us-east-1`).
    pub region: String,
    /// Must be `USD`: metric names say `usd`.
    pub currency: String,
    /// The sheet's version: the date its numbers were last checked (YYYY-MM-DD).
    pub version: String,
    /// Transfer prices by traffic class; a missing class is free.
    pub prices: BTreeMap<TrafficClass, ClassPrices>,
    /// Processing prices by egress path, on top of the transfer price; a missing path is
    /// free.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paths: BTreeMap<EgressPath, DirectionalPrice>,
    /// Services a free gateway endpoint can carry (what makes NAT cost avoidable).
    #[serde(default)]
    pub gateway_endpoints: GatewayEndpoints,
}

/// Embedded sheets: (provider/region name, text).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("aws/us-east-1", include_str!("../../prices/aws-us-east-1.yaml")),
    ("aws/us-west-2", include_str!("../../prices/aws-us-west-2.yaml")),
    ("aws/eu-west-1", include_str!("../../prices/aws-eu-west-1.yaml")),
    ("gcp/us-central1", include_str!("../../prices/gcp-us-central1.yaml")),
    ("gcp/europe-west1", include_str!("../../prices/gcp-europe-west1.yaml")),
    ("azure/eastus", include_str!("../../prices/azure-eastus.yaml")),
    ("azure/westeurope", include_str!("../../prices/azure-westeurope.yaml")),
];

/// The sheet used when neither `--prices` nor the node's provider and region name one.
pub const DEFAULT_SHEET: &str = "aws/us-east-1";

impl PriceSheet {
    /// An embedded sheet by `provider/region`.
    pub fn embedded_named(name: &str) -> Option<Self> {
        let (_, text) = EMBEDDED.iter().find(|(n, _)| *n == name)?;
        let origin = format!("<embedded {name}>");
        Some(
            Self::parse(text, Path::new(&origin))
                .expect("embedded price sheets are valid (checked by a unit test)"),
        )
    }

    /// The default embedded sheet (AWS us-east-1).
    pub fn embedded() -> Self {
        Self::embedded_named(DEFAULT_SHEET).expect("the default sheet is embedded")
    }

    /// Loads `--prices`: an embedded sheet's name (`aws/eu-west-1`) or a file; without it,
    /// the embedded sheet of `node` (provider, region) if there is one, else the default.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Parse`] (names field, line and column) or
    /// [`ConfigError::Invalid`] (every negative, non-finite, undated or unordered price, and a
    /// currency other than USD).
    pub fn load(
        choice: Option<&Path>,
        node: (Option<Provider>, Option<&str>),
    ) -> Result<Self, ConfigError> {
        if let Some(choice) = choice {
            if let Some(sheet) = choice.to_str().and_then(Self::embedded_named) {
                return Ok(sheet);
            }
            return Self::parse(&ConfigError::read_file(choice)?, choice);
        }
        let named = match node {
            (Some(p), Some(r)) => Self::embedded_named(&format!("{p}/{r}")),
            _ => None,
        };
        Ok(named.unwrap_or_else(Self::embedded))
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
        for (at, price) in sheet.all_prices() {
            check_price(&at, price, &mut problems);
            if at.starts_with("paths.") && !price.tiers.is_empty() {
                problems.push(format!("{at}.tiers: processing prices are flat (usd_per_gib)"));
            }
        }
        if problems.is_empty() {
            Ok(sheet)
        } else {
            Err(ConfigError::Invalid { path: origin.to_owned(), problems })
        }
    }

    /// Every price in the sheet with its place (`prices.internet.egress`,
    /// `prices.cloud_same_region.services.S3.ingress`, `paths.nat_gateway.egress`).
    pub fn all_prices(&self) -> Vec<(String, &Price)> {
        fn pair<'a>(out: &mut Vec<(String, &'a Price)>, at: &str, p: &'a DirectionalPrice) {
            for (d, price) in [("egress", &p.egress), ("ingress", &p.ingress)] {
                if let Some(price) = price {
                    out.push((format!("{at}.{d}"), price));
                }
            }
        }
        let mut out = Vec::new();
        for (class, c) in &self.prices {
            let at = format!("prices.{}", class.as_str());
            for (d, price) in [("egress", &c.egress), ("ingress", &c.ingress)] {
                if let Some(price) = price {
                    out.push((format!("{at}.{d}"), price));
                }
            }
            for (kind, map) in [("services", &c.services), ("regions", &c.regions)] {
                for (name, dp) in map {
                    pair(&mut out, &format!("{at}.{kind}.{name}"), dp);
                }
            }
        }
        for (path, dp) in &self.paths {
            pair(&mut out, &format!("paths.{}", path.as_str()), dp);
        }
        out
    }

    /// The transfer price for a remote of `class` with `service` and `region` (either may be
    /// empty) in one direction, after the exceptions; `None` is free.
    pub fn transfer(
        &self,
        class: TrafficClass,
        egress: bool,
        service: &str,
        region: &str,
    ) -> Option<&Price> {
        let c = self.prices.get(&class)?;
        if let Some(dp) = c.services.get(service) {
            return dp.get(egress);
        }
        if let Some(dp) = c.regions.get(region) {
            return dp.get(egress);
        }
        if egress { c.egress.as_ref() } else { c.ingress.as_ref() }
    }

    /// The processing price of an egress path in one direction; `None` is free.
    pub fn processing(&self, path: EgressPath, egress: bool) -> Option<&Price> {
        self.paths.get(&path)?.get(egress)
    }
}

fn check_price(at: &str, price: &Price, problems: &mut Vec<String>) {
    let bad = |v: f64| !v.is_finite() || v < 0.0;
    match (price.usd_per_gib, price.tiers.is_empty()) {
        (Some(v), true) if bad(v) => {
            problems.push(format!("{at}.usd_per_gib: {v} must be a finite number ≥ 0"))
        }
        (Some(_), true) => {}
        (None, false) => {
            let mut last = 0.0;
            for (i, t) in price.tiers.iter().enumerate() {
                let final_tier = i + 1 == price.tiers.len();
                if bad(t.usd_per_gib) {
                    problems.push(format!(
                        "{at}.tiers[{i}].usd_per_gib: {} must be a finite number ≥ 0",
                        t.usd_per_gib
                    ));
                }
                match (t.up_to_gib, final_tier) {
                    (None, true) => {}
                    (None, false) => problems.push(format!(
                        "{at}.tiers[{i}].up_to_gib: only the last tier may be unbounded"
                    )),
                    (Some(_), true) => problems
                        .push(format!("{at}.tiers[{i}]: the last tier must have no up_to_gib")),
                    (Some(u), false) if u <= last || !u.is_finite() => problems.push(format!(
                        "{at}.tiers[{i}].up_to_gib: {u} must be above the previous tier's {last}"
                    )),
                    (Some(u), false) => last = u,
                }
            }
        }
        _ => problems.push(format!("{at}: give either usd_per_gib or tiers")),
    }
    if price.source.trim().is_empty() {
        problems.push(format!("{at}.source: say where the price comes from"));
    }
    if price.as_of.trim().is_empty() {
        problems.push(format!("{at}.as_of: say when the price was read"));
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
    fn embedded_sheets_are_valid_and_sourced() {
        for (name, _) in EMBEDDED {
            let s = PriceSheet::embedded_named(name).unwrap();
            assert_eq!(format!("{}/{}", s.provider, s.region), *name);
            for (at, price) in s.all_prices() {
                assert!(price.source.starts_with("https://"), "{name} {at}");
                assert_eq!(price.as_of.len(), 10, "{name} {at}: YYYY-MM-DD");
            }
        }
    }

    #[test]
    fn aws_us_east_1_has_the_published_prices() {
        let s = PriceSheet::embedded();
        let flat = |c, e, svc, reg| s.transfer(c, e, svc, reg).and_then(|p| p.usd_per_gib);
        assert_eq!(flat(TrafficClass::Internet, false, "", ""), Some(0.0));
        assert_eq!(flat(TrafficClass::CrossZone, true, "", ""), Some(0.01));
        assert_eq!(flat(TrafficClass::CrossZone, false, "", ""), Some(0.01));
        assert_eq!(flat(TrafficClass::CrossRegion, true, "", ""), Some(0.02));
        assert_eq!(flat(TrafficClass::CrossRegion, true, "", "us-east-2"), Some(0.01));
        assert_eq!(flat(TrafficClass::CloudSameRegion, true, "EC2", ""), Some(0.01));
        assert_eq!(flat(TrafficClass::CloudSameRegion, true, "S3", ""), Some(0.0));
        assert_eq!(s.transfer(TrafficClass::SameHost, true, "", ""), None);
        let internet = s.transfer(TrafficClass::Internet, true, "", "").unwrap();
        let tiers: Vec<_> = internet.tiers.iter().map(|t| (t.up_to_gib, t.usd_per_gib)).collect();
        assert_eq!(
            tiers,
            [
                (Some(100.0), 0.0),
                (Some(10240.0), 0.09),
                (Some(51200.0), 0.085),
                (Some(153600.0), 0.07),
                (None, 0.05)
            ]
        );
        let nat = |e| s.processing(EgressPath::NatGateway, e).and_then(|p| p.usd_per_gib);
        assert_eq!((nat(true), nat(false)), (Some(0.045), Some(0.045)));
        assert_eq!(s.processing(EgressPath::VpcGatewayEndpoint, true), None);
        assert_eq!(s.gateway_endpoints.services, ["S3", "DYNAMODB"]);
    }

    #[test]
    fn each_embedded_sheet_has_its_published_headline_prices() {
        let first_paid = |s: &PriceSheet| {
            let p = s.transfer(TrafficClass::Internet, true, "", "").unwrap();
            p.tiers.iter().find(|t| !t.free_tier).map(|t| t.usd_per_gib)
        };
        let flat = |s: &PriceSheet, c, e| s.transfer(c, e, "", "").and_then(|p| p.usd_per_gib);
        let nat =
            |s: &PriceSheet| s.processing(EgressPath::NatGateway, true).and_then(|p| p.usd_per_gib);
        // (sheet, first paid internet tier, cross-zone egress, NAT processing): AWS EC2 and VPC
        // pricing pages, Google Cloud network and Cloud NAT pricing, Azure bandwidth and NAT
        // Gateway pricing, as of 2025-07-01.
        for (name, internet, cross_zone, nat_price) in [
            ("aws/us-west-2", 0.09, 0.01, 0.045),
            ("aws/eu-west-1", 0.09, 0.01, 0.048),
            ("gcp/us-central1", 0.12, 0.01, 0.045),
            ("gcp/europe-west1", 0.12, 0.01, 0.045),
            ("azure/eastus", 0.087, 0.0, 0.045),
            ("azure/westeurope", 0.087, 0.0, 0.045),
        ] {
            let s = PriceSheet::embedded_named(name).unwrap();
            assert_eq!(first_paid(&s), Some(internet), "{name}");
            assert_eq!(flat(&s, TrafficClass::CrossZone, true), Some(cross_zone), "{name}");
            assert_eq!(nat(&s), Some(nat_price), "{name}");
        }
        let azure = PriceSheet::embedded_named("azure/eastus").unwrap();
        assert_eq!(azure.gateway_endpoints.services, ["Storage", "Sql"]);
        assert_eq!(
            azure
                .transfer(TrafficClass::CrossRegion, true, "", "westeurope")
                .and_then(|p| p.usd_per_gib),
            Some(0.05)
        );
        let node = PriceSheet::load(None, (Some(Provider::Gcp), Some("europe-west1"))).unwrap();
        assert_eq!((node.provider, node.region.as_str()), (Provider::Gcp, "europe-west1"));
    }

    #[test]
    fn one_gib_costs_the_price() {
        assert_eq!(cost_usd(1 << 30, 0.09), 0.09);
        assert_eq!(cost_usd(0, 0.09), 0.0);
    }

    #[test]
    fn bad_sheets_name_the_field() {
        let p = Path::new("p.yaml");
        let head = "provider: aws\nregion: r\ncurrency: USD\nversion: '2026-01-01'\nprices:\n";
        let neg =
            format!("{head}  internet:\n    egress: {{usd_per_gib: -1, source: s, as_of: d}}\n");
        let e = PriceSheet::parse(&neg, p).unwrap_err().to_string();
        assert!(e.contains("prices.internet.egress.usd_per_gib"), "{e}");
        let unknown =
            format!("{head}  interweb:\n    egress: {{usd_per_gib: 1, source: s, as_of: d}}\n");
        let e = PriceSheet::parse(&unknown, p).unwrap_err().to_string();
        assert!(e.contains("interweb") && e.contains("line 6"), "{e}");
        let tiers = format!(
            "{head}  internet:\n    egress:\n      source: s\n      as_of: d\n      tiers:\n        \
             - {{up_to_gib: 10, usd_per_gib: 1}}\n        - {{up_to_gib: 5, usd_per_gib: 1}}\n        \
             - {{usd_per_gib: 1}}\n  cross_zone:\n    services:\n      S3:\n        \
             ingress: {{source: s, as_of: d}}\n"
        );
        let e = PriceSheet::parse(&tiers, p).unwrap_err().to_string();
        assert!(e.contains("prices.internet.egress.tiers[1].up_to_gib: 5 must be above"), "{e}");
        assert!(e.contains("prices.cross_zone.services.S3.ingress: give either"), "{e}");
        let eur = "provider: aws\nregion: r\ncurrency: EUR\nversion: v\nprices: {}\n";
        assert!(PriceSheet::parse(eur, p).unwrap_err().to_string().contains("currency"));
        let gcp = "provider: oracle\nregion: r\ncurrency: USD\nversion: v\nprices: {}\n";
        assert!(PriceSheet::parse(gcp, p).unwrap_err().to_string().contains("oracle"));
    }
}
