//! The cost of counted bytes: transfer price (after service and region exceptions, at the
//! marginal tier) plus the egress path's processing price, and the part of it that is
//! avoidable.
//!
//! **Tier rule.** A tiered price is charged at the tier reached by this month's volume of its
//! traffic class and direction: the bytes this agent has counted since 00:00 UTC on the first
//! of the month, plus `pricing.tier_offset_gib` (what the rest of the account sends). Bytes
//! that cross a tier boundary within one read cycle are split exactly at the boundary. The
//! count starts from zero when the agent starts (set the offset to correct for a mid-month
//! start) and on the first of each month. Tiers marked `free_tier` (account-wide allowances)
//! are skipped unless `pricing.free_tier` is set.
//!
//! **Avoidable.** Bytes to a same-region service that the sheet's `gateway_endpoints` lists
//! (AWS: S3, DynamoDB), sent or received through a NAT gateway, would be free through a VPC
//! gateway endpoint: their whole cost (transfer + processing) is avoidable.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use super::sheet::{BYTES_PER_GIB, Price, PriceSheet, cost_usd};
use crate::{classify::TrafficClass, config::PricingConfig, paths::EgressPath};

/// Cost in USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Transfer plus processing, USD.
    pub usd: f64,
    /// The part a free alternative path would save, USD.
    pub avoidable_usd: f64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Self) {
        self.usd += o.usd;
        self.avoidable_usd += o.avoidable_usd;
    }
}

/// What decides a price: the flow's class, direction, remote service and region, and path.
#[derive(Debug, Clone, Copy)]
pub struct PriceQuery<'a> {
    /// Where the remote lives.
    pub class: TrafficClass,
    /// Sent (`true`) or received.
    pub egress: bool,
    /// The remote's cloud service, empty when none.
    pub service: &'a str,
    /// The remote's region, empty when unknown.
    pub region: &'a str,
    /// How the flow leaves the VPC.
    pub path: EgressPath,
}

/// Prices bytes under one sheet, keeping the month's volume for tiers.
#[derive(Debug)]
pub struct Pricer {
    sheet: Arc<PriceSheet>,
    free_tier: bool,
    offset_bytes: f64,
    month: Option<(i32, u8)>,
    volume: HashMap<(TrafficClass, bool), u64>,
}

impl Pricer {
    /// A pricer for `sheet` with the configuration's tier options.
    pub fn new(sheet: Arc<PriceSheet>, options: &PricingConfig) -> Self {
        Self {
            sheet,
            free_tier: options.free_tier,
            offset_bytes: options.tier_offset_gib * BYTES_PER_GIB,
            month: None,
            volume: HashMap::new(),
        }
    }

    /// The sheet.
    pub fn sheet(&self) -> &PriceSheet {
        &self.sheet
    }

    /// Called before pricing a cycle's bytes: on a new calendar month (UTC) the volume
    /// starts again.
    pub fn start_cycle(&mut self, now: SystemTime) {
        let now = time::OffsetDateTime::from(now);
        let month = Some((now.year(), now.month() as u8));
        if self.month != month {
            self.month = month;
            self.volume.clear();
        }
    }

    /// The cost of `bytes` more of a flow described by `q`; advances the month's volume.
    pub fn cost(&mut self, q: &PriceQuery<'_>, bytes: u64) -> Cost {
        let key = (q.class, q.egress);
        let before = self.volume.get(&key).copied().unwrap_or(0);
        let sheet = self.sheet.clone();
        let mut usd = sheet
            .transfer(q.class, q.egress, q.service, q.region)
            .map_or(0.0, |p| self.charge(p, before, bytes));
        usd += sheet.processing(q.path, q.egress).map_or(0.0, |p| self.charge(p, 0, bytes));
        *self.volume.entry(key).or_default() += bytes;
        Cost { usd, avoidable_usd: if self.is_avoidable(q) { usd } else { 0.0 } }
    }

