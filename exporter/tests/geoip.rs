//! MaxMind test databases (`../shared/data/mmdb/`) give the AS organisation and country that
//! the JSON they were built from lists, found here by longest-prefix match over that JSON.

use std::{net::IpAddr, path::Path};

use egressor::geoip::GeoIp;
use ipnet::IpNet;
use serde_json::Value;

/// (network, record) pairs of a MaxMind test-data JSON file.
fn records(path: &Path) -> Vec<(IpNet, Value)> {
    let json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o.as_object().unwrap().iter())
        .map(|(net, rec)| (net.parse().unwrap(), rec.clone()))
        .collect()
}

/// The record of the longest network containing `addr`.
fn expected(records: &[(IpNet, Value)], addr: IpAddr) -> Option<&Value> {
    records
        .iter()
        .filter(|(n, _)| n.contains(&addr))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, r)| r)
}

#[test]
fn asn_and_country_match_the_databases_sources() {
    let data = |f| egressor_tests::shared_data(&format!("mmdb/{f}"));
    let (Some(asn_db), Some(asn_json), Some(cc_db), Some(cc_json)) = (
        data("GeoLite2-ASN-Test.mmdb"),
        data("GeoLite2-ASN-Test.json"),
        data("GeoIP2-Country-Test.mmdb"),
        data("GeoIP2-Country-Test.json"),
    ) else {
        return;
    };
    let geo = GeoIp::open(Some(&asn_db), Some(&cc_db)).unwrap();
    let asn = records(&asn_json);
    let cc = records(&cc_json);
    let mut checked = (0, 0);
    for (net, _) in asn.iter().chain(&cc) {
        let addr = net.network();
        let got = geo.lookup(addr);
        if let Some(rec) = expected(&asn, addr) {
            assert_eq!(
                got.asn,
                rec["autonomous_system_number"].as_u64().map(|n| n as u32),
                "{addr}"
            );
            let org = rec["autonomous_system_organization"].as_str().map(str::to_owned);
            assert_eq!(got.as_organization, org, "{addr}");
            checked.0 += 1;
        }
        if let Some(rec) = expected(&cc, addr) {
            let want = rec["country"]["iso_code"]
                .as_str()
                .or(rec["registered_country"]["iso_code"].as_str())
                .map(str::to_owned);
            assert_eq!(got.country, want, "{addr}");
            checked.1 += 1;
        }
    }
    assert!(checked.0 > 20 && checked.1 > 20, "{checked:?}");
    // Spot checks, as listed in the JSON: 1.0.0.0/24 is AS15169 "Google Inc.", 2001:218::/32 JP.
    let google = geo.lookup("1.0.0.1".parse().unwrap());
    assert_eq!((google.asn, google.as_organization.as_deref()), (Some(15169), Some("Google Inc.")));
    assert_eq!(geo.lookup("2001:218::1".parse().unwrap()).country.as_deref(), Some("JP"));
    assert_eq!(geo.lookup("198.51.100.1".parse().unwrap()), Default::default());
}

#[test]
fn corrupt_missing_and_mismatched_databases_are_named() {
    let Some(country) = egressor_tests::shared_data("mmdb/GeoIP2-Country-Test.mmdb") else {
        return;
    };
    let e = GeoIp::open(Some(&country), None).unwrap_err().to_string();
    assert!(e.starts_with("--geoip-asn ") && e.contains("GeoIP2-Country"), "{e}");
    let e = GeoIp::open(Some(Path::new("/nonexistent.mmdb")), None).unwrap_err().to_string();
    assert!(e.contains("/nonexistent.mmdb"), "{e}");
    let bytes = std::fs::read(&country).unwrap();
    for (name, body) in
        [("truncated", &bytes[..bytes.len() / 2]), ("garbage", &b"not a database"[..])]
    {
        let path = egressor_tests::temp_file(&format!("{name}.mmdb"), "");
        std::fs::write(&path, body).unwrap();
        let e = GeoIp::open(None, Some(&path)).unwrap_err().to_string();
        assert!(e.starts_with("--geoip-country ") && e.contains(name), "{e}");
        let _ = std::fs::remove_file(path);
    }
}
