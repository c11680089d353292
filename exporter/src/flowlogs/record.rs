//! One flow-log record, read from its line without copying: the fields egressor uses, typed.

use std::net::IpAddr;

use super::format::{Field, Layout};

/// `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// ACCEPT: the traffic was allowed (and is billed).
    Accept,
    /// REJECT: security groups or network ACLs dropped it.
    Reject,
    /// `-` or a field the layout lacks.
    Unknown,
}

/// `flow-direction`, from the interface's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowDirection {
    /// Into the interface.
    Ingress,
    /// Out of the interface.
    Egress,
}

/// A line's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A record with traffic (`log-status` OK, or no such field).
    Record(Record<'a>),
    /// NODATA: no traffic on the interface during the aggregation interval.
    NoData,
    /// SKIPDATA: records of the interval were skipped (capacity or an internal error).
    SkipData,
}

/// A record with traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// `interface-id` (`eni-…`), if given. (Text fields are the line's bytes, ASCII as AWS
    /// writes them: [`text`] reads one as a string.)
    pub interface: Option<&'a [u8]>,
    /// `srcaddr`.
    pub src: IpAddr,
    /// `dstaddr`.
    pub dst: IpAddr,
    /// `pkt-srcaddr`, if given and not `-`.
    pub pkt_src: Option<IpAddr>,
    /// `pkt-dstaddr`, if given and not `-`.
    pub pkt_dst: Option<IpAddr>,
    /// `packets` (0 when the layout lacks it).
    pub packets: u64,
    /// `bytes`.
    pub bytes: u64,
    /// `action`.
    pub action: Action,
    /// `subnet-id`, if given.
    pub subnet: Option<&'a [u8]>,
    /// `az-id`, if given.
    pub az: Option<&'a [u8]>,
    /// `pkt-src-aws-service`, if given.
    pub src_service: Option<&'a [u8]>,
    /// `pkt-dst-aws-service`, if given.
    pub dst_service: Option<&'a [u8]>,
    /// `flow-direction`, if given.
    pub direction: Option<FlowDirection>,
    /// `traffic-path` (1–8), if given.
    pub traffic_path: Option<u8>,
    /// `end` (Unix seconds), if given.
    pub end: Option<u64>,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not as many columns as the layout.
    #[error("{found} fields where the format has {expected}")]
    Columns {
        /// The layout's.
        expected: usize,
        /// The line's.
        found: usize,
    },
    /// A field that does not parse.
    #[error("{field} {value:?} is not {what}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// The text (at most 40 bytes of it).
        value: String,
        /// What it should be.
        what: &'static str,
    },
}

/// Reads `line` (without its line end) under `layout`.
///
/// # Errors
/// A wrong number of columns, or a field that does not parse (an address, a count, an
/// action or status AWS does not write).
///
/// Inlined, with the function that fills the record: the caller's copy of the record (a
/// batch's slot) is then written in place, where a call built it on the stack and copied its
/// ~190 bytes (`memcpy`, 2 % of a run).
#[inline(always)]
pub fn parse<'a>(line: &'a [u8], layout: &Layout) -> Result<Line<'a>, LineError> {
    let mut fields: [&[u8]; Field::ALL.len()] = [b"-"; Field::ALL.len()];
    let mut found = 0;
    let mut start = 0;
    let mut field = |start: usize, end: usize| {
        if let Some(Some(f)) = layout.by_column.get(found) {
            fields[*f as usize] = &line[start..end];
        }
        found += 1;
    };
    // Fields are separated by one space; runs of spaces are tolerated. Spaces are found 64
    // bytes at a time (fields are a few bytes long, too short for a search per field to
    // pay), then taken from the mask one by one.
    let mut space = |i: usize| {
        if i > start {
            field(start, i);
        }
        start = i + 1;
    };
    let mut take = |at: usize, mut spaces: u64| {
        while spaces != 0 {
            space(at + spaces.trailing_zeros() as usize);
            spaces &= spaces - 1;
        }
    };
    let blocks = line.chunks_exact(64);
    let tail = blocks.remainder();
    for (k, block) in blocks.enumerate() {
        take(k * 64, space_mask(block.try_into().expect("64 bytes")));
    }
    if !tail.is_empty() {
        let at = line.len() - tail.len();
        if line.len() >= 64 {
            // The tail as the end of the line's last 64 bytes, the bytes before it shifted
            // out (no copy of it into a padded block).
            let end: &[u8; 64] = line[line.len() - 64..].try_into().expect("64 bytes");
            take(at, space_mask(end) >> (64 - tail.len()));
        } else {
            let mut last = [b'.'; 64];
            last[..tail.len()].copy_from_slice(tail);
            take(at, space_mask(&last));
        }
    }
    space(line.len());
    if found != layout.columns {
        return Err(LineError::Columns { expected: layout.columns, found });
    }
    let get = |f: Field| {
        let v = fields[f as usize];
        (v != b"-").then_some(v)
    };
    match get(Field::LogStatus) {
        None | Some(b"OK") => {}
        Some(b"NODATA") => return Ok(Line::NoData),
        Some(b"SKIPDATA") => return Ok(Line::SkipData),
        Some(other) => return Err(bad(Field::LogStatus, other, expected(Field::LogStatus))),
    }
    values(&fields, layout).map(Line::Record).map_err(|f| bad(f, fields[f as usize], expected(f)))
}

