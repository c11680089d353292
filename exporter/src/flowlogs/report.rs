//! Prices an [`Analysis`] and presents it: the JSON report (`--json`) and the console
//! summary. Every cost comes from the agent's [`Pricer`] over the price sheet in use; buckets
//! are priced in a fixed order so tiers split the same way on every run. Tiers count the
//! whole input as one month's volume (plus `pricing.tier_offset_gib`).

use std::{fmt::Write as _, net::IpAddr};

use serde::Serialize;

use super::analysis::{Analysis, BucketKey, Counts, Direction, Duplicates, Spend};
use crate::{
    paths::EgressPath,
    prices::{PriceQuery, Pricer},
    verdict::Judge,
};

/// The analysis of a set of flow logs (the shape of `--json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was read.
    pub input: InputSummary,
    /// The price sheet in use.
    pub price_sheet: SheetInfo,
    /// Everything counted.
    pub totals: Totals,
    /// By direction, class, path, service and region (the buckets prices are decided by).
    pub by_class: Vec<ClassRow>,
    /// Local addresses, most costly first (at most `--top`).
    pub by_source: Vec<SourceRow>,
    /// Remote addresses, most costly first (at most `--top`).
    pub top_destinations: Vec<DestinationRow>,
    /// Distinct remote addresses (HyperLogLog estimate, ~1 % error).
    pub unique_destinations: u64,
    /// Costs a free VPC gateway endpoint would remove, with the change to make.
    pub avoidable: Vec<AvoidableRow>,
    /// REJECT records: dropped, not billed.
    pub rejected: Counts,
    /// Records not counted because other records carry the same bytes.
    pub duplicates: Duplicates,
    /// What `--openmetrics` wrote, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openmetrics: Option<OpenMetricsInfo>,
}

/// What `--openmetrics` wrote.
#[derive(Debug, Serialize)]
pub struct OpenMetricsInfo {
    /// The file.
    pub file: String,
    /// Label sets of each family.
    pub series: usize,
    /// Samples of `egressor_flow_bytes_total` (series × minutes with records).
    pub samples: usize,
    /// Counted records without `end`: in the totals, not in the file.
    pub untimed: Counts,
}

/// What was read.
#[derive(Debug, Default, Serialize)]
pub struct InputSummary {
    /// Files (stdin counts as one).
    pub files: usize,
    /// Bytes of input as stored (compressed for gzip).
    pub stored_bytes: u64,
    /// Bytes of text parsed.
    pub text_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Records with traffic.
    pub records: u64,
    /// NODATA records.
    pub nodata: u64,
    /// SKIPDATA records.
    pub skipdata: u64,
    /// Lines that are no record.
    pub bad_lines: u64,
    /// The first bad lines: `file:line: problem`.
    pub bad_line_examples: Vec<String>,
    /// Inputs that could not be read to their end: `file: problem`.
    pub errors: Vec<String>,
    /// What to know about inputs read to their end: `file: note`.
    pub warnings: Vec<String>,
}

/// The price sheet in use.
#[derive(Debug, Serialize)]
pub struct SheetInfo {
    /// Provider.
    pub provider: String,
    /// Region the sheet prices from.
    pub region: String,
    /// The sheet's version (its as-of date).
    pub version: String,
}

/// Everything counted.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    /// Counted records and their bytes and packets.
    pub counted: Counts,
    /// Bytes to public remotes.
    pub egress_bytes: u64,
    /// Bytes from public remotes.
    pub ingress_bytes: u64,
    /// Bytes between private addresses.
    pub internal_bytes: u64,
    /// USD.
    pub cost_usd: f64,
    /// USD a VPC gateway endpoint would save.
    pub avoidable_usd: f64,
    /// Bytes through NAT gateways, both directions (what their processing charge bills).
    pub nat_gateway_bytes: u64,
    /// The NAT gateways' processing charge within `cost_usd`, USD (the sheet's
    /// `paths.nat_gateway` price per GiB, each direction).
    pub nat_gateway_processing_usd: f64,
}

