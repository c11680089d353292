//! Provider range files (AWS ip-ranges.json, GCP cloud.json, Azure Service Tags) from a
//! corrupt cache or a misbehaving URL: parse or fail, never panic; whatever parses builds a
//! table that answers lookups.
#![no_main]

use egressor::cloud::{CloudTable, Provider, formats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let provider = Provider::ALL[usize::from(which) % Provider::ALL.len()];
    if let Ok(entries) = formats::parse(provider, body) {
        let table = CloudTable::build([(provider, &entries[..])]);
        for e in entries.iter().take(8) {
            assert!(table.lookup(e.prefix.network()).is_some());
        }
    }
});
