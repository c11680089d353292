//! Remote names from DNS: the responses the kernel side copies ([`crate::dataplane`]'s
//! `drain_dns`) are parsed with `hickory-proto`; every A/AAAA answer maps its address to the
//! name the application asked for (the question, when a CNAME chain leads from it to the
//! answer), kept for the record's TTL plus a grace period in a bounded cache (quick_cache).
//!
//! Bad input never stops the agent: a message that does not parse (truncated, compression
//! loops, names over 255 bytes, RFC 1035 §4.1.4 — hickory rejects them) is counted, and what
//! could be read before the damage still counts (a response cut at the capture limit keeps
//! its first answers).

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Header, Query},
    rr::{Name, RData, Record},
    serialize::binary::{BinDecodable, BinDecoder},
};

/// CNAME links followed at most from the question to an answer.
pub const MAX_CNAME_CHAIN: usize = 16;
/// Longest name kept as a label (longer ones are cut; DNS allows 253 characters).
pub const MAX_NAME_LEN: usize = 253;

/// Why a message could not be read in full.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    /// Shorter than a DNS header, or a TCP message without its length prefix.
    #[error("{0} bytes: too short for a DNS message")]
    TooShort(usize),
    /// Not a response (QR = 0).
    #[error("a query, not a response")]
    NotResponse,
    /// hickory's decoder stopped (the message says where in its text).
    #[error("{section}: {message}")]
    Decode {
        /// `header`, `question` or `answer`.
        section: &'static str,
        /// hickory's message.
        message: String,
    },
}

/// What one response taught.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Learned {
    /// (address, name, TTL seconds) for each A/AAAA answer read; answers for one name share
    /// its string.
    pub addresses: Vec<(IpAddr, Arc<str>, u32)>,
    /// Set when the message was damaged after the addresses above were read.
    pub error: Option<DnsError>,
}

/// Parses a DNS response (`tcp`: it starts with the two-byte length prefix).
///
/// # Errors
/// [`DnsError`] when nothing at all could be learned; a message damaged after some answers
/// returns them with [`Learned::error`] set.
pub fn parse_response(message: &[u8], tcp: bool) -> Result<Learned, DnsError> {
    let message =
        if tcp { message.get(2..).ok_or(DnsError::TooShort(message.len()))? } else { message };
    if message.len() < 12 {
        return Err(DnsError::TooShort(message.len()));
    }
    let decode = |section: &'static str| {
        move |e: hickory_proto::serialize::binary::DecodeError| DnsError::Decode {
            section,
            message: e.to_string(),
        }
    };
    let mut decoder = BinDecoder::new(message);
    let header = Header::read(&mut decoder).map_err(decode("header"))?;
    if header.metadata.message_type != hickory_proto::op::MessageType::Response {
        return Err(DnsError::NotResponse);
    }
    let mut question: Option<Name> = None;
    for _ in 0..header.counts.queries {
        let q = Query::read(&mut decoder).map_err(decode("question"))?;
        question.get_or_insert_with(|| q.name().clone());
    }
    let mut learned = Learned::default();
    // hickory compares and hashes names case-insensitively; a response has a handful of
    // CNAMEs, so a vector beats a map.
    let mut cnames: Vec<(Name, Name)> = Vec::new();
    let mut answers: Vec<(IpAddr, Name, u32)> = Vec::new();
    for _ in 0..header.counts.answers {
        match Record::read(&mut decoder) {
            Ok(r) => match r.data {
                RData::A(a) => answers.push((IpAddr::V4(a.0), r.name, r.ttl)),
                RData::AAAA(a) => answers.push((IpAddr::V6(a.0), r.name, r.ttl)),
                RData::CNAME(c) => cnames.push((r.name, c.0)),
                _ => {}
            },
            Err(e) => {
                learned.error = Some(decode("answer")(e));
                break;
            }
        }
    }
    let mut last: Option<(&Name, Arc<str>)> = None;
    for (addr, owner, ttl) in &answers {
        let name = asked_for(question.as_ref(), owner, &cnames).unwrap_or(owner);
        // Answers for the same name share one label string.
        let text = match &last {
            Some((n, text)) if *n == name => text.clone(),
            _ => Arc::from(label(name)),
        };
        last = Some((name, text.clone()));
        learned.addresses.push((*addr, text, *ttl));
    }
    Ok(learned)
}