/// One bucket.
#[derive(Debug, Serialize)]
pub struct ClassRow {
    /// egress, ingress or internal.
    pub direction: Direction,
    /// Whether priced as sent (egress prices) or received.
    pub sent: bool,
    /// `traffic_class` as the agent labels it.
    pub traffic_class: &'static str,
    /// `egress_path` as the agent labels it.
    pub egress_path: &'static str,
    /// The remote's cloud service (empty: none).
    pub service: String,
    /// The remote's region (empty: unknown).
    pub region: String,
    /// Counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// USD.
    pub cost_usd: f64,
    /// USD avoidable.
    pub avoidable_usd: f64,
}

/// One local address.
#[derive(Debug, Serialize)]
pub struct SourceRow {
    /// The address (`other`: the addresses beyond the memory cap).
    pub address: String,
    /// Bytes to public remotes.
    pub egress_bytes: u64,
    /// Bytes from public remotes.
    pub ingress_bytes: u64,
    /// Bytes between private addresses.
    pub internal_bytes: u64,
    /// Records.
    pub records: u64,
    /// USD.
    pub cost_usd: f64,
    /// USD avoidable.
    pub avoidable_usd: f64,
}

/// One remote address.
#[derive(Debug, Serialize)]
pub struct DestinationRow {
    /// The address.
    pub address: IpAddr,
    /// What the agent would name it (configured network, or the AS organisation).
    pub name: Option<String>,
    /// Class of most of its bytes.
    pub traffic_class: &'static str,
    /// Path of most of its bytes.
    pub egress_path: &'static str,
    /// Cloud provider of its range.
    pub provider: Option<String>,
    /// The provider's service (ranges), else what the records named.
    pub service: Option<String>,
    /// The range's or network's region.
    pub region: Option<String>,
    /// `pkt-*-aws-service` of its records.
    pub aws_service: Option<String>,
    /// Autonomous system (`--geoip-asn`).
    pub asn: Option<u32>,
    /// Its organisation.
    pub as_organization: Option<String>,
    /// Country (`--geoip-country`).
    pub country: Option<String>,
    /// Counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// USD.
    pub cost_usd: f64,
}

/// An avoidable cost and its fix.
#[derive(Debug, Serialize)]
pub struct AvoidableRow {
    /// The service.
    pub service: String,
    /// Its region.
    pub region: String,
    /// The local subnet (`subnet-id`, or the configured CIDR; empty: unknown).
    pub subnet: String,
    /// Bytes through the NAT gateway.
    pub bytes: u64,
    /// USD.
    pub cost_usd: f64,
    /// What to change.
    pub fix: String,
}

/// The indices of `buckets` in their keys' order: the order in which they are priced and
/// their costs summed, whichever thread met a bucket first (float addition is not
/// associative, and a tier is crossed at the same bucket).
fn key_order(buckets: &[(BucketKey, Counts)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    order.sort_by(|&a, &b| buckets[a].0.cmp(&buckets[b].0));
    order
}

/// Prices the buckets in key order: (USD, avoidable USD) per bucket index.
pub fn price(analysis: &Analysis, pricer: &mut Pricer) -> Vec<(f64, f64)> {
    let order = key_order(&analysis.buckets);
    let mut costs = vec![(0.0, 0.0); analysis.buckets.len()];
    for i in order {
        let (k, c) = &analysis.buckets[i];
        let cost = pricer.cost(&query(k), c.bytes);
        costs[i] = (cost.usd, cost.avoidable_usd);
    }
    costs
}

/// What prices a bucket's bytes.
pub(super) fn query(k: &BucketKey) -> PriceQuery<'_> {
    PriceQuery {
        class: k.class,
        egress: k.sent,
        service: &k.service,
        region: &k.region,
        path: k.path,
    }
}

