//! `egressor classify ADDR…`: for each address, exactly what the agent would decide
//! ([`Verdict`]): class, network, name, provider, service, region and range, AS, country,
//! egress path, price per GiB each way, and whether the cost is avoidable. Decided here from
//! the same configuration, or (`--agent URL`) asked of a running agent, which also knows the
//! names its DNS capture learned, its Kubernetes peers and this month's tiers.

use std::{io::Write, sync::Arc, time::Duration};

use crate::{
    agent::{discover, load_setup},
    classify::Classifier,
    cli::ClassifyArgs,
    cloud::sources::{CloudRanges, SourceMetrics},
    error::ConfigError,
    geoip::GeoIp,
    paths::{EgressPath, EgressPaths},
    prices::Pricer,
    verdict::{Judge, NetworkInfo, Verdict},
};

/// Classifies `args.addresses` and prints the verdicts to `out`. Locally, URL range sources
/// without a cached copy are fetched once (failures are warnings on stderr).
///
/// # Errors
/// A bad configuration file or price sheet; with `--agent`, an unreadable token file, an
/// unreachable agent or an answer that is not the API's; a failed write as
/// [`ConfigError::Flag`].
pub fn run(args: &ClassifyArgs, out: &mut impl Write) -> Result<(), ConfigError> {
    let flag = |flag, e: &dyn std::fmt::Display| ConfigError::Flag { flag, problem: e.to_string() };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| flag("classify", &e))?;
    let verdicts = match &args.agent {
        Some(url) => rt.block_on(ask_agent(args, url))?,
        None => decide_here(args, &rt)?,
    };
    let write_error = |e: std::io::Error| flag("stdout", &e);
    if args.json {
        let json = serde_json::to_string_pretty(&verdicts).expect("verdicts serialize");
        return writeln!(out, "{json}").map_err(write_error);
    }
    for v in &verdicts {
        render(v, args, out).map_err(write_error)?;
    }
    Ok(())
}

fn decide_here(
    args: &ClassifyArgs,
    rt: &tokio::runtime::Runtime,
) -> Result<Vec<Verdict>, ConfigError> {
    let discovered = rt.block_on(discover(&args.setup));
    let (file, sheet) = load_setup(&args.setup, discovered.as_ref())?;
    let geoip = GeoIp::open(args.setup.geoip_asn.as_deref(), args.setup.geoip_country.as_deref())?;
    let mut ranges = CloudRanges::start(file.cloud_ranges.clone(), SourceMetrics::default());
    rt.block_on(ranges.fetch_if_empty());
    let classifier = Classifier::new(&file, ranges.shared());
    let paths = EgressPaths::new(&file);
    let mut pricer = Pricer::new(Arc::new(sheet), &file.pricing);
    pricer.start_cycle(std::time::SystemTime::now());
    let networks = |i: usize| NetworkInfo::from(&file.networks[i]);
    let judge = Judge {
        classifier: &classifier,
        paths: &paths,
        geoip: &geoip,
        dns: None,
        pricer: &pricer,
        networks: &networks,
        kube: &|_| None,
    };
    Ok(args.addresses.iter().map(|&a| judge.verdict(a, args.from)).collect())
}

async fn ask_agent(args: &ClassifyArgs, url: &str) -> Result<Vec<Verdict>, ConfigError> {
    let token = match &args.bearer_token_file {
        Some(path) => Some(ConfigError::read_file(path)?.trim().to_owned()),
        None => None,
    };
    let addresses: Vec<String> = args.addresses.iter().map(ToString::to_string).collect();
    let mut query = vec![("address", addresses.join(","))];
    if let Some(from) = args.from {
        query.push(("from", from.to_string()));
    }
    let endpoint = format!("{}/api/v1/classify", url.trim_end_matches('/'));
    let failed = |problem: String| ConfigError::Flag { flag: "--agent", problem };
    let client =
        crate::http_client::client(Duration::from_secs(15)).map_err(|e| failed(e.to_string()))?;
    let target = reqwest::Url::parse_with_params(&endpoint, &query)
        .map_err(|e| failed(format!("{endpoint}: {e}")))?;
    let mut request = client.get(target);
    if let Some(t) = &token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.map_err(|e| failed(format!("{endpoint}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(failed(format!("{endpoint}: {status}: {}", body.trim())));
    }
    response.json().await.map_err(|e| failed(format!("{endpoint}: not a list of verdicts: {e}")))
}

fn render(v: &Verdict, args: &ClassifyArgs, out: &mut impl Write) -> std::io::Result<()> {
    let or_dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let name = match (&v.name, v.name_source) {
        (Some(n), Some(source)) => {
            format!("{n} (from {})", serde_json::to_value(source).unwrap().as_str().unwrap())
        }
        (Some(n), None) => n.clone(),
        _ if args.agent.is_none() && v.traffic_class != "private" => {
            "- (DNS names are the agent's: ask it with --agent URL)".into()
        }
        _ => "-".into(),
    };
    let kube = match (&v.namespace, &v.kind) {
        (Some(ns), Some(kind)) => format!("\n  kubernetes   {kind} in {ns}"),
        (None, Some(kind)) => format!("\n  kubernetes   {kind}"),
        _ => String::new(),
    };
    let asn = match (&v.asn, &v.as_organization) {
        (Some(n), Some(o)) => format!("AS{n} {o}"),
        (Some(n), None) => format!("AS{n}"),
        _ => "-".into(),
    };
    let path_hint = if args.from.is_none() && v.egress_path == EgressPath::None.as_str() {
        " (give --from LOCAL_ADDR to pick a subnet)"
    } else {
        ""
    };
    let tier_hint = if args.agent.is_none() { " (first tier: no volume counted here)" } else { "" };
    writeln!(
        out,
        "{}\n  class        {}\n  network      {}\n  name         {name}{kube}\n  zone         {}\n  \
         provider     {}\n  service      {}\n  region       {}\n  range        {}\n  \
         AS           {asn}\n  country      {}\n  egress path  {}{path_hint}\n  \
         USD per GiB  egress {}, ingress {}{tier_hint}\n  avoidable    {}",
        v.address,
        v.traffic_class,
        or_dash(&v.network),
        or_dash(&v.zone),
        v.provider.as_deref().unwrap_or("-"),
        or_dash(&v.service),
        or_dash(&v.region),
        or_dash(&v.range),
        or_dash(&v.country),
        v.egress_path,
        v.egress_usd_per_gib,
        v.ingress_usd_per_gib,
        if v.avoidable { "yes: a VPC gateway endpoint carries it for free" } else { "no" },
    )
}