/// The question, if a CNAME chain of at most [`MAX_CNAME_CHAIN`] links leads from it to
/// `owner` (loops end at the bound).
fn asked_for<'a>(
    question: Option<&'a Name>,
    owner: &Name,
    cnames: &'a [(Name, Name)],
) -> Option<&'a Name> {
    let question = question?;
    let mut at = question;
    for _ in 0..=MAX_CNAME_CHAIN {
        if at == owner {
            return Some(question);
        }
        at = cnames.iter().find(|(from, _)| from == at).map(|(_, to)| to)?;
    }
    None
}

/// A name as a label value: ASCII (IDNs in punycode), lowercase, no trailing dot, at most
/// [`MAX_NAME_LEN`] characters.
fn label(name: &Name) -> String {
    let mut text = name.to_ascii();
    if text.ends_with('.') {
        text.pop();
    }
    text.make_ascii_lowercase();
    text.truncate(MAX_NAME_LEN);
    text
}

/// Address → name, each for its TTL plus the grace period, at most `capacity` entries.
///
/// A `quick_cache` (S3-FIFO eviction) holding each name with its deadline: a lookup past the
/// deadline misses (and drops the entry), [`DnsNames::purge_expired`] sweeps the rest. moka
/// was dropped here: inserting a new address cost ~1.3 µs (its write buffers and TinyLFU),
/// more than the whole 2 µs budget of a response, and a lookup ~380 ns; quick_cache takes
/// ~120 ns per insert.
#[derive(Clone)]
pub struct DnsNames {
    cache: Arc<quick_cache::sync::Cache<IpAddr, (Arc<str>, Instant)>>,
    grace: Duration,
    parse_errors: Arc<AtomicU64>,
    learned: Arc<AtomicU64>,
    /// When [`DnsNames::purge_due`] sweeps next.
    next_purge: Arc<std::sync::Mutex<Instant>>,
}

/// Time between two sweeps of expired names.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for DnsNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsNames").field("entries", &self.cache.len()).finish()
    }
}

