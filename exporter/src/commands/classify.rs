//! `egressor classify ADDR…`: for each address, exactly what the agent would decide with the
//! same configuration: class, provider, service, region and range, egress path, price per GiB
//! each way, and whether the cost is avoidable.

use std::{io::Write, net::IpAddr, sync::Arc};

use serde::Serialize;

use crate::{
    agent::{discover, load_setup},
    classify::Classifier,
    cli::ClassifyArgs,
    cloud::sources::{CloudRanges, SourceMetrics},
    error::ConfigError,
    geoip::GeoIp,
    paths::{EgressPath, EgressPaths},
    prices::{PriceQuery, Pricer},
};

/// One address's verdict (the `--json` shape).
#[derive(Debug, Serialize, PartialEq)]
pub struct Verdict {
    /// The address asked about.
    pub address: IpAddr,
    /// `traffic_class` label value.
    pub traffic_class: &'static str,
    /// Configured network name, if any.
    pub network: Option<String>,
    /// Cloud provider, if the address lies in a published range.
    pub provider: Option<&'static str>,
    /// The provider's service.
    pub service: Option<String>,
    /// The provider's (or the network's) region.
    pub region: Option<String>,
    /// The published prefix that decided the service.
    pub range: Option<String>,
    /// Autonomous system number (`--geoip-asn`).
    pub asn: Option<u32>,
    /// The AS's organisation (`--geoip-asn`).
    pub as_organization: Option<String>,
    /// ISO country code (`--geoip-country`).
    pub country: Option<String>,
    /// `egress_path` label value.
    pub egress_path: &'static str,
    /// USD per GiB sent: transfer (this month's tier) + processing.
    pub egress_usd_per_gib: f64,
    /// USD per GiB received.
    pub ingress_usd_per_gib: f64,
    /// Whether a free gateway endpoint would carry it instead of the NAT gateway.
    pub avoidable: bool,
}

/// Classifies `args.addresses` and prints the verdicts to `out`. URL range sources without
/// a cached copy are fetched once; failures are warnings on stderr.
///
/// # Errors
/// A bad configuration file or price sheet; a failed write as [`ConfigError::Flag`].
pub fn run(args: &ClassifyArgs, out: &mut impl Write) -> Result<(), ConfigError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConfigError::Flag { flag: "classify", problem: e.to_string() })?;
    let discovered = rt.block_on(discover(&args.setup));
    let (file, sheet) = load_setup(&args.setup, discovered.as_ref())?;
    let geoip = GeoIp::open(args.setup.geoip_asn.as_deref(), args.setup.geoip_country.as_deref())?;
    let mut ranges = CloudRanges::start(file.cloud_ranges.clone(), SourceMetrics::default());
    if ranges.shared().current().1.is_empty() && ranges.has_urls() {
        rt.block_on(ranges.fetch_all());
    }
    let classifier = Classifier::new(&file, ranges.shared());
    let paths = EgressPaths::new(&file);
    let mut pricer = Pricer::new(Arc::new(sheet), &file.pricing);
    pricer.start_cycle(std::time::SystemTime::now());
    let verdicts: Vec<_> = args
        .addresses
        .iter()
        .map(|&address| {
            let remote = classifier.classify(Some(address));
            let network = remote.network.map(|i| &file.networks[i]);
            let path = paths.path(args.from, &remote);
            let service = remote.cloud.map_or("", |m| m.service);
            let region = remote
                .cloud
                .map(|m| m.region.to_owned())
                .or_else(|| network.and_then(|n| n.region.clone()));
            let query = |egress| PriceQuery {
                class: remote.class,
                egress,
                service,
                region: region.as_deref().unwrap_or(""),
                path,
            };
            let (egress_usd_per_gib, ingress_usd_per_gib, avoidable) = (
                pricer.price_per_gib(&query(true)),
                pricer.price_per_gib(&query(false)),
                pricer.is_avoidable(&query(true)),
            );
            let geo =
                if remote.class.is_public() { geoip.lookup(address) } else { Default::default() };
            Verdict {
                address,
                traffic_class: remote.class.as_str(),
                network: network.map(|n| n.name.clone()),
                provider: remote.cloud.map(|m| m.provider.as_str()),
                service: remote.cloud.map(|m| m.service.to_owned()),
                region,
                range: remote.cloud.map(|m| m.prefix.to_string()),
                asn: geo.asn,
                as_organization: geo.as_organization,
                country: geo.country,
                egress_path: path.as_str(),
                egress_usd_per_gib,
                ingress_usd_per_gib,
                avoidable,
            }
        })
        .collect();
    let write_error =
        |e: std::io::Error| ConfigError::Flag { flag: "stdout", problem: e.to_string() };
    if args.json {
        let json = serde_json::to_string_pretty(&verdicts).expect("verdicts serialize");
        return writeln!(out, "{json}").map_err(write_error);
    }
    for v in &verdicts {
        let or_dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{}\n  class        {}\n  network      {}\n  provider     {}\n  service      {}\n  \
             region       {}\n  range        {}\n  AS           {}\n  country      {}\n  egress path  {}{}\n  USD per GiB  egress {}, \
             ingress {}\n  avoidable    {}",
            v.address,
            v.traffic_class,
            or_dash(&v.network),
            v.provider.unwrap_or("-"),
            or_dash(&v.service),
            or_dash(&v.region),
            or_dash(&v.range),
            match (&v.asn, &v.as_organization) {
                (Some(n), Some(o)) => format!("AS{n} {o}"),
                (Some(n), None) => format!("AS{n}"),
                _ => "-".into(),
            },
            or_dash(&v.country),
            v.egress_path,
            if args.from.is_none() && v.egress_path == EgressPath::None.as_str() {
                " (give --from LOCAL_ADDR to pick a subnet)"
            } else {
                ""
            },
            v.egress_usd_per_gib,
            v.ingress_usd_per_gib,
            if v.avoidable { "yes: a VPC gateway endpoint carries it for free" } else { "no" },
        )
        .map_err(write_error)?;
    }
    Ok(())
}
