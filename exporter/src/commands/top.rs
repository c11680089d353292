//! `egressor top`: the node's top flows from a running agent's `/api/v1/flows`, as a
//! refreshing table (like `kubectl top` or iftop), sorted by cost by default.

use std::{io::Write, time::Duration};

use crate::{
    api::{FlowDetail, FlowsReply},
    cli::TopArgs,
    error::ConfigError,
};

/// Fetches and prints until interrupted (or once with `--once`).
///
/// # Errors
/// An unreadable token file, an unreachable agent or an answer that is not the API's
/// (with `--once`; otherwise the error is shown and the next refresh retries).
pub fn run(args: &TopArgs, out: &mut impl Write) -> Result<(), ConfigError> {
    let token = match &args.bearer_token_file {
        Some(path) => Some(ConfigError::read_file(path)?.trim().to_owned()),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConfigError::Flag { flag: "top", problem: e.to_string() })?;
    let client = crate::http_client::client(Duration::from_secs(10))
        .map_err(|e| ConfigError::Flag { flag: "top", problem: e.to_string() })?;
    let url = format!(
        "{}/api/v1/flows?top={}&sort={}",
        args.url.trim_end_matches('/'),
        args.top,
        args.sort.as_str()
    );
    let write_error =
        |e: std::io::Error| ConfigError::Flag { flag: "stdout", problem: e.to_string() };
    loop {
        let fetched = runtime.block_on(async {
            let mut request = client.get(&url);
            if let Some(t) = &token {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(format!("{status}: {}", body.trim()));
            }
            response.json::<FlowsReply>().await.map_err(|e| e.to_string())
        });
        if !args.once {
            write!(out, "\x1b[2J\x1b[H").map_err(write_error)?;
        }
        match fetched {
            Ok(reply) => render(&reply, out).map_err(write_error)?,
            Err(e) if args.once => {
                return Err(ConfigError::Flag { flag: "--url", problem: format!("{url}: {e}") });
            }
            Err(e) => writeln!(out, "{url}: {e} (retrying)").map_err(write_error)?,
        }
        out.flush().map_err(write_error)?;
        if args.once {
            return Ok(());
        }
        std::thread::sleep(args.interval);
    }
}

/// Bytes with binary prefixes (`1.5 MiB`).
fn human(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{v:.0} {}", units[i]) } else { format!("{v:.1} {}", units[i]) }
}

fn remote(f: &FlowDetail) -> String {
    match (f.remote_address, f.port) {
        (Some(std::net::IpAddr::V6(a)), p) => format!("[{a}]:{p}"),
        (Some(a), p) => format!("{a}:{p}"),
        (None, p) => format!("ethertype 0x{p:04x}"),
    }
}

/// Writes the table.
pub fn render(reply: &FlowsReply, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{} flows tracked; top {} by {:?}\n{:<28} {:<7} {:<5} {:<42} {:<24} {:<18} {:<20} {:>10} {:>12} {:>12}",
        reply.tracked_flows,
        reply.flows.len(),
        reply.sort,
        "WORKLOAD",
        "DIR",
        "PROTO",
        "REMOTE",
        "NAME",
        "CLASS",
        "PATH",
        "BYTES",
        "RATE",
        "COST USD"
    )?;
    for f in &reply.flows {
        let workload = if f.workload.is_empty() { &f.interface } else { &f.workload };
        let name = match (&f.name, &f.service) {
            (Some(n), _) => n.clone(),
            (None, Some(s)) => format!("{} {s}", f.provider.as_deref().unwrap_or_default()),
            (None, None) => "-".into(),
        };
        writeln!(
            out,
            "{:<28} {:<7} {:<5} {:<42} {:<24} {:<18} {:<20} {:>10} {:>10}/s {:>12.6}{}",
            workload,
            f.direction,
            f.protocol,
            remote(f),
            name,
            f.traffic_class,
            f.egress_path,
            human(f.bytes as f64),
            human(f.bytes_per_second),
            f.cost_usd,
            if f.avoidable { "  avoidable" } else { "" }
        )?;
    }
    Ok(())
}
