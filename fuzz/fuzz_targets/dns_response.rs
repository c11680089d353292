//! DNS responses as the kernel copies them (UDP, or TCP with its length prefix): the parser
//! must return an answer or an error for any bytes, and the cache must take whatever it
//! returns.
#![no_main]

use egressor::dns::{DnsNames, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tcp = data.first().is_some_and(|b| b & 1 == 1);
    let message = data.get(1..).unwrap_or_default();
    if let Ok(learned) = parse_response(message, tcp) {
        for (_, name, _) in &learned.addresses {
            assert!(name.len() <= egressor::dns::MAX_NAME_LEN);
        }
    }
    let names = DnsNames::new(16, std::time::Duration::from_secs(1));
    names.learn(message, tcp);
});
