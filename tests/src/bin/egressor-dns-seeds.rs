//! Writes the DNS messages of the shared packet captures as seeds of the `dns_response` fuzz
//! target (`scripts/fuzz.sh` runs it): `egressor-dns-seeds OUT_DIR`, one file per message,
//! in the target's input format (a first byte whose low bit says TCP; 0: UDP).

fn main() {
    let out = std::env::args().nth(1).expect("usage: egressor-dns-seeds OUT_DIR");
    std::fs::create_dir_all(&out).expect("create OUT_DIR");
    let mut written = 0;
    for capture in egressor_tests::pcap::CAPTURES {
        let Some(path) = egressor_tests::shared_data(capture) else { continue };
        for payload in egressor_tests::pcap::dns_payloads(&path) {
            let mut seed = vec![0u8];
            seed.extend(payload);
            std::fs::write(format!("{out}/pcap-{written}"), seed).expect("write seed");
            written += 1;
        }
    }
    println!("seeds={written}");
}
