//! A made-up VPC's flow logs with their known answer, for `egressor flowlogs`: the ground
//! truth of the 1 GB test and the input of `bench/flowlogs.sh`.
//!
//! **The VPC** (us-east-1): private subnet 10.0.1.0/24 in use1-az1 reaching the internet
//! through the NAT gateway 10.0.0.220; public subnet 10.0.2.0/24 in use1-az2 with an
//! internet gateway. Remotes: the internet (198.51.100.0/24, 203.0.113.0/24), S3 in
//! us-east-1 (54.231.0.0/16) and EC2 in eu-west-1 (52.208.0.0/14: inside 52.208.0.0/13 and
//! clear of its CloudFront and Route 53 ranges), as listed in AWS's ip-ranges.json.
//!
//! **The traffic**, drawn from a seeded generator: internet egress and ingress of the public
//! subnet; the private subnet's internet and S3 traffic through the NAT gateway, logged as
//! AWS logs it (the gateway's interface once per leg with `pkt-srcaddr`/`pkt-dstaddr`, and
//! the instance's interface); cross-zone and same-zone traffic logged at both ends;
//! cross-region traffic; REJECTs, NODATA, SKIPDATA and a few bad lines. All fields up to
//! version 5, in AWS's order, a header line per file.
//!
//! **The answer** is summed here, record by record, with the prices written below from the
//! AWS us-east-1 sheet (exporter/prices/aws-us-east-1.yaml: EC2 on-demand data transfer and
//! VPC pricing pages, as of 2025-07-01), not with egressor's pricer.

use std::{
    fs::File,
    io::{BufWriter, Write},
    net::Ipv4Addr,
    path::Path,
};

use serde_json::{Value, json};

/// Bytes of text per file (AWS rolls files at 75 MB or 5 minutes; bigger files here so that
/// plain files are cut into several chunks).
pub const FILE_BYTES: u64 = 128 << 20;
/// The NAT gateway's private address (`--nat-gateway`).
pub const NAT_GATEWAY: &str = "10.0.0.220";
/// All fields up to version 5, in AWS's order.
pub const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport \
    protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags \
    type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id \
    pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path";

const GIB: f64 = (1u64 << 30) as f64;
/// USD per GiB: internet egress from us-east-1, the first paid tier (up to 10 TB a month;
/// the 100 GB free tier is off by default, as in egressor).
const INTERNET_EGRESS: f64 = 0.09;
/// NAT gateway data processing, either direction.
const NAT_PROCESSING: f64 = 0.045;
/// Across availability zones, charged on each side.
const CROSS_ZONE: f64 = 0.01;
/// To another region (eu-west-1).
const CROSS_REGION: f64 = 0.02;
/// The generator keeps internet egress inside the first paid tier.
const TIER_GIB: f64 = 10240.0;

/// The configuration describing the VPC, with AWS's ranges from `aws_ranges`.
pub fn config(aws_ranges: &Path) -> String {
    format!(
        "node: {{region: us-east-1}}\n\
         networks:\n  - {{cidr: 10.0.0.0/16, name: vpc, region: us-east-1}}\n  \
         - {{cidr: 10.0.1.0/24, name: private-a, zone: use1-az1, region: us-east-1}}\n  \
         - {{cidr: 10.0.2.0/24, name: public-b, zone: use1-az2, region: us-east-1}}\n\
         subnets:\n  - {{cidr: 10.0.1.0/24, egress: nat_gateway}}\n  \
         - {{cidr: 10.0.2.0/24, egress: internet_gateway}}\n\
         cloud_ranges:\n  cache_dir: null\n  sources:\n    - {{provider: aws, file: {}}}\n",
        aws_ranges.display()
    )
}

/// One line's fields (the others are constant or derived).
struct Line {
    interface: &'static str,
    subnet: &'static str,
    az: &'static str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    pkt: Option<(Ipv4Addr, Ipv4Addr)>,
    packets: u64,
    bytes: u64,
    reject: bool,
    /// true: egress from the interface.
    egress: bool,
    traffic_path: Option<u8>,
    dst_service: Option<&'static str>,
    src_service: Option<&'static str>,
}

/// Sums of what was written.
#[derive(Default)]
struct Truth {
    records: u64,
    nodata: u64,
    skipdata: u64,
    bad_lines: u64,
    counted: [u64; 3],
    egress: u64,
    ingress: u64,
    internal: u64,
    rejected: [u64; 3],
    duplicate_bytes: u64,
    /// Bytes at each price: internet egress, NAT processing (non-S3), NAT processing to S3,
    /// cross-zone, cross-region.
    internet_egress: u64,
    nat: u64,
    nat_s3: u64,
    cross_zone: u64,
    cross_region: u64,
    text_bytes: u64,
}