impl DnsNames {
    /// A cache of at most `capacity` names, each kept `grace` past its TTL.
    pub fn new(capacity: u64, grace: Duration) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        Self {
            cache: Arc::new(quick_cache::sync::Cache::new(capacity)),
            grace,
            parse_errors: Arc::default(),
            learned: Arc::default(),
            next_purge: Arc::new(std::sync::Mutex::new(Instant::now() + PURGE_INTERVAL)),
        }
    }

    /// Learns from one captured response.
    pub fn learn(&self, message: &[u8], tcp: bool) {
        match parse_response(message, tcp) {
            Ok(learned) => {
                if learned.error.is_some() {
                    self.parse_errors.fetch_add(1, Ordering::Relaxed);
                }
                let now = Instant::now();
                for (addr, name, ttl) in learned.addresses {
                    let until = now + Duration::from_secs(u64::from(ttl)) + self.grace;
                    self.cache.insert(addr.to_canonical(), (name, until));
                    self.learned.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(DnsError::NotResponse) => {}
            Err(_) => {
                self.parse_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The name `addr` was last looked up by, if still fresh.
    pub fn name(&self, addr: IpAddr) -> Option<Arc<str>> {
        let addr = addr.to_canonical();
        let (name, until) = self.cache.get(&addr)?;
        if Instant::now() < until {
            return Some(name);
        }
        self.cache.remove(&addr);
        None
    }

    /// Sweeps expired names if [`PURGE_INTERVAL`] has passed since the last sweep (cheap
    /// otherwise: call it from a loop).
    pub fn purge_due(&self) {
        let now = Instant::now();
        let mut next = self.next_purge.lock().unwrap_or_else(|p| p.into_inner());
        if now >= *next {
            *next = now + PURGE_INTERVAL;
            drop(next);
            self.purge_expired();
        }
    }

    /// Drops every name past its deadline (lookups drop only what they meet).
    pub fn purge_expired(&self) {
        let now = Instant::now();
        self.cache.retain(|_, (_, until)| now < *until);
    }

    /// Names held (expired ones included until purged or met).
    pub fn len(&self) -> u64 {
        self.cache.len() as u64
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Responses that did not parse in full, since start.
    pub fn parse_errors(&self) -> u64 {
        self.parse_errors.load(Ordering::Relaxed)
    }

    /// Address answers learned, since start.
    pub fn learned(&self) -> u64 {
        self.learned.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response for `www.example.test` A: CNAME www → edge, CNAME edge → api, A api
    /// 203.0.113.10 (TTL 60), written by hand per RFC 1035 §4.1 with compression pointers.
    fn chain_response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        // Question at offset 12: www.example.test A IN.
        m.extend(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
        // www (ptr 12) CNAME edge.example.test (edge + ptr to "example" at 16).
        m.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 7]);
        let edge_at = m.len() as u8;
        m.extend(b"\x04edge\xc0\x10");
        // edge (ptr) CNAME api.example.test.
        m.extend([0xc0, edge_at, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        let api_at = m.len() as u8;
        m.extend(b"\x03api\xc0\x10");
        // api (ptr) A 203.0.113.10.
        m.extend([0xc0, api_at, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 10]);
        m
    }

    #[test]
    fn a_cname_chain_names_the_address_by_the_question() {
        let learned = parse_response(&chain_response(), false).unwrap();
        assert_eq!(
            learned.addresses,
            [("203.0.113.10".parse().unwrap(), "www.example.test".into(), 60)]
        );
        assert_eq!(learned.error, None);
        let mut tcp = vec![0, chain_response().len() as u8];
        tcp.extend(chain_response());
        assert_eq!(parse_response(&tcp, true).unwrap().addresses.len(), 1);
    }

    #[test]
    fn damaged_messages_are_errors_not_panics() {
        let full = chain_response();
        // Cut in the last answer: the chain is read, the A record is not.
        let cut = parse_response(&full[..full.len() - 3], false).unwrap();
        assert!(cut.addresses.is_empty() && cut.error.is_some(), "{cut:?}");
        assert_eq!(parse_response(&full[..5], false), Err(DnsError::TooShort(5)));
        // A compression pointer to itself in the question.
        let mut looped = full[..12].to_vec();
        looped.extend([0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            parse_response(&looped, false),
            Err(DnsError::Decode { section: "question", .. })
        ));
        // A label chain longer than 255 bytes.
        let mut long = full[..12].to_vec();
        for _ in 0..5 {
            long.push(63);
            long.extend([b'a'; 63]);
        }
        long.extend([0, 0, 1, 0, 1]);
        assert!(parse_response(&long, false).is_err());
        // A query is not learned from.
        let mut query = full.clone();
        query[2] &= 0x7f;
        assert_eq!(parse_response(&query, false), Err(DnsError::NotResponse));
        // A compression loop is counted as a parse error by the cache too.
        let names = DnsNames::new(10, Duration::from_secs(1));
        names.learn(&looped, false);
        assert_eq!(names.parse_errors(), 1);
    }

    #[test]
    fn a_cname_loop_ends_and_names_nothing_after_the_question() {
        // www → edge → www, and an A record for api, which no chain from www reaches.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        m.extend(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
        m.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 7]);
        let edge_at = m.len() as u8;
        m.extend(b"\x04edge\xc0\x10");
        m.extend([0xc0, edge_at, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        m.extend(b"\x03api\xc0\x10");
        m.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 10]);
        let learned = parse_response(&m, false).unwrap();
        assert_eq!(
            learned.addresses,
            [("203.0.113.10".parse().unwrap(), "api.example.test".into(), 60)],
            "the owner's own name, not the question's"
        );
        assert_eq!(learned.error, None);
    }

    #[test]
    fn names_expire_after_ttl_plus_grace() {
        let names = DnsNames::new(10, Duration::from_millis(50));
        let mut zero_ttl = chain_response();
        let n = zero_ttl.len();
        zero_ttl[n - 10..n - 6].copy_from_slice(&[0, 0, 0, 0]); // A record TTL 0
        names.learn(&zero_ttl, false);
        assert!(names.name("203.0.113.10".parse().unwrap()).is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(names.name("203.0.113.10".parse().unwrap()).is_none());
    }
}