/// Builds the report: `top` rows of sources and destinations.
pub fn build(
    analysis: &Analysis,
    costs: &[(f64, f64)],
    judge: &Judge<'_>,
    input: InputSummary,
    top: usize,
) -> Report {
    let buckets = &analysis.buckets;
    // Sums of costs run in the buckets' key order (see `key_order`).
    let order = key_order(buckets);
    let mut rank = vec![0; buckets.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    // A part's share of its bucket's cost.
    let share = |s: &Spend| -> (f64, f64) {
        let mut parts: Vec<&(u32, Counts)> = s.0.iter().collect();
        parts.sort_by_key(|(b, _)| rank[*b as usize]);
        parts.into_iter().fold((0.0, 0.0), |(u, a), (b, c)| {
            let total = buckets[*b as usize].1.bytes;
            let (usd, avoidable) = costs[*b as usize];
            if total == 0 || c.bytes == total {
                (u + usd, a + avoidable)
            } else {
                let f = c.bytes as f64 / total as f64;
                (u + usd * f, a + avoidable * f)
            }
        })
    };
    let mut totals = Totals::default();
    let mut by_class: Vec<ClassRow> = order
        .iter()
        .map(|&i| (&buckets[i], &costs[i]))
        .map(|((k, c), (usd, avoidable))| {
            totals.counted.merge(c);
            *match k.direction {
                Direction::Egress => &mut totals.egress_bytes,
                Direction::Ingress => &mut totals.ingress_bytes,
                Direction::Internal => &mut totals.internal_bytes,
            } += c.bytes;
            totals.cost_usd += usd;
            totals.avoidable_usd += avoidable;
            if k.path == EgressPath::NatGateway {
                let gib = c.bytes as f64 / f64::from(1u32 << 30);
                let price = judge.pricer.sheet().processing(EgressPath::NatGateway, k.sent);
                totals.nat_gateway_bytes += c.bytes;
                totals.nat_gateway_processing_usd +=
                    gib * price.and_then(|p| p.usd_per_gib).unwrap_or(0.0);
            }
            ClassRow {
                direction: k.direction,
                sent: k.sent,
                traffic_class: k.class.as_str(),
                egress_path: k.path.as_str(),
                service: k.service.clone(),
                region: k.region.clone(),
                counts: *c,
                cost_usd: *usd,
                avoidable_usd: *avoidable,
            }
        })
        .collect();
    by_class.sort_by(|a, b| {
        b.cost_usd.total_cmp(&a.cost_usd).then(b.counts.bytes.cmp(&a.counts.bytes))
    });

    let source_row = |address: String, s: &Spend| {
        let (cost_usd, avoidable_usd) = share(s);
        let mut row = SourceRow {
            address,
            egress_bytes: 0,
            ingress_bytes: 0,
            internal_bytes: 0,
            records: 0,
            cost_usd,
            avoidable_usd,
        };
        for (b, c) in &s.0 {
            row.records += c.records;
            *match buckets[*b as usize].0.direction {
                Direction::Egress => &mut row.egress_bytes,
                Direction::Ingress => &mut row.ingress_bytes,
                Direction::Internal => &mut row.internal_bytes,
            } += c.bytes;
        }
        row
    };
    // Rows of every address, their address text only for the top ones.
    let mut by_source: Vec<(&IpAddr, SourceRow)> =
        analysis.sources.iter().map(|(a, s)| (&a.0, source_row(String::new(), s))).collect();
    top_rows(&mut by_source, top, |(a, x), (b, y)| {
        y.cost_usd.total_cmp(&x.cost_usd).then(bytes_of(y).cmp(&bytes_of(x))).then(a.cmp(b))
    });
    let mut by_source: Vec<SourceRow> =
        by_source.into_iter().map(|(a, row)| SourceRow { address: a.to_string(), ..row }).collect();
    if !analysis.other_sources.0.is_empty() {
        by_source.push(source_row("other".into(), &analysis.other_sources));
    }

    let mut destinations: Vec<(&IpAddr, f64, Counts, &super::analysis::Destination)> = analysis
        .destinations
        .iter()
        .map(|d| {
            let spend = d.spend();
            let mut counts = Counts::default();
            spend.0.iter().for_each(|(_, c)| counts.merge(c));
            (&d.addr.0, share(&spend).0, counts, d)
        })
        .collect();
    top_rows(&mut destinations, top, |a, b| {
        b.1.total_cmp(&a.1).then(b.2.bytes.cmp(&a.2.bytes)).then(a.0.cmp(b.0))
    });
    let top_destinations = destinations
        .into_iter()
        .take(top)
        .map(|(address, cost_usd, counts, d)| {
            let main = d
                .spend()
                .0
                .into_iter()
                .max_by_key(|(_, c)| c.bytes)
                .map(|(b, _)| &buckets[b as usize].0);
            let v = judge.verdict(*address, None);
            DestinationRow {
                address: *address,
                name: v.name,
                traffic_class: main.map_or("unknown", |k| k.class.as_str()),
                egress_path: main.map_or(EgressPath::None.as_str(), |k| k.path.as_str()),
                provider: v.provider,
                service: v.service.or_else(|| d.aws_service().map(str::to_owned)),
                region: v.region,
                aws_service: d.aws_service().map(str::to_owned),
                asn: v.asn,
                as_organization: v.as_organization,
                country: v.country,
                counts,
                cost_usd,
            }
        })
        .collect();

    let processing = judge
        .pricer
        .sheet()
        .processing(EgressPath::NatGateway, true)
        .and_then(|p| p.usd_per_gib)
        .unwrap_or(0.0);
    let mut avoidable: Vec<AvoidableRow> = analysis
        .avoidable
        .iter()
        .map(|(k, s)| {
            let bytes = s.0.iter().map(|(_, c)| c.bytes).sum();
            let where_ = if k.subnet.is_empty() {
                "the route tables of the subnets that reach it through the NAT gateway".to_owned()
            } else {
                format!("the route table of {}", k.subnet)
            };
            AvoidableRow {
                service: k.service.clone(),
                region: k.region.clone(),
                subnet: k.subnet.clone(),
                bytes,
                cost_usd: share(s).1,
                fix: format!(
                    "create a gateway endpoint for {svc} (com.amazonaws.{region}.{lower}) in \
                     {where_}: {svc} traffic then skips the NAT gateway and its ${processing}/GiB \
                     processing, at no charge",
                    svc = k.service,
                    region = k.region,
                    lower = k.service.to_ascii_lowercase(),
                ),
            }
        })
        .collect();
    avoidable.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(a.subnet.cmp(&b.subnet)));

    let sheet = judge.pricer.sheet();
    Report {
        input,
        price_sheet: SheetInfo {
            provider: sheet.provider.as_str().into(),
            region: sheet.region.clone(),
            version: sheet.version.clone(),
        },
        totals,
        by_class,
        by_source,
        top_destinations,
        unique_destinations: analysis.unique_destinations.estimate() as u64,
        avoidable,
        rejected: analysis.rejected,
        duplicates: analysis.duplicates,
        openmetrics: None,
    }
}