/// The record of a line's fields (`-` for those it lacks); the error is the field that does
/// not parse (the error types stay a byte wide on the hot path).
#[inline(always)]
fn values<'a>(fields: &[&'a [u8]; Field::ALL.len()], layout: &Layout) -> Result<Record<'a>, Field> {
    let get = |f: Field| {
        let v = fields[f as usize];
        (v != b"-").then_some(v)
    };
    let required = |f: Field| address(fields, f)?.ok_or(f);
    let count = |f: Field| get(f).map_or(Ok(0), |v| number(v).ok_or(f));
    let (src, dst) = (required(Field::SrcAddr)?, required(Field::DstAddr)?);
    let pkt_src = packet_address(fields, Field::PktSrcAddr, Field::SrcAddr, src)?;
    let pkt_dst = packet_address(fields, Field::PktDstAddr, Field::DstAddr, dst)?;
    let bytes = match get(Field::Bytes) {
        Some(v) => number(v).ok_or(Field::Bytes)?,
        // A format without bytes (as AWS's NAT gateway example) counts flows only.
        None if layout.column(Field::Bytes).is_none() => 0,
        None => return Err(Field::Bytes),
    };
    Ok(Record {
        interface: get(Field::InterfaceId),
        src,
        dst,
        pkt_src,
        pkt_dst,
        packets: count(Field::Packets)?,
        bytes,
        action: match get(Field::Action) {
            None => Action::Unknown,
            Some(b"ACCEPT") => Action::Accept,
            Some(b"REJECT") => Action::Reject,
            Some(_) => return Err(Field::Action),
        },
        subnet: get(Field::SubnetId),
        az: get(Field::AzId),
        src_service: get(Field::PktSrcAwsService),
        dst_service: get(Field::PktDstAwsService),
        direction: match get(Field::FlowDirection) {
            None => None,
            Some(b"ingress") => Some(FlowDirection::Ingress),
            Some(b"egress") => Some(FlowDirection::Egress),
            Some(_) => return Err(Field::FlowDirection),
        },
        traffic_path: match get(Field::TrafficPath) {
            None => None,
            Some(v) => {
                Some(number(v).filter(|n| (1..=8).contains(n)).ok_or(Field::TrafficPath)? as u8)
            }
        },
        end: get(Field::End).map(|v| number(v).ok_or(Field::End)).transpose()?,
    })
}

/// The address in field `f` (`None`: `-`); the error is `f`. (Inlined: the result, returned
/// through memory in pieces, stalled its reader on the store-to-load forwarding.)
#[inline(always)]
fn address(fields: &[&[u8]; Field::ALL.len()], f: Field) -> Result<Option<IpAddr>, Field> {
    let v = fields[f as usize];
    if v == b"-" {
        return Ok(None);
    }
    ip(v).map(Some).ok_or(f)
}

/// The packet-level address in field `f`, where `same_as` holds the interface-level one,
/// `parsed`: for most records the very same text, not read again.
#[inline(always)]
fn packet_address(
    fields: &[&[u8]; Field::ALL.len()],
    f: Field,
    same_as: Field,
    parsed: IpAddr,
) -> Result<Option<IpAddr>, Field> {
    if fields[f as usize] == fields[same_as as usize] {
        return Ok(Some(parsed));
    }
    address(fields, f)
}

