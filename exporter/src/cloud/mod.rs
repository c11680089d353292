//! Cloud provider address ranges: which provider, service and region a public address
//! belongs to.
//!
//! The providers publish their ranges (see [`formats`]); [`sources`] loads them from files or
//! their URLs and refreshes them. [`CloudTable`] answers a lookup with one longest-prefix
//! match: the "most specific service" rule is applied when the table is built (in a prefix
//! trie), not per lookup, and the trie is then flattened into sorted disjoint intervals, so a
//! lookup is one binary search.
//!
//! **Most specific service.** AWS lists every range under `AMAZON` and again under the
//! service that uses it (`52.95.128.0/21` is both `AMAZON` and `S3`); Azure lists `AzureCloud`
//! (and `AzureCloud.<region>`) over the service tags. An address gets the best of all the
//! entries whose prefix contains it, ranked by: a named service (`S3`, `Storage`) over `EC2`
//! over the provider-wide catch-alls (`AMAZON`, `AzureCloud`); then the longer prefix; then an
//! entry with a region over a global one. When the winner has no region (Azure's global tags),
//! the region comes from the longest containing entry that has one.

pub mod formats;
mod intervals;
pub mod sources;

use std::{fmt, net::IpAddr};

use ipnet::IpNet;
use prefix_trie::joint::map::JointPrefixMap;
use serde::{Deserialize, Serialize};

pub use formats::RangeEntry;

/// A cloud provider whose ranges egressor reads. Its label value is [`Provider::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon Web Services.
    Aws,
    /// Google Cloud.
    Gcp,
    /// Microsoft Azure.
    Azure,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 3] = [Self::Aws, Self::Gcp, Self::Azure];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Gcp => "gcp",
            Self::Azure => "azure",
        }
    }

    /// The provider's published URL of its range file, if it has a stable one (Azure's
    /// Service Tags download link changes with every weekly file).
    pub fn published_url(self) -> Option<&'static str> {
        match self {
            Self::Aws => Some("https://ip-ranges.amazonaws.com/ip-ranges.json"),
            Self::Gcp => Some("https://www.gstatic.com/ipranges/cloud.json"),
            Self::Azure => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the table knows about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudMatch<'a> {
    /// Whose address it is.
    pub provider: Provider,
    /// The service as the provider spells it.
    pub service: &'a str,
    /// The provider's region name; `GLOBAL` or empty when the provider gives none.
    pub region: &'a str,
    /// The published prefix that decided the service.
    pub prefix: IpNet,
    /// Identifies (provider, service, region) within this table: equal ids, equal values.
    pub id: u64,
}

/// A lookup's result in a form that can be cached next to the table ([`CloudTable::entry`],
/// [`CloudTable::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    provider: Provider,
    service: u32,
    region: u32,
    prefix: IpNet,
}

/// All loaded providers' ranges, resolved for lookup.
#[derive(Debug, Default)]
pub struct CloudTable {
    /// Each prefix's resolved answer; `intervals` index it.
    resolved: Vec<Resolved>,
    intervals: intervals::Intervals,
    strings: Vec<String>,
    prefixes: usize,
}

/// Rank of a service name: catch-alls lose to `EC2`, which loses to named services.
fn rank(provider: Provider, service: &str) -> u8 {
    match (provider, service) {
        (Provider::Aws, "AMAZON") | (Provider::Azure, "AzureCloud") => 0,
        (Provider::Aws, "EC2") => 1,
        _ => 2,
    }
}

