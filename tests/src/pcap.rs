//! DNS messages out of packet captures (pcap and pcapng, Ethernet frames): the payloads of
//! UDP datagrams from or to port 53 or 5353, for the parser tests and the fuzz seeds.

use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

/// UDP payloads from or to port 53 or 5353 of every Ethernet frame in a capture file.
///
/// # Panics
/// If the file cannot be opened or is not a capture (test data is expected to be sound).
pub fn dns_payloads(path: &std::path::Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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

/// The captures in `../shared/data/pcap/` that carry DNS.
pub const CAPTURES: [&str; 3] =
    ["pcap/wireshark_samples-test.pcapng", "pcap/test001-le.pcapng", "pcap/ntp.pcap"];