/// Keeps the first `top` rows of `rows` in `order`, sorted, without sorting them all. With a
/// total order (the rows' addresses break ties) they are the first rows of the full sort.
fn top_rows<T>(rows: &mut Vec<T>, top: usize, order: impl Fn(&T, &T) -> std::cmp::Ordering) {
    if rows.len() > top {
        rows.select_nth_unstable_by(top, &order);
        rows.truncate(top);
    }
    rows.sort_by(order);
}

fn bytes_of(r: &SourceRow) -> u64 {
    r.egress_bytes + r.ingress_bytes + r.internal_bytes
}

/// Binary units, as AWS bills ("GB" on the bill is GiB).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// USD with cents and thousands separators.
pub fn usd(v: f64) -> String {
    let cents = (v * 100.0).round() as i64;
    format!("${}.{:02}", thousands(cents / 100), (cents % 100).abs())
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The console summary.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let i = &r.input;
    let rate = if i.seconds > 0.0 { i.text_bytes as f64 / i.seconds / 1e6 } else { 0.0 };
    let _ = writeln!(
        o,
        "egressor flowlogs: {} file(s), {} of text in {:.2} s ({rate:.0} MB/s): {} records, {} NODATA, {} SKIPDATA, {} bad lines",
        i.files,
        size(i.text_bytes),
        i.seconds,
        thousands(i.records as i64),
        i.nodata,
        i.skipdata,
        i.bad_lines
    );
    let s = &r.price_sheet;
    let _ = writeln!(o, "prices: {}/{} sheet of {}\n", s.provider, s.region, s.version);
    let t = &r.totals;
    let _ = writeln!(o, "cost       {} ({} avoidable)", usd(t.cost_usd), usd(t.avoidable_usd));
    if t.nat_gateway_bytes > 0 {
        let _ = writeln!(
            o,
            "NAT        {} through NAT gateways: {} of processing in the cost",
            size(t.nat_gateway_bytes),
            usd(t.nat_gateway_processing_usd)
        );
    }
    let _ = writeln!(
        o,
        "bytes      egress {}, ingress {}, internal {}; rejected {} (not billed)",
        size(t.egress_bytes),
        size(t.ingress_bytes),
        size(t.internal_bytes),
        size(r.rejected.bytes)
    );
    let _ =
        writeln!(o, "remotes    ≈{} distinct addresses", thousands(r.unique_destinations as i64));
    let _ = writeln!(o, "\nby class");
    for c in r.by_class.iter().filter(|c| c.counts.bytes > 0).take(12) {
        let what = [c.service.as_str(), c.region.as_str()].join(" ");
        let _ = writeln!(
            o,
            "  {:<13}{:<19}{:<22}{:<22}{:>11}{:>13}",
            match (c.direction, c.sent) {
                // Both ends of an internal flow are logged, and each is charged.
                (Direction::Internal, true) => "internal out",
                (Direction::Internal, false) => "internal in",
                (d, _) => d.as_str(),
            },
            c.traffic_class,
            c.egress_path,
            what.trim(),
            size(c.counts.bytes),
            usd(c.cost_usd)
        );
    }
    let _ = writeln!(o, "\ntop sources");
    for s in &r.by_source {
        let _ = writeln!(
            o,
            "  {:<40} out {:>10}  in {:>10}  internal {:>10}{:>13}",
            s.address,
            size(s.egress_bytes),
            size(s.ingress_bytes),
            size(s.internal_bytes),
            usd(s.cost_usd)
        );
    }
    let _ = writeln!(o, "\ntop destinations");
    for d in &r.top_destinations {
        let about = [
            d.service.clone().unwrap_or_default(),
            d.region.clone().unwrap_or_default(),
            d.asn.map(|a| format!("AS{a}")).unwrap_or_default(),
            d.name.clone().unwrap_or_default(),
            d.country.clone().unwrap_or_default(),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        let row = format!(
            "  {:<40} {:<19}{:<22}{:>11}{:>13}  {about}",
            d.address.to_string(),
            d.traffic_class,
            d.egress_path,
            size(d.counts.bytes),
            usd(d.cost_usd)
        );
        let _ = writeln!(o, "{}", row.trim_end());
    }
    if !r.avoidable.is_empty() {
        let _ = writeln!(o, "\navoidable");
        for a in &r.avoidable {
            let _ = writeln!(o, "  {} ({}): {}", usd(a.cost_usd), size(a.bytes), a.fix);
        }
    }
    let d = &r.duplicates;
    let dup = d.nat_internet_leg.bytes + d.nat_instance_leg.bytes + d.seen_at_nat_gateway.bytes;
    if dup > 0 {
        let _ =
            writeln!(o, "\nnot counted twice: {} seen on both sides of a NAT gateway", size(dup));
    }
    if !i.bad_line_examples.is_empty() {
        let _ = writeln!(o, "\nbad lines (first {} of {})", i.bad_line_examples.len(), i.bad_lines);
        for b in &i.bad_line_examples {
            let _ = writeln!(o, "  {b}");
        }
    }
    if let Some(m) = &r.openmetrics {
        let _ = writeln!(
            o,
            "\nopenmetrics: {} series, {} samples each family, in {}",
            m.series, m.samples, m.file
        );
        if m.untimed.records > 0 {
            let _ = writeln!(o, "  {} records without end are not in it", m.untimed.records);
        }
    }
    if !i.warnings.is_empty() {
        let _ = writeln!(o, "\nwarnings");
        for w in &i.warnings {
            let _ = writeln!(o, "  {w}");
        }
    }
    if !i.errors.is_empty() {
        let _ = writeln!(o, "\nerrors");
        for e in &i.errors {
            let _ = writeln!(o, "  {e}");
        }
    }
    o
}
