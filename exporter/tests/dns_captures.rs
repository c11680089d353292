//! Every DNS and mDNS message in the packet captures of `../shared/data/pcap/` (Wireshark's
//! sample mix, pcap and pcapng) goes through egressor's DNS parser: responses parse without
//! error, queries are recognised as queries, nothing panics.

use egressor::dns::{DnsError, parse_response};
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

/// UDP payloads from or to port 53 or 5353 of every Ethernet frame in a capture file.
fn dns_payloads(path: &std::path::Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = create_reader(65536, file).unwrap();
    let mut out = Vec::new();
    let mut take = |frame: &[u8]| {
        if let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame)
            && let Some(etherparse::TransportSlice::Udp(udp)) = p.transport
            && [53, 5353]
                .iter()
                .any(|port| [udp.source_port(), udp.destination_port()].contains(port))
        {
            out.push(udp.payload().to_vec());
        }
    };
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::Legacy(b) => take(b.data),
                    PcapBlockOwned::NG(pcap_parser::Block::EnhancedPacket(b)) => take(b.data),
                    PcapBlockOwned::NG(pcap_parser::Block::SimplePacket(b)) => take(b.data),
                    _ => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
            Err(e) => panic!("{}: {e:?}", path.display()),
        }
    }
    out
}

#[test]
fn captured_dns_messages_parse_without_error() {
    let mut messages = 0;
    let mut responses = 0;
    for file in ["pcap/wireshark_samples-test.pcapng", "pcap/test001-le.pcapng", "pcap/ntp.pcap"] {
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