/// What a field that does not parse should have been.
fn expected(f: Field) -> &'static str {
    match f {
        Field::SrcAddr | Field::DstAddr | Field::PktSrcAddr | Field::PktDstAddr => "an IP address",
        Field::Packets | Field::Bytes => "a count",
        Field::Action => "ACCEPT or REJECT",
        Field::LogStatus => "OK, NODATA or SKIPDATA",
        Field::FlowDirection => "ingress or egress",
        Field::TrafficPath => "a path from 1 to 8",
        Field::End => "Unix seconds",
        _ => "text",
    }
}

/// Bit `i` set for each byte `i` of `block` that is a space: on x86_64 with SSE2 (in every
/// x86_64 CPU), three instructions per 16 bytes.
#[cfg(target_arch = "x86_64")]
fn space_mask(block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let mut mask = 0;
    for (i, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86_64; the load reads the 16 bytes of `part`, unaligned.
        let bits = unsafe {
            let bytes = _mm_loadu_si128(part.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b' ' as i8)))
        };
        mask |= u64::from(bits as u16) << (16 * i);
    }
    mask
}

/// Bit `i` set for each byte `i` of `block` that is a space.
#[cfg(not(target_arch = "x86_64"))]
fn space_mask(block: &[u8; 64]) -> u64 {
    block.iter().enumerate().fold(0, |m, (i, &b)| m | (u64::from(b == b' ') << i))
}

fn bad(field: Field, value: &[u8], what: &'static str) -> LineError {
    let value = String::from_utf8_lossy(&value[..value.len().min(40)]).into_owned();
    LineError::Field { field: field.name(), value, what }
}

/// A decimal count (at most 19 digits, so it never overflows).
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

/// A text field as a string (`None` if it is not UTF-8, which AWS never writes).
pub fn text(v: Option<&[u8]>) -> Option<&str> {
    std::str::from_utf8(v?).ok()
}

/// An address: dotted-quad IPv4 read here (the hot path: most fields of most records),
/// anything else by the standard library. Accepts exactly what [`std::net::Ipv4Addr`]'s
/// parser accepts (no leading zeros, no missing octets). Inlined, as [`address`]: an
/// `IpAddr` returned through memory stalls its reader.
#[inline(always)]
fn ip(v: &[u8]) -> Option<IpAddr> {
    if let Some(a) = ipv4(v) {
        return Some(IpAddr::V4(a));
    }
    if v.contains(&b':') { std::str::from_utf8(v).ok()?.parse().ok() } else { None }
}

