//! Traffic for egressor's end-to-end tests, run inside the tests' network namespaces
//! (and cgroups). Every subcommand prints what it sent on stdout, one `key=value` per line.
//!
//! ```text
//! egressor-traffic udp-send TARGET COUNT SIZE [echo]   COUNT datagrams of SIZE payload bytes
//! egressor-traffic udp-pace TARGET SIZE RATE:SECS,…    datagrams of SIZE payload bytes at
//!                                                      RATE payload bytes per second for
//!                                                      SECS, then the next step
//! egressor-traffic udp-echo BIND COUNT                 echo COUNT datagrams back
//! egressor-traffic udp-spray IP FIRST_PORT PORTS SIZE  one datagram to each of PORTS ports
//! egressor-traffic udp-scatter SIZE PORT N CIDR…        one datagram to each of the first N
//!                                                      hosts of each CIDR (IPv4)
//! egressor-traffic resolve-send NAME PORT COUNT SIZE    resolve NAME (getaddrinfo: the
//!                                                      namespace's resolv.conf), then COUNT
//!                                                      datagrams to each address
//! egressor-traffic dns-echo TARGET COUNT               COUNT DNS responses (nI.flood.test A
//!                                                      203.0.113.(I mod 200)) to an echo
//!                                                      server, each echoed back
//! egressor-traffic tcp-send TARGET BYTES               one connection, BYTES of payload
//! egressor-traffic tcp-sink BIND                       accept one connection, read to EOF
//! egressor-traffic raw-frames IFACE                    crafted odd frames over AF_PACKET
//! ```

use std::{
    io::Write,
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["udp-send", target, count, size, rest @ ..] => {
            udp_send(target.parse().expect("TARGET"), num(count), num(size), rest == ["echo"])
        }
        ["udp-pace", target, size, schedule] => {
            udp_pace(target.parse().expect("TARGET"), num(size), schedule)
        }
        ["udp-echo", bind, count] => udp_echo(bind.parse().expect("BIND"), num(count)),
        ["udp-spray", ip, first, ports, size] => {
            udp_spray(ip, num(first) as u16, num(ports), num(size))
        }
        ["udp-scatter", size, port, n, cidrs @ ..] => {
            udp_scatter(num(size), num(port) as u16, num(n), cidrs)
        }
        ["resolve-send", name, port, count, size] => {
            resolve_send(name, num(port) as u16, num(count), num(size))
        }
        ["dns-echo", target, count] => dns_echo(target.parse().expect("TARGET"), num(count)),
        ["tcp-send", target, bytes] => tcp_send(target.parse().expect("TARGET"), num(bytes) as u64),
        ["tcp-sink", bind] => tcp_sink(bind.parse().expect("BIND")),
        ["raw-frames", iface] => raw_frames(iface),
        _ => {
            eprintln!("usage: see the module documentation of tests/src/bin/egressor-traffic.rs");
            std::process::exit(2);
        }
    }
}

