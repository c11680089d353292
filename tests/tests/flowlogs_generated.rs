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
