//! TC on an interface without a link-layer header (a tun device, as WireGuard or a VPN
//! client would present): the `egr_tc_*3` programs parse from the IP header, and the agent's
//! counters equal the interface's, byte for byte.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use egressor_tests::*;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// A tun device in this (root) namespace; the file is its packet end. Removed on drop.
struct Tun {
    name: String,
    file: File,
}

impl Tun {
    fn new() -> Self {
        let name = unique_name("tu");
        let file =
            OpenOptions::new().read(true).write(true).open("/dev/net/tun").expect("/dev/net/tun");
        // struct ifreq: 16-byte name, then the flags.
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(name.as_bytes());
        ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes an ifreq-sized buffer.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, ifr.as_mut_ptr()) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        // SAFETY: fcntl on our own descriptor.
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Self { name, file }
    }

    /// Packets the kernel sent out of the device within `wait`.
    fn read_packets(&mut self, wait: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut packets = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            match self.file.read(&mut buf) {
                Ok(n) => packets.push(buf[..n].to_vec()),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        packets
    }
}

impl Drop for Tun {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.name]).status();
    }
}

/// An IPv4 UDP packet `src → dst` with `payload` bytes (checksums left zero: the kernel
/// drops it after TC has counted it, which is all this test needs).
fn udp4(src: [u8; 4], dst: [u8; 4], payload: usize) -> Vec<u8> {
    let total = 20 + 8 + payload;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&9999u16.to_be_bytes());
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.resize(total, 0x61);
    p
}

#[test]
fn tc_on_a_tun_device_counts_ip_packets_exactly() {
    if !require_bpf("tc_on_a_tun_device_counts_ip_packets_exactly") {
        return;
    }
    let mut tun = Tun::new();
    let config = temp_file("tun.yaml", "networks:\n  - {cidr: 203.0.113.0/30, name: tun-peer}\n");
    let (agent, programs) = start_agent_tracking_programs(&[
        "--interface",
        &tun.name,
        "--config.file",
        config.to_str().unwrap(),
    ]);
    run(&["ip", "addr", "add", "203.0.113.1", "peer", "203.0.113.2", "dev", &tun.name]);
    run(&["ip", "link", "set", &tun.name, "up"]);

    // Out of the host: datagrams to the peer leave through the tun device.
    let socket = std::net::UdpSocket::bind("203.0.113.1:0").expect("bind");
    for _ in 0..5 {
        socket.send_to(&[0x5a; 300], "203.0.113.2:9999").expect("send");
    }
    let sent: Vec<_> = tun
        .read_packets(Duration::from_millis(500))
        .into_iter()
        .filter(|p| p.len() >= 20 && p[0] >> 4 == 4 && p[16..20] == [203, 0, 113, 2])
        .collect();
    assert_eq!(sent.len(), 5, "five datagrams left through the tun");
    // Into the host: five packets from the peer.
    for _ in 0..5 {
        tun.file.write_all(&udp4([203, 0, 113, 2], [203, 0, 113, 1], 200)).expect("write");
    }

    let (kernel, rx, tx) = quiet_comparison(&agent, &tun.name);
    assert_eq!(rx, (kernel.rx_bytes, kernel.rx_packets), "ingress: no link-layer bytes");
    assert_eq!(tx, (kernel.tx_bytes, kernel.tx_packets), "egress: no link-layer bytes");
    let m = agent.metrics();
    let peer = |direction| {
        let l = [("hook", "tc"), ("remote", "tun-peer"), ("direction", direction)];
        (
            m.sum("egressor_flow_bytes_total", &l) as u64,
            m.sum("egressor_flow_packets_total", &l) as u64,
        )
    };
    assert_eq!(peer("egress"), (5 * (20 + 8 + 300), 5), "addresses parsed from offset 0");
    assert_eq!(peer("ingress"), (5 * (20 + 8 + 200), 5));
    stop_and_assert_detached(agent, &programs);
    let _ = std::fs::remove_file(config);
}