fn num(s: &str) -> usize {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

fn bind_any(target: &SocketAddr) -> UdpSocket {
    let any = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    UdpSocket::bind(any).expect("bind")
}

fn udp_send(target: SocketAddr, count: usize, size: usize, echo: bool) {
    let socket = bind_any(&target);
    socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let payload = vec![0x5a; size];
    let mut buf = vec![0; size + 1];
    let mut replies = 0;
    for _ in 0..count {
        socket.send_to(&payload, target).expect("send");
        if echo {
            let (n, _) = socket.recv_from(&mut buf).expect("echo reply");
            assert_eq!(n, size, "echo size");
            replies += 1;
        }
    }
    println!("sent={count}\nreplies={replies}");
}

/// Sends at each step's rate in 10 ms ticks (carrying the remainder), so any second holds the
/// step's bytes to one datagram; prints the datagrams sent in each step (`step0=…`).
fn udp_pace(target: SocketAddr, size: usize, schedule: &str) {
    let socket = bind_any(&target);
    let payload = vec![0x7e; size];
    let tick = Duration::from_millis(10);
    for (i, step) in schedule.split(',').enumerate() {
        let (rate, secs) = step.split_once(':').expect("RATE:SECS");
        let per_tick = num(rate) as f64 * tick.as_secs_f64();
        let start = std::time::Instant::now();
        let end = start + Duration::from_secs(num(secs) as u64);
        let (mut owed, mut sent, mut next) = (0.0, 0u64, start);
        while next < end {
            owed += per_tick;
            while owed >= size as f64 {
                socket.send_to(&payload, target).expect("send");
                owed -= size as f64;
                sent += 1;
            }
            next += tick;
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        }
        println!("step{i}={sent}");
    }
}

fn udp_echo(bind: SocketAddr, count: usize) {
    let echoed = egressor_tests::udp_echo(&bind.to_string(), count).join().expect("echo");
    println!("echoed={echoed}");
}

fn udp_spray(ip: &str, first: u16, ports: usize, size: usize) {
    let payload = vec![0xa5; size];
    let ip: std::net::IpAddr = ip.parse().expect("IP");
    let target = SocketAddr::new(ip, first);
    let socket = bind_any(&target);
    for i in 0..ports {
        let mut t = target;
        t.set_port(first + i as u16);
        socket.send_to(&payload, t).expect("send");
    }
    println!("sent={ports}");
}

fn udp_scatter(size: usize, port: u16, n: usize, cidrs: &[&str]) {
    let payload = vec![0x3c; size];
    let socket = UdpSocket::bind("0.0.0.0:0").expect("bind");
    let mut sent = 0;
    for cidr in cidrs {
        let (net, _) = cidr.split_once('/').expect("CIDR");
        let first = u32::from(net.parse::<std::net::Ipv4Addr>().expect("IPv4 CIDR"));
        for host in 1..=n as u32 {
            let target = SocketAddr::from((std::net::Ipv4Addr::from(first + host), port));
            socket.send_to(&payload, target).expect("send");
            sent += 1;
        }
    }
    println!("sent={sent}");
}

fn resolve_send(name: &str, port: u16, count: usize, size: usize) {
    use std::net::ToSocketAddrs;
    let mut addresses: Vec<SocketAddr> = (name, port)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("resolving {name}: {e}"))
        .collect();
    addresses.sort();
    addresses.dedup();
    let payload = vec![0x42; size];
    for a in &addresses {
        let socket = bind_any(a);
        for _ in 0..count {
            socket.send_to(&payload, a).expect("send");
        }
    }
    let list: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
    println!("addresses={}\nsent={}", list.join(","), count * addresses.len());
}

/// A DNS response (RFC 1035 §4.1) for `nI.flood.test` A: one answer, 203.0.113.(I mod 200),
/// TTL 300.
fn dns_response(i: usize) -> Vec<u8> {
    let mut m = vec![(i >> 8) as u8, i as u8, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    let label = format!("n{i}");
    m.push(label.len() as u8);
    m.extend(label.as_bytes());
    m.extend(b"\x05flood\x04test\x00\x00\x01\x00\x01");
    m.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 203, 0, 113, (i % 200) as u8]);
    m
}

fn dns_echo(target: SocketAddr, count: usize) {
    let socket = bind_any(&target);
    socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut buf = [0u8; 512];
    let started = std::time::Instant::now();
    for i in 0..count {
        let m = dns_response(i);
        socket.send_to(&m, target).expect("send");
        let (n, _) = socket.recv_from(&mut buf).expect("echo reply");
        assert_eq!(&buf[..n], &m[..], "echo");
    }
    println!("sent={count}\nreplies={count}\nseconds={}", started.elapsed().as_secs_f64());
}

fn tcp_send(target: SocketAddr, bytes: u64) {
    egressor_tests::tcp_send(&target.to_string(), bytes);
    println!("sent={bytes}");
}

fn tcp_sink(bind: SocketAddr) {
    // The harness binds before it returns: the peer may connect once this line is out.
    let sink = egressor_tests::tcp_sink(&bind.to_string());
    println!("listening={bind}");
    std::io::stdout().flush().expect("flush");
    println!("received={}", sink.join().expect("sink"));
}