#[derive(Clone, Copy)]
enum Dir {
    Egress,
    Ingress,
    Internal,
}

struct Gen<'a> {
    rng: fastrand::Rng,
    truth: Truth,
    out: &'a mut dyn Write,
    written: u64,
    time: u64,
}

/// One end's interface, subnet and zone.
type End = (&'static str, &'static str, &'static str);

const AZ1: &str = "use1-az1";
const AZ2: &str = "use1-az2";

impl Gen<'_> {
    fn private(&mut self) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 1, self.rng.u8(4..250))
    }
    fn public_subnet(&mut self) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 2, self.rng.u8(4..250))
    }
    fn internet(&mut self) -> Ipv4Addr {
        if self.rng.bool() {
            Ipv4Addr::new(198, 51, 100, self.rng.u8(1..255))
        } else {
            Ipv4Addr::new(203, 0, 113, self.rng.u8(1..255))
        }
    }
    fn s3(&mut self) -> Ipv4Addr {
        Ipv4Addr::new(54, 231, self.rng.u8(..), self.rng.u8(1..255))
    }
    fn eu_ec2(&mut self) -> Ipv4Addr {
        Ipv4Addr::new(52, self.rng.u8(208..212), self.rng.u8(..), self.rng.u8(1..255))
    }
    fn size(&mut self) -> (u64, u64) {
        let bytes = self.rng.u64(40..1_500_000);
        (bytes, bytes / 1400 + 1)
    }
    fn nat() -> Ipv4Addr {
        NAT_GATEWAY.parse().expect("an address")
    }

    /// Writes a counted record.
    fn counted(&mut self, l: Line, dir: Dir) {
        let t = &mut self.truth;
        t.counted[0] += l.bytes;
        t.counted[1] += l.packets;
        t.counted[2] += 1;
        *match dir {
            Dir::Egress => &mut t.egress,
            Dir::Ingress => &mut t.ingress,
            Dir::Internal => &mut t.internal,
        } += l.bytes;
        self.write(&l);
    }

    fn duplicate(&mut self, l: Line) {
        self.truth.duplicate_bytes += l.bytes;
        self.write(&l);
    }

    fn write(&mut self, l: &Line) {
        self.truth.records += 1;
        let dash = |a: Option<&str>| a.unwrap_or("-").to_owned();
        let (psrc, pdst) = match l.pkt {
            Some((s, d)) => (s.to_string(), d.to_string()),
            None => ("-".into(), "-".into()),
        };
        let port = self.rng.u16(1024..65535);
        let text = format!(
            "5 123456789012 {iface} {src} {dst} {port} 443 6 {packets} {bytes} {start} {end} {action} OK \
             vpc-0a1b2c3d {subnet} - 3 IPv4 {psrc} {pdst} us-east-1 {az} - - {ssvc} {dsvc} {dir} {path}\n",
            iface = l.interface,
            src = l.src,
            dst = l.dst,
            packets = l.packets,
            bytes = l.bytes,
            start = self.time,
            end = self.time + 60,
            action = if l.reject { "REJECT" } else { "ACCEPT" },
            subnet = l.subnet,
            az = l.az,
            ssvc = dash(l.src_service),
            dsvc = dash(l.dst_service),
            dir = if l.egress { "egress" } else { "ingress" },
            path = l.traffic_path.map_or("-".into(), |p| p.to_string()),
        );
        self.raw(&text);
    }

    fn raw(&mut self, text: &str) {
        self.out.write_all(text.as_bytes()).expect("write");
        self.written += text.len() as u64;
        self.truth.text_bytes += text.len() as u64;
    }

    /// An internal flow `src` → `dst` as both ends log it: the sender's interface (egress)
    /// and the receiver's (ingress), each (interface, subnet, zone).
    fn both_ends(&mut self, base: Line, src: Ipv4Addr, dst: Ipv4Addr, sender: End, receiver: End) {
        for ((interface, subnet, az), egress) in [(sender, true), (receiver, false)] {
            let traffic_path = egress.then_some(1);
            let l = Line { interface, subnet, az, src, dst, egress, traffic_path, ..base };
            self.counted(l, Dir::Internal);
        }
    }

    /// One flow (one to three lines).
    fn flow(&mut self) {
        self.time += u64::from(self.rng.u8(..2));
        let (bytes, packets) = self.size();
        let base = Line {
            interface: "",
            subnet: "",
            az: "",
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
            pkt: None,
            packets,
            bytes,
            reject: false,
            egress: false,
            traffic_path: None,
            dst_service: None,
            src_service: None,
        };
        let nat = Self::nat();
        match self.rng.u32(0..100) {
            // The public subnet sends to the internet.
            0..20 => {
                let (src, dst) = (self.public_subnet(), self.internet());
                self.truth.internet_egress += bytes;
                let l = Line {
                    interface: "eni-web",
                    subnet: "subnet-pub",
                    az: AZ2,
                    src,
                    dst,
                    egress: true,
                    traffic_path: Some(8),
                    ..base
                };
                self.counted(l, Dir::Egress);
            }
            // … and receives from it (free).
            20..35 => {
                let (src, dst) = (self.internet(), self.public_subnet());
                let l =
                    Line { interface: "eni-web", subnet: "subnet-pub", az: AZ2, src, dst, ..base };
                self.counted(l, Dir::Ingress);
            }
            // The private subnet sends to the internet or S3 through the NAT gateway: the
            // gateway's two legs and the instance's record.
            35..51 => {
                let to_s3 = self.rng.u8(..3) == 0;
                let (src, dst) = (self.private(), if to_s3 { self.s3() } else { self.internet() });
                let service = to_s3.then_some("S3");
                if to_s3 {
                    self.truth.nat_s3 += bytes;
                } else {
                    self.truth.nat += bytes;
                    self.truth.internet_egress += bytes;
                }
                let leg = Line {
                    interface: "eni-nat",
                    subnet: "subnet-nat",
                    az: AZ1,
                    pkt: Some((src, dst)),
                    dst_service: service,
                    ..base
                };
                self.counted(Line { src, dst: nat, ..leg }, Dir::Egress);
                self.duplicate(Line {
                    src: nat,
                    dst,
                    pkt: Some((nat, dst)),
                    egress: true,
                    traffic_path: Some(8),
                    ..leg
                });
                let own = Line {
                    interface: "eni-app",
                    subnet: "subnet-app",
                    az: AZ1,
                    src,
                    dst,
                    egress: true,
                    dst_service: service,
                    ..base
                };
                self.duplicate(own);
            }
            // … and the replies.
            51..63 => {
                let from_s3 = self.rng.u8(..3) == 0;
                let (src, dst) =
                    (if from_s3 { self.s3() } else { self.internet() }, self.private());
                let service = from_s3.then_some("S3");
                if from_s3 {
                    self.truth.nat_s3 += bytes;
                } else {
                    self.truth.nat += bytes;
                }
                let leg = Line {
                    interface: "eni-nat",
                    subnet: "subnet-nat",
                    az: AZ1,
                    src_service: service,
                    ..base
                };
                self.duplicate(Line { src, dst: nat, pkt: Some((src, nat)), ..leg });
                self.counted(
                    Line { src: nat, dst, pkt: Some((src, dst)), egress: true, ..leg },
                    Dir::Ingress,
                );
                self.duplicate(Line {
                    interface: "eni-app",
                    subnet: "subnet-app",
                    src,
                    dst,
                    src_service: service,
                    ..leg
                });
            }
            // Across zones, logged by both ends, each charged.
            63..73 => {
                let (a, b) = (self.private(), self.public_subnet());
                self.truth.cross_zone += 2 * bytes;
                self.both_ends(
                    base,
                    a,
                    b,
                    ("eni-app", "subnet-app", AZ1),
                    ("eni-web", "subnet-pub", AZ2),
                );
            }
            // Within a zone (free), both ends.
            73..83 => {
                let (a, b) = (self.public_subnet(), self.public_subnet());
                self.both_ends(
                    base,
                    a,
                    b,
                    ("eni-web", "subnet-pub", AZ2),
                    ("eni-web2", "subnet-pub", AZ2),
                );
            }
            // To EC2 in eu-west-1 through the internet gateway.
            83..90 => {
                let (src, dst) = (self.public_subnet(), self.eu_ec2());
                self.truth.cross_region += bytes;
                let l = Line {
                    interface: "eni-web",
                    subnet: "subnet-pub",
                    az: AZ2,
                    src,
                    dst,
                    egress: true,
                    traffic_path: Some(8),
                    ..base
                };
                self.counted(l, Dir::Egress);
            }
            // Dropped by a security group: not billed.
            90..96 => {
                let (src, dst) = (self.internet(), self.public_subnet());
                let t = &mut self.truth;
                t.rejected[0] += bytes;
                t.rejected[1] += packets;
                t.rejected[2] += 1;
                self.write(&Line {
                    interface: "eni-web",
                    subnet: "subnet-pub",
                    az: AZ2,
                    src,
                    dst,
                    reject: true,
                    ..base
                });
            }
            96..98 => {
                self.truth.nodata += 1;
                let t = self.time;
                self.raw(&format!("5 123456789012 eni-idle - - - - - - - {t} {} - NODATA vpc-0a1b2c3d subnet-pub - - - - - us-east-1 use1-az2 - - - - - -\n", t + 60));
            }
            98 => {
                self.truth.skipdata += 1;
                let t = self.time;
                self.raw(&format!("5 123456789012 eni-web - - - - - - - {t} {} - SKIPDATA vpc-0a1b2c3d subnet-pub - - - - - us-east-1 use1-az2 - - - - - -\n", t + 60));
            }
            // A line cut short, as a broken pipe leaves it.
            _ => {
                self.truth.bad_lines += 1;
                self.raw("5 123456789012 eni-web 10.0.2.9 198.51.100.4 40112 443 6\n");
            }
        }
    }
}