    /// Whether a free gateway endpoint would carry this flow instead of a NAT gateway.
    pub fn is_avoidable(&self, q: &PriceQuery<'_>) -> bool {
        q.path == EgressPath::NatGateway
            && q.class == TrafficClass::CloudSameRegion
            && self.sheet.gateway_endpoints.services.iter().any(|s| s == q.service)
    }

    /// USD per GiB of the next byte of a flow described by `q`: the transfer price at the
    /// month's tier plus the path's processing price.
    pub fn price_per_gib(&self, q: &PriceQuery<'_>) -> f64 {
        let transfer = self
            .sheet
            .transfer(q.class, q.egress, q.service, q.region)
            .map_or(0.0, |p| self.marginal(p, q.class, q.egress));
        let processing =
            self.sheet.processing(q.path, q.egress).and_then(|p| p.usd_per_gib).unwrap_or(0.0);
        transfer + processing
    }

    /// USD per GiB the next byte of `class` in one direction would cost under `price`.
    pub fn marginal(&self, price: &Price, class: TrafficClass, egress: bool) -> f64 {
        let volume = self.volume.get(&(class, egress)).copied().unwrap_or(0);
        match price.usd_per_gib {
            Some(flat) => flat,
            None => {
                let at = volume as f64 + self.offset_bytes;
                let rate = self.tiers(price).find(|(_, upper, _)| at < *upper).map_or(0.0, |t| t.2);
                if rate.is_nan() { first_paid(self, price) } else { rate }
            }
        }
    }

    /// Bytes of `class` in one direction counted this month (the tier basis, without offset).
    pub fn volume(&self, class: TrafficClass, egress: bool) -> u64 {
        self.volume.get(&(class, egress)).copied().unwrap_or(0)
    }

    /// (lower, upper) bounds in bytes and USD per GiB of the tiers that apply.
    fn tiers<'p>(&self, price: &'p Price) -> impl Iterator<Item = (f64, f64, f64)> + 'p {
        let free_tier = self.free_tier;
        let mut lower = 0.0;
        price.tiers.iter().map(move |t| {
            let upper = t.up_to_gib.map_or(f64::INFINITY, |g| g * BYTES_PER_GIB);
            let tier =
                (lower, upper, if t.free_tier && !free_tier { f64::NAN } else { t.usd_per_gib });
            lower = upper;
            tier
        })
    }

    /// Cost of `bytes` under `price` when `before` bytes were already counted this month.
    fn charge(&self, price: &Price, before: u64, bytes: u64) -> f64 {
        if let Some(flat) = price.usd_per_gib {
            return cost_usd(bytes, flat);
        }
        let start = before as f64 + self.offset_bytes;
        let end = start + bytes as f64;
        let mut usd = 0.0;
        let mut next_paid = None;
        for (lower, upper, rate) in self.tiers(price) {
            // A skipped free tier's span is charged at the first paid tier's rate.
            let rate = if rate.is_nan() {
                *next_paid.get_or_insert_with(|| first_paid(self, price))
            } else {
                rate
            };
            let span = end.min(upper) - start.max(lower);
            if span > 0.0 {
                usd += span / BYTES_PER_GIB * rate;
            }
        }
        usd
    }
}