impl CloudTable {
    /// Builds the table from each provider's entries.
    pub fn build<'a>(sets: impl IntoIterator<Item = (Provider, &'a [RangeEntry])>) -> Self {
        let mut strings: Vec<String> = vec![String::new()];
        let mut ids = std::collections::HashMap::<String, u32>::new();
        ids.insert(String::new(), 0);
        let mut intern = |s: &str| -> u32 {
            if let Some(&id) = ids.get(s) {
                return id;
            }
            let id = strings.len() as u32;
            strings.push(s.to_owned());
            ids.insert(s.to_owned(), id);
            id
        };
        // Every entry, grouped by prefix: (provider, rank, service, region).
        let mut raw: JointPrefixMap<IpNet, Vec<(Provider, u8, u32, u32)>> = JointPrefixMap::new();
        for (provider, entries) in sets {
            for e in entries {
                let item =
                    (provider, rank(provider, &e.service), intern(&e.service), intern(&e.region));
                match raw.get_mut(&e.prefix) {
                    Some(v) => v.push(item),
                    None => {
                        raw.insert(e.prefix, vec![item]);
                    }
                }
            }
        }
        let region_known = |region: u32| region != 0;
        let mut index = JointPrefixMap::new();
        let mut resolved = Vec::new();
        let mut prefixes = 0;
        for (prefix, _) in raw.iter() {
            prefixes += 1;
            // The best entry over every prefix containing this one (itself included).
            let mut best: Option<(u8, u8, bool, Provider, u32, u32, IpNet)> = None;
            let mut region_from: Option<(u8, u32)> = None;
            for (cover, items) in raw.cover(&prefix) {
                let len = cover.prefix_len();
                for &(provider, rank, service, region) in items {
                    let candidate =
                        (rank, len, region_known(region), provider, service, region, cover);
                    if best
                        .is_none_or(|b| (candidate.0, candidate.1, candidate.2) > (b.0, b.1, b.2))
                    {
                        best = Some(candidate);
                    }
                    if region_known(region) && region_from.is_none_or(|(l, _)| len > l) {
                        region_from = Some((len, region));
                    }
                }
            }
            if let Some((_, _, has_region, provider, service, region, cover)) = best {
                let region = if has_region { region } else { region_from.map_or(0, |(_, r)| r) };
                index.insert(prefix, resolved.len() as u32);
                resolved.push(Resolved { provider, service, region, prefix: cover });
            }
        }
        let nets: Vec<IpNet> = index.iter().map(|(p, _)| p).collect();
        let lpm = |a: IpAddr| index.get_lpm(&IpNet::from(a)).map(|(_, i)| *i);
        let intervals = intervals::Intervals::build(&nets, lpm);
        resolved.shrink_to_fit();
        Self { resolved, intervals, strings, prefixes }
    }

    /// The provider, service and region of `addr`, if it lies in a published range.
    pub fn lookup(&self, addr: IpAddr) -> Option<CloudMatch<'_>> {
        self.entry(addr).map(|r| self.resolve(r))
    }

    /// The raw result of a lookup (one binary search over the intervals), for callers that
    /// cache.
    pub fn entry(&self, addr: IpAddr) -> Option<Resolved> {
        self.intervals.get(addr).map(|i| self.resolved[i as usize])
    }

    /// The match an [`CloudTable::entry`] of this same table stands for.
    pub fn resolve(&self, r: Resolved) -> CloudMatch<'_> {
        CloudMatch {
            provider: r.provider,
            service: &self.strings[r.service as usize],
            region: &self.strings[r.region as usize],
            prefix: r.prefix,
            id: (r.provider as u64) << 56 | u64::from(r.service) << 28 | u64::from(r.region),
        }
    }

    /// Distinct prefixes in the table.
    pub fn len(&self) -> usize {
        self.prefixes
    }

    /// Whether no range is loaded.
    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(prefix: &str, service: &str, region: &str) -> RangeEntry {
        RangeEntry {
            prefix: prefix.parse().unwrap(),
            service: service.into(),
            region: region.into(),
        }
    }

    fn at<'a>(t: &'a CloudTable, a: &str) -> Option<(Provider, &'a str, &'a str)> {
        t.lookup(a.parse().unwrap()).map(|m| (m.provider, m.service, m.region))
    }

    #[test]
    fn named_service_beats_catch_all_even_under_a_longer_catch_all() {
        let aws = [
            e("52.95.128.0/21", "AMAZON", "ap-southeast-2"),
            e("52.95.128.0/21", "S3", "ap-southeast-2"),
            e("52.95.0.0/16", "AMAZON", "us-east-1"),
            e("3.5.0.0/16", "S3", "us-east-1"),
            e("3.5.7.0/24", "AMAZON", "us-east-1"),
            e("3.5.8.0/24", "EC2", "us-east-1"),
        ];
        let t = CloudTable::build([(Provider::Aws, &aws[..])]);
        assert_eq!(at(&t, "52.95.128.179"), Some((Provider::Aws, "S3", "ap-southeast-2")));
        assert_eq!(at(&t, "52.95.200.1"), Some((Provider::Aws, "AMAZON", "us-east-1")));
        assert_eq!(at(&t, "3.5.7.9"), Some((Provider::Aws, "S3", "us-east-1")));
        assert_eq!(at(&t, "3.5.8.9"), Some((Provider::Aws, "S3", "us-east-1")));
        assert_eq!(at(&t, "8.8.8.8"), None);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn global_tags_take_the_region_of_a_containing_regional_tag() {
        let azure = [
            e("20.38.0.0/16", "AzureCloud", "eastus"),
            e("20.38.98.0/24", "Storage", ""),
            e("20.38.99.0/24", "Sql", ""),
            e("20.38.99.0/24", "Sql", "eastus"),
            e("2603:1030::/32", "AzureCloud", "eastus"),
        ];
        let t = CloudTable::build([(Provider::Azure, &azure[..])]);
        assert_eq!(at(&t, "20.38.98.5"), Some((Provider::Azure, "Storage", "eastus")));
        assert_eq!(at(&t, "20.38.99.5"), Some((Provider::Azure, "Sql", "eastus")));
        assert_eq!(at(&t, "2603:1030::1"), Some((Provider::Azure, "AzureCloud", "eastus")));
        assert_eq!(at(&t, "::ffff:20.38.98.5"), Some((Provider::Azure, "Storage", "eastus")));
    }
}