/// Runs `egressor flowlogs --json` over the logs `generate` wrote into `dir`, with its
/// configuration, the NAT gateway and `extra` flags; returns the report.
///
/// # Panics
/// When egressor fails (with its stderr) or prints no JSON.
pub fn report(dir: &Path, extra: &[&std::ffi::OsStr]) -> Value {
    let out = std::process::Command::new(crate::egressor_bin())
        .args(["flowlogs", "--json", "--nat-gateway", NAT_GATEWAY, "--config.file"])
        .arg(dir.join("egressor.yaml"))
        .args(extra)
        .arg(dir.join("logs"))
        .output()
        .expect("run egressor flowlogs");
    assert!(out.status.success(), "egressor flowlogs: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// Writes about `bytes` of log text into `out/logs/` (files `…_NNNN.log`, the first `gzip`
/// of them as `.log.gz`), `out/egressor.yaml` (the VPC, with AWS's ranges from
/// `aws_ranges`) and `out/truth.json`; returns the truth.
///
/// # Errors
/// A file that cannot be written.
///
/// # Panics
/// When `bytes` is so large that internet egress would leave the first paid tier.
pub fn generate(
    out: &Path,
    bytes: u64,
    seed: u64,
    gzip: usize,
    aws_ranges: &Path,
) -> std::io::Result<Value> {
    std::fs::create_dir_all(out.join("logs"))?;
    std::fs::write(out.join("egressor.yaml"), config(aws_ranges))?;
    let mut truth = Truth::default();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut time = 1_764_547_200; // 2025-12-01T00:00:00Z
    let mut file = 0;
    while truth.text_bytes < bytes {
        let name = format!(
            "123456789012_vpcflowlogs_us-east-1_fl-0a1b2c3d_20251201T0000Z_{file:04}.log{}",
            if file < gzip { ".gz" } else { "" }
        );
        let sink = BufWriter::with_capacity(1 << 20, File::create(out.join("logs").join(name))?);
        let mut sink: Box<dyn Write> = if file < gzip {
            Box::new(flate2::write::GzEncoder::new(sink, flate2::Compression::fast()))
        } else {
            Box::new(sink)
        };
        let mut g = Gen { rng, truth, out: &mut *sink, written: 0, time };
        g.raw(&format!("{HEADER}\n"));
        while g.written < FILE_BYTES && g.truth.text_bytes < bytes {
            g.flow();
        }
        (rng, truth, time) = (g.rng, g.truth, g.time);
        sink.flush()?;
        drop(sink);
        file += 1;
    }
    let t = &truth;
    assert!(
        t.internet_egress as f64 / GIB < TIER_GIB,
        "{bytes} bytes of logs would send more than the first tier to the internet"
    );
    let cost = t.internet_egress as f64 / GIB * INTERNET_EGRESS
        + (t.nat + t.nat_s3) as f64 / GIB * NAT_PROCESSING
        + t.cross_zone as f64 / GIB * CROSS_ZONE
        + t.cross_region as f64 / GIB * CROSS_REGION;
    let avoidable = t.nat_s3 as f64 / GIB * NAT_PROCESSING;
    let value = json!({
        "files": file,
        "text_bytes": t.text_bytes,
        "records": t.records,
        "nodata": t.nodata,
        "skipdata": t.skipdata,
        "bad_lines": t.bad_lines,
        "counted": {"bytes": t.counted[0], "packets": t.counted[1], "records": t.counted[2]},
        "egress_bytes": t.egress,
        "ingress_bytes": t.ingress,
        "internal_bytes": t.internal,
        "rejected": {"bytes": t.rejected[0], "packets": t.rejected[1], "records": t.rejected[2]},
        "duplicate_bytes": t.duplicate_bytes,
        "cost_usd": cost,
        "avoidable_usd": avoidable,
        "nat_gateway_bytes": t.nat + t.nat_s3,
        "nat_gateway_processing_usd": (t.nat + t.nat_s3) as f64 / GIB * NAT_PROCESSING,
    });
    std::fs::write(out.join("truth.json"), serde_json::to_vec_pretty(&value)?)?;
    Ok(value)
}