fn first_paid(pricer: &Pricer, price: &Price) -> f64 {
    pricer.tiers(price).map(|t| t.2).find(|r| !r.is_nan()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const GIB: u64 = 1 << 30;

    fn sheet() -> Arc<PriceSheet> {
        Arc::new(PriceSheet::embedded())
    }

    fn q(
        class: TrafficClass,
        egress: bool,
        service: &'static str,
        path: EgressPath,
    ) -> PriceQuery<'static> {
        PriceQuery { class, egress, service, region: "us-east-1", path }
    }

    #[test]
    fn nat_to_same_region_s3_costs_processing_and_is_avoidable() {
        let mut p = Pricer::new(sheet(), &PricingConfig::default());
        p.start_cycle(SystemTime::now());
        // AWS us-east-1 (sheet 2025-07-01): S3 same region transfer 0.00, NAT gateway
        // processing 0.045 USD/GB both directions → 2 GiB sent = 2 × 0.045 = 0.09 USD.
        let c =
            p.cost(&q(TrafficClass::CloudSameRegion, true, "S3", EgressPath::NatGateway), 2 * GIB);
        assert_eq!(c, Cost { usd: 0.09, avoidable_usd: 0.09 });
        // 1 GiB received the same way: 0.045, also avoidable.
        let c = p.cost(&q(TrafficClass::CloudSameRegion, false, "S3", EgressPath::NatGateway), GIB);
        assert_eq!(c, Cost { usd: 0.045, avoidable_usd: 0.045 });
        // Through the gateway endpoint: free.
        let c = p.cost(
            &q(TrafficClass::CloudSameRegion, true, "S3", EgressPath::VpcGatewayEndpoint),
            GIB,
        );
        assert_eq!(c, Cost::default());
        // EC2 public address in the region through the NAT: 0.01 transfer + 0.045, not avoidable.
        let c = p.cost(&q(TrafficClass::CloudSameRegion, true, "EC2", EgressPath::NatGateway), GIB);
        assert!((c.usd - 0.055).abs() < 1e-12 && c.avoidable_usd == 0.0, "{c:?}");
    }

    #[test]
    fn internet_egress_is_charged_at_the_marginal_tier_split_at_boundaries() {
        let internet = q(TrafficClass::Internet, true, "", EgressPath::None);
        let mut p = Pricer::new(sheet(), &PricingConfig::default());
        p.start_cycle(SystemTime::now());
        // Free tier skipped: the first GiB costs 0.09.
        assert_eq!(p.cost(&internet, GIB).usd, 0.09);
        // Offset of 10,239 GiB (the account is 1 GiB below the 10 TB boundary): 2 GiB more
        // cost 1 × 0.09 + 1 × 0.085 (AWS: first 10 TB 0.09, next 40 TB 0.085).
        let options = PricingConfig { free_tier: false, tier_offset_gib: 10_239.0 };
        let mut p = Pricer::new(sheet(), &options);
        p.start_cycle(SystemTime::now());
        let c = p.cost(&internet, 2 * GIB);
        assert!((c.usd - (0.09 + 0.085)).abs() < 1e-12, "{c:?}");
        let price = p.sheet().transfer(TrafficClass::Internet, true, "", "").unwrap().clone();
        assert_eq!(p.marginal(&price, TrafficClass::Internet, true), 0.085);
        // With the free tier: the first 100 GiB are free, then 0.09.
        let options = PricingConfig { free_tier: true, tier_offset_gib: 99.5 };
        let mut p = Pricer::new(sheet(), &options);
        p.start_cycle(SystemTime::now());
        let c = p.cost(&internet, GIB);
        assert!((c.usd - 0.5 * 0.09).abs() < 1e-12, "{c:?}");
        // Ingress from the internet is free.
        assert_eq!(p.cost(&q(TrafficClass::Internet, false, "", EgressPath::None), GIB).usd, 0.0);
    }

    #[test]
    fn the_month_volume_restarts_on_the_first() {
        let sheet = PriceSheet::parse(
            "provider: aws\nregion: r\ncurrency: USD\nversion: v\nprices:\n  internet:\n    egress:\n      \
             source: s\n      as_of: d\n      tiers: [{up_to_gib: 1, usd_per_gib: 2}, {usd_per_gib: 1}]\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let internet = q(TrafficClass::Internet, true, "", EgressPath::None);
        let mut p = Pricer::new(Arc::new(sheet), &PricingConfig::default());
        let day = |d: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d * 86_400);
        p.start_cycle(day(30)); // 1970-01-31
        assert_eq!(p.cost(&internet, GIB).usd, 2.0);
        assert_eq!(p.cost(&internet, GIB).usd, 1.0);
        p.start_cycle(day(31)); // 1970-02-01
        assert_eq!(p.cost(&internet, GIB).usd, 2.0);
        assert_eq!(p.volume(TrafficClass::Internet, true), GIB);
    }
}
