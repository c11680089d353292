//! `egressor flowlogs` over a gigabyte of generated flow logs (plain files cut into chunks,
//! and gzip files) gives the generator's own totals to the byte and its cost to the cent
//! (`egressor_tests::flowlog_gen`: the VPC, its traffic and the hand-written prices).

use egressor_tests::{flowlog_gen, shared_data};
use serde_json::Value;

/// Log text generated: 1 GB unless `EGRESSOR_FLOWLOGS_TEST_BYTES` says otherwise.
fn size() -> u64 {
    std::env::var("EGRESSOR_FLOWLOGS_TEST_BYTES")
        .map_or(1_000_000_000, |v| v.parse().expect("a byte count"))
}

#[test]
fn a_generated_gigabyte_gives_the_generators_totals_to_the_byte_and_the_cent() {
    let Some(ranges) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let dir = tempfile::tempdir().unwrap();
    let truth = flowlog_gen::generate(dir.path(), size(), 42, 2, &ranges).unwrap();
    let r = flowlog_gen::report(dir.path(), &[]);
    let input = &r["input"];
    eprintln!("{} files, {} bytes in {} s", input["files"], input["text_bytes"], input["seconds"]);
    assert_eq!(input["files"], truth["files"]);
    for k in ["text_bytes", "records", "nodata", "skipdata", "bad_lines"] {
        assert_eq!(input[k], truth[k], "input.{k}");
    }
    assert_eq!(input["errors"], Value::Array(vec![]));
    let totals = &r["totals"];
    for k in ["counted", "egress_bytes", "ingress_bytes", "internal_bytes", "nat_gateway_bytes"] {
        assert_eq!(totals[k], truth[k], "totals.{k}");
    }
    assert_eq!(r["rejected"], truth["rejected"]);
    let duplicates: u64 =
        r["duplicates"].as_object().unwrap().values().map(|d| d["bytes"].as_u64().unwrap()).sum();
    assert_eq!(duplicates, truth["duplicate_bytes"], "bytes logged twice at the NAT gateway");
    for k in ["cost_usd", "avoidable_usd", "nat_gateway_processing_usd"] {
        let (got, want) = (totals[k].as_f64().unwrap(), truth[k].as_f64().unwrap());
        assert!(want > 1.0, "{k}: {want} is no test");
        assert_eq!(
            (got * 100.0).round(),
            (want * 100.0).round(),
            "{k}: {got} USD, generator {want} USD"
        );
        assert!((got - want).abs() < 1e-6, "{k}: {got} USD, generator {want} USD");
    }
}

/// Without `--nat-gateway`, the report names the generated VPC's NAT gateway in a warning,
/// with as many records as a plain reading of the logs finds where the gateway's address
/// stands for a public one (`dstaddr` it and `pkt-dstaddr` public, or the same for the
/// source); with it, no such warning.
#[test]
fn a_nat_gateway_not_given_is_named_in_a_warning() {
    let Some(ranges) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let dir = tempfile::tempdir().unwrap();
    flowlog_gen::generate(dir.path(), 4_000_000, 7, 0, &ranges).unwrap();
    let nat = flowlog_gen::NAT_GATEWAY;

    // The oracle: every accepted record's fields by the header's names; the VPC's private
    // addresses are its 10.0.0.0/16, every other address in the logs is public.
    let mut expected = 0u64;
    for file in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(' ').collect();
        let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let [src, dst, pkt_src, pkt_dst, action, status] =
            ["srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr", "action", "log-status"]
                .map(column);
        let public = |a: &str| a != "-" && !a.starts_with("10.");
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != header.len() || f[action] != "ACCEPT" || f[status] != "OK" {
                continue;
            }
            expected += u64::from(f[dst] == nat && public(f[pkt_dst]));
            expected += u64::from(f[src] == nat && public(f[pkt_src]));
        }
    }
    assert!(expected > 100, "{expected} records through the NAT gateway is no test");

    let out = std::process::Command::new(egressor_tests::egressor_bin())
        .args(["flowlogs", "--json", "--config.file"])
        .arg(dir.path().join("egressor.yaml"))
        .arg(dir.path().join("logs"))
        .output()
        .expect("run egressor flowlogs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let warnings: Vec<&str> =
        r["input"]["warnings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let named: Vec<&&str> = warnings.iter().filter(|w| w.contains("--nat-gateway")).collect();
    assert_eq!(named.len(), 1, "{warnings:?}");
    let want = format!("{nat} looks like a NAT gateway: in {expected} records");
    assert!(named[0].starts_with(&want), "{:?}, expected {want:?}", named[0]);
    assert!(named[0].contains(&format!("give --nat-gateway {nat}")), "{:?}", named[0]);

    let r = flowlog_gen::report(dir.path(), &[]);
    let warnings = r["input"]["warnings"].as_array().unwrap();
    assert!(
        !warnings.iter().any(|w| w.as_str().unwrap().contains("--nat-gateway")),
        "given, the gateway is not named: {warnings:?}"
    );
}

/// The report and the `--openmetrics` file are the same to the last digit on one thread
/// and on several, whichever thread meets a bucket first (costs are summed, and series
/// written, in the buckets' key order): one gzip file (shared out in runs of lines) and
/// plain files cut into 64 KiB chunks.
#[test]
fn the_report_is_the_same_to_the_last_digit_on_any_number_of_threads() {
    let Some(ranges) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let dir = tempfile::tempdir().unwrap();
    flowlog_gen::generate(dir.path(), 6_000_000, 5, 1, &ranges).unwrap();
    let openmetrics = dir.path().join("flows.om");
    let report = |threads: &str| {
        let args = ["--threads", threads, "--chunk-bytes", "65536", "--openmetrics"];
        let args: Vec<&std::ffi::OsStr> =
            args.iter().map(std::ffi::OsStr::new).chain([openmetrics.as_os_str()]).collect();
        let mut r = flowlog_gen::report(dir.path(), &args);
        r["input"].as_object_mut().unwrap().remove("seconds");
        (r, std::fs::read_to_string(&openmetrics).unwrap())
    };
    let (one, one_om) = report("1");
    assert!(one["totals"]["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(one_om.matches("egressor_flow_cost_usd_total{").count() > 100, "{one_om}");
    for threads in ["2", "2", "2", "4", "4"] {
        let (r, om) = report(threads);
        for (k, v) in one.as_object().unwrap() {
            assert_eq!(&r[k], v, "{k} on {threads} threads");
        }
        assert!(om == one_om, "the OpenMetrics file differs on {threads} threads");
    }
}