#[inline(always)]
fn ipv4(v: &[u8]) -> Option<std::net::Ipv4Addr> {
    if !(7..=15).contains(&v.len()) {
        return None;
    }
    let mut octets = [0u8; 4];
    let (mut n, mut value, mut digits) = (0, 0u32, 0);
    for &b in v {
        if b == b'.' {
            if digits == 0 || n == 3 {
                return None;
            }
            octets[n] = u8::try_from(value).ok()?;
            (n, value, digits) = (n + 1, 0, 0);
            continue;
        }
        let d = b.wrapping_sub(b'0');
        // A digit; no leading zero (std reads "010" as no address, not as octal or 10).
        if d > 9 || digits == 3 || (digits == 1 && value == 0) {
            return None;
        }
        value = value * 10 + u32::from(d);
        digits += 1;
    }
    if digits == 0 || n != 3 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(octets.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_statuses_and_bad_fields() {
        let l = Layout::all_fields(14).unwrap();
        let line = b"2 123456789010 eni-1235b8ca123456789 78.24.182.42 158.109.0.1 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        let Line::Record(r) = parse(line, &l).unwrap() else { panic!("a record") };
        assert_eq!(
            (r.src.to_string(), r.dst.to_string()),
            ("78.24.182.42".into(), "158.109.0.1".into())
        );
        assert_eq!((r.packets, r.bytes, r.action), (20, 4249, Action::Accept));
        assert_eq!(text(r.interface), Some("eni-1235b8ca123456789"));
        let nodata = b"2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - NODATA";
        assert_eq!(parse(nodata, &l), Ok(Line::NoData));
        assert_eq!(
            parse(b"2 1 eni-1 10.0.0.1 10.0.0.2", &l),
            Err(LineError::Columns { expected: 14, found: 5 })
        );
        let bad_addr = b"2 1 eni-1 10.0.0.300 10.0.0.2 1 2 6 1 40 1 2 ACCEPT OK";
        assert_eq!(
            parse(bad_addr, &l).unwrap_err().to_string(),
            "srcaddr \"10.0.0.300\" is not an IP address"
        );
        let bad_bytes = b"2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 4x0 1 2 ACCEPT OK";
        assert_eq!(parse(bad_bytes, &l).unwrap_err().to_string(), "bytes \"4x0\" is not a count");
        let ok_dash_bytes = b"2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 - 1 2 ACCEPT OK";
        assert!(parse(ok_dash_bytes, &l).is_err(), "an OK record must say its bytes");
        for a in ["10.0.0.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::ffff:10.0.0.1"] {
            assert_eq!(ip(a.as_bytes()), a.parse().ok(), "{a}");
        }
        for a in ["10.0.0", "10.0.0.1.2", "10.0.0.256", "10.00.0.1", "10..0.1", "1e.0.0.1", "", "-"]
        {
            assert_eq!(ip(a.as_bytes()), None, "{a}");
            assert!(a.parse::<IpAddr>().is_err(), "{a}: std agrees");
        }
        // Spaces at and around the 64-byte blocks' edges, single, in runs and at the ends.
        for n in 0..150 {
            let interface = format!("eni-{}", "a".repeat(n));
            let fields = [
                "2", "1", &interface, "10.0.0.1", "10.0.0.2", "1", "2", "6", "3", "40", "1", "2",
                "ACCEPT", "OK",
            ];
            for sep in [" ", "  ", "   "] {
                for line in [fields.join(sep), format!(" {} ", fields.join(sep))] {
                    let Ok(Line::Record(r)) = parse(line.as_bytes(), &l) else {
                        panic!("{line:?} is a record")
                    };
                    assert_eq!(text(r.interface), Some(interface.as_str()), "{line:?}");
                    assert_eq!((r.bytes, r.packets, r.end), (40, 3, Some(2)), "{line:?}");
                }
            }
        }
        // Packet-level addresses (version 5): the interface's when the text is the same,
        // another address when not, none for `-`, an error naming the field when bad.
        let l5 = Layout::all_fields(29).unwrap();
        let v5 = |src: &str, pkt_src: &str, pkt_dst: &str| {
            let line = format!(
                "5 1 eni-1 {src} 10.0.0.9 1 2 6 3 40 1 2 ACCEPT OK vpc-1 subnet-1 - 3 IPv4 \
                 {pkt_src} {pkt_dst} us-east-1 use1-az1 - - - S3 egress 8"
            );
            parse(line.as_bytes(), &l5).map(|l| match l {
                Line::Record(r) => {
                    (r.src, r.pkt_src, r.pkt_dst, text(r.dst_service).map(str::to_owned))
                }
                other => panic!("{other:?} is no record"),
            })
        };
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(
            v5("10.0.0.220", "10.0.1.5", "54.231.0.7"),
            Ok((
                ip("10.0.0.220"),
                Some(ip("10.0.1.5")),
                Some(ip("54.231.0.7")),
                Some("S3".to_owned())
            ))
        );
        assert_eq!(
            v5("10.0.1.5", "10.0.1.5", "10.0.0.9"),
            Ok((ip("10.0.1.5"), Some(ip("10.0.1.5")), Some(ip("10.0.0.9")), Some("S3".to_owned())))
        );
        assert_eq!(
            v5("2001:db8::1", "-", "-").map(|r| (r.0, r.1, r.2)),
            Ok((ip("2001:db8::1"), None, None))
        );
        assert_eq!(
            v5("10.0.1.5", "10.0.1.500", "-").unwrap_err().to_string(),
            "pkt-srcaddr \"10.0.1.500\" is not an IP address"
        );
        assert_eq!(number(b"18446744073709551615"), None, "20 digits");
        assert_eq!(number(b"9999999999999999999"), Some(9_999_999_999_999_999_999));
        for n in ["0", "7", "1418530010", "4249", "00012"] {
            assert_eq!(number(n.as_bytes()), n.parse().ok(), "{n}");
        }
        for n in ["", "-", "+1", "1 2", "12a", "1/", ":0", "\u{ff}9"] {
            assert_eq!(number(n.as_bytes()), None, "{n:?}");
        }
    }
}