/// Sends frames a flow parser must survive, from the namespace side of the veth. Prints
/// `frames=` and `bytes=` (link-layer bytes handed to the kernel).
fn raw_frames(iface: &str) {
    let frames = crafted_frames();
    let c_iface = std::ffi::CString::new(iface).expect("iface");
    // SAFETY: plain libc calls with valid arguments; the socket is closed at the end.
    unsafe {
        let index = libc::if_nametoindex(c_iface.as_ptr());
        assert!(index != 0, "no interface {iface}");
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        let mut total = 0;
        for frame in &frames {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = index as i32;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            let n = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(n, frame.len() as isize, "sendto: {}", std::io::Error::last_os_error());
            total += frame.len();
        }
        libc::close(fd);
        // Link-layer bytes beyond the Ethernet header: one 802.1Q tag.
        println!("frames={}\nbytes={total}\nvlan_tag_bytes=4", frames.len());
    }
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6]; // broadcast: every veth end accepts it
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(proto: u8, frag: u16, total_len_field: u16, body: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total_len_field.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&[198, 51, 100, 2, 198, 51, 100, 1]);
    h.extend_from_slice(body);
    h
}

fn ipv6(next: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(body);
    h
}

fn crafted_frames() -> Vec<Vec<u8>> {
    let udp = [0x30, 0x39, 0x23, 0x28, 0, 12, 0, 0, b'o', b'd', b'd', b'!'];
    // Hop-by-hop (8 bytes, PadN) → destination options (16 bytes) → routing (type 0 of
    // length 0 would be refused; a type-4 SRH header of 8 bytes) → fragment (first) → UDP.
    let mut chain = vec![60, 0, 1, 4, 0, 0, 0, 0];
    chain.extend_from_slice(&[43, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    chain.extend_from_slice(&[44, 0, 4, 0, 0, 0, 0, 0]);
    chain.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
    chain.extend_from_slice(&udp);
    // A chain longer than the parser walks: eight hop-by-hop-style destination options.
    let mut long_chain = Vec::new();
    for _ in 0..7 {
        long_chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    long_chain.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    long_chain.extend_from_slice(&udp);
    vec![
        // Unknown EtherType (IEEE 802 local experimental).
        ethernet(0x88B5, b"egressor test frame, not IP at all"),
        // Shorter than an IPv4 header.
        ethernet(0x0800, &[0x45, 0, 0, 20, 0, 0]),
        // IPv4 header claiming IHL 15 (60 bytes) on a 24-byte packet.
        ethernet(0x0800, &{
            let mut p = ipv4(17, 0, 24, &[0, 1, 2, 3]);
            p[0] = 0x4f;
            p
        }),
        // IHL below the minimum.
        ethernet(0x0800, &{
            let mut p = ipv4(6, 0, 20, &[]);
            p[0] = 0x42;
            p
        }),
        // TCP header cut after 6 bytes.
        ethernet(0x0800, &ipv4(6, 0, 26, &[0x1f, 0x90, 0xd4, 0x31, 0, 0])),
        // A non-first IPv4 fragment (offset 185 × 8): no transport header to read.
        ethernet(0x0800, &ipv4(17, 185, 40, &[0xde; 20])),
        // Shorter than an IPv6 header.
        ethernet(0x86DD, &[0x60, 0, 0, 0, 0, 8, 17]),
        // A walkable IPv6 extension chain ending in UDP.
        ethernet(0x86DD, &ipv6(0, &chain)),
        // A chain longer than the parser's bound.
        ethernet(0x86DD, &ipv6(60, &long_chain)),
        // A non-first IPv6 fragment.
        ethernet(0x86DD, &ipv6(44, &[17, 0, 0x05, 0xc8, 0, 0, 0, 9, 1, 2, 3, 4])),
        // An extension header whose length runs past the packet.
        ethernet(0x86DD, &ipv6(60, &[17, 200, 1, 4, 0, 0, 0, 0])),
        // VLAN-tagged IPv4 UDP (802.1Q).
        ethernet(0x8100, &{
            let mut p = vec![0, 7, 0x08, 0x00];
            p.extend(ipv4(17, 0, 32, &udp));
            p
        }),
        // A runt: nothing after the Ethernet header.
        ethernet(0x0800, &[]),
        // IPv4 with a 4-byte option (IHL 6, NOPs and end of list) carrying UDP to port
        // 9001: the ports lie past the option, where the common-packet fast path does not
        // look (it takes IHL 5 only).
        ethernet(0x0800, &{
            let mut body = vec![1, 1, 1, 0];
            body.extend_from_slice(&[0x30, 0x39, 0x23, 0x29, 0, 12, 0, 0, b'o', b'p', b't', b'!']);
            let mut p = ipv4(17, 0, 36, &body);
            p[0] = 0x46;
            p
        }),
    ]
}
