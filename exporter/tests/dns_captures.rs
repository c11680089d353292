//! Every DNS and mDNS message in the packet captures of `../shared/data/pcap/` (Wireshark's
//! sample mix, pcap and pcapng) goes through egressor's DNS parser: responses parse without
//! error, queries are recognised as queries, nothing panics.

use egressor::dns::{DnsError, parse_response};
use egressor_tests::pcap::{CAPTURES, dns_payloads};

#[test]
fn captured_dns_messages_parse_without_error() {
    let mut messages = 0;
    let mut responses = 0;
    for file in CAPTURES {
        let Some(path) = egressor_tests::shared_data(file) else { return };
        for payload in dns_payloads(&path) {
            messages += 1;
            match parse_response(&payload, false) {
                Ok(learned) => {
                    assert_eq!(learned.error, None, "{file}: {payload:02x?}");
                    responses += 1;
                }
                Err(DnsError::NotResponse) => {}
                Err(e) => panic!("{file}: {e}: {payload:02x?}"),
            }
        }
    }
    eprintln!("{messages} messages, {responses} responses");
    assert!(messages > 0 && responses > 0, "{messages} messages, {responses} responses");
}
