//! What one worker makes of the records it reads: each record's local and remote end,
//! direction, traffic class, egress path, service and region, decided by the agent's own
//! [`Classifier`] and [`EgressPaths`], summed into buckets that [`super::report`] prices.
//!
//! **Ends and direction.** `flow-direction` (version 5) says which end is the interface's;
//! without it the private end is local (both private: the source; both public: the source).
//! The remote is `internal` when the classifier does not call it public; `pkt-srcaddr` /
//! `pkt-dstaddr` replace `srcaddr` / `dstaddr` when given (the packet's real ends behind an
//! intermediate hop). An internal record without `flow-direction` is priced as its source's
//! egress: when both interfaces are logged, a cross-zone byte is then priced twice at the
//! egress price, which equals AWS's charge on each side.
//!
//! **NAT gateways** (`--nat-gateway ADDR`, the gateway's private address). A NAT gateway's
//! interface logs each byte twice, once per leg: instance ↔ gateway and gateway ↔ internet.
//! With the packet-level fields the instance leg names both real ends and is counted, with
//! egress path `nat_gateway`; the internet leg is the same bytes again and is only reported
//! as a duplicate. Without them, the internet leg is counted (local end: the gateway) and the
//! instance leg is the duplicate. The instances' own records of traffic their subnet sends
//! through a NAT gateway (`subnets[].egress: nat_gateway`) are the same bytes as the
//! gateway's records: with `--nat-gateway` given they are duplicates too. Without it, a
//! private address that records name where their packets' address is public — a NAT
//! gateway's — is noted, and the report warns that its bytes may count twice.
//!
//! **Other paths.** `traffic-path` 7 (gateway VPC endpoint) and 8 (internet gateway) decide
//! the path where given; otherwise the configured subnets do, as for the agent.
//!
//! **Zones.** The local zone, against which same-zone and cross-zone are decided, is the
//! record's `az-id`, else the zone of the configured network holding the local address,
//! else `node.zone`. Zones of `networks` should then be zone IDs (`use1-az1`). (At most
//! 64 zones are told apart; more `az-id` values than that mean a corrupt column.)
//!
//! **REJECT** records moved no billed bytes: they are counted apart and never priced.
//! **Memory** is bounded: per worker at most `max_sources` local and `max_destinations`
//! remote addresses are kept apart; the others are summed as "other".

use std::{collections::HashMap, hash::BuildHasher, net::IpAddr, sync::Arc};

/// Maps on the hot path hash with foldhash (the agent's hasher), not SipHash.
pub type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An address as a map key that hashes as one 128-bit word (an IPv4 address as its
/// IPv4-mapped IPv6 form), where `IpAddr`'s derived hash writes a tag, a length and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Addr(pub IpAddr);

impl std::hash::Hash for Addr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let bits = match self.0 {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        state.write_u128(bits);
    }
}

use serde::Serialize;

use super::record::{Action, FlowDirection, Record, text};
use crate::{
    classify::{Classifier, TrafficClass},
    cloud::sources::SharedCloudTable,
    config::FileConfig,
    paths::{EgressPath, EgressPaths},
};

/// Distinct-count sketch of remote addresses (as the agent's, seeded the same in every
/// worker so that the sketches merge).
pub type Sketch =
    cardinality_estimator::CardinalityEstimator<IpAddr, std::hash::DefaultHasher, 15, 6>;

/// The seed of every worker's address hash: the destinations' table and the distinct-count
/// sketch hash an address once, with the same function in every worker (sketches merge).
const ADDRESS_SEED: u64 = 0x666c_6f77;

/// The hash of addresses (see [`ADDRESS_SEED`]).
fn address_hash() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(ADDRESS_SEED)
}

/// Remote addresses and their numbers: an open-addressing table (linear probing, at most
/// half full) a record finds its remote's slot in once, for the verdict kept there and for
/// its sums. Hundreds of thousands of remotes do not fit in a core's cache, so each lookup
/// can be a wait on memory: the slot an address probes first is known from its hash alone,
/// and [`Destinations::prefetch`] asks for it records ahead ([`Analyzer::add_all`]). (A
/// `hashbrown` table, before, hid that slot: 0.3 s of a 1.9 s one-thread run of a 1 GB log
/// was spent on its misses.) Memory: 64-byte slots, a quarter to a half of them used (128
/// to 256 bytes per address).
#[derive(Debug, Default)]
pub struct Destinations {
    /// A power of two of slots (or none); a slot with no records is free.
    slots: Vec<Destination>,
    len: usize,
}

impl Destinations {
    /// The number of addresses.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every address and its numbers, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Destination> {
        self.slots.iter().filter(|d| d.is_used())
    }

    /// The slot `hash` probes first.
    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.slots.len() - 1)
    }

    /// Asks the CPU to fetch the slot an address of hash `hash` probes first into its cache,
    /// without waiting for it (a hint: nothing changes if it is not followed).
    fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        if !self.slots.is_empty() {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let slot = &self.slots[self.home(hash)];
            // SAFETY: a prefetch reads nothing the program sees; the address is a slot's.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(slot).cast()) };
        }
    }

    /// The slot of `addr` (whose hash is `hash`), if it has one.
    fn find(&self, hash: u64, addr: Addr) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(hash);
        loop {
            let d = &self.slots[i];
            if !d.is_used() {
                return None;
            }
            if d.addr == addr {
                return Some(i);
            }
            i = (i + 1) & (self.slots.len() - 1);
        }
    }

    /// The numbers in slot `i` (from [`Destinations::find`], the table unchanged since).
    fn get(&self, i: usize) -> &Destination {
        &self.slots[i]
    }

    /// As [`Destinations::get`], to change.
    fn get_mut(&mut self, i: usize) -> &mut Destination {
        &mut self.slots[i]
    }

    /// Enters `d` (with at least one record; its address, of hash `hash`, has no slot yet).
    fn insert(&mut self, hash: u64, d: Destination) -> &mut Destination {
        debug_assert!(d.is_used(), "an entry without records would read as a free slot");
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut i = self.home(hash);
        while self.slots[i].is_used() {
            i = (i + 1) & (self.slots.len() - 1);
        }
        self.len += 1;
        self.slots[i] = d;
        &mut self.slots[i]
    }

    /// Twice the slots (at least 1024), every entry moved to its place there.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, free_slots(size));
        self.len = 0;
        for d in old.into_iter().filter(Destination::is_used) {
            self.insert(address_hash().hash_one(d.addr), d);
        }
    }

    /// Every address and its numbers, taken out.
    fn into_entries(self) -> impl Iterator<Item = Destination> {
        self.slots.into_iter().filter(Destination::is_used)
    }
}

/// `size` free slots, in transparent huge pages where the kernel gives them.
fn free_slots(size: usize) -> Vec<Destination> {
    let mut slots = Vec::with_capacity(size);
    advise_huge_pages(slots.spare_capacity_mut());
    slots.resize(size, Destination::FREE);
    slots
}

/// Asks Linux to back the 2 MiB-aligned part of `memory` (not yet written) with transparent
/// huge pages: a record's slot is anywhere in the remotes' table (16 MiB at the default
/// cap), and with 4 KiB pages most lookups, and the prefetches ahead of them, also missed
/// the TLB. Where THP is `never` (or not built into the kernel) nothing changes; with
/// `always` huge pages are the default anyway.
#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(memory: &mut [std::mem::MaybeUninit<T>]) {
    const HUGE: usize = 2 << 20;
    let at = memory.as_mut_ptr() as usize;
    let (start, end) = (at.next_multiple_of(HUGE), (at + size_of_val(memory)) / HUGE * HUGE);
    if start < end {
        // SAFETY: the range lies inside `memory`, which is ours; the advice changes how its
        // pages are backed, not what they hold.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_: &mut [std::mem::MaybeUninit<T>]) {}

/// Which way a record's bytes went, from the local end's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// To a public remote.
    Egress,
    /// From a public remote.
    Ingress,
    /// Between private addresses (the VPC, peers, on-premises).
    Internal,
}

impl Direction {
    /// As it prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Egress => "egress",
            Self::Ingress => "ingress",
            Self::Internal => "internal",
        }
    }
}

/// Bytes, packets and records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// IP bytes, as billed.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// Flow-log records.
    pub records: u64,
}

impl Counts {
    /// One record's.
    fn one(bytes: u64, packets: u64) -> Self {
        Self { bytes, packets, records: 1 }
    }

    fn add(&mut self, bytes: u64, packets: u64) {
        self.bytes += bytes;
        self.packets += packets;
        self.records += 1;
    }

    /// Adds another's counts.
    pub fn merge(&mut self, o: &Counts) {
        self.bytes += o.bytes;
        self.packets += o.packets;
        self.records += o.records;
    }
}

/// What decides a price: one bucket of the analysis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    /// Direction.
    pub direction: Direction,
    /// Whether the bytes were sent by the local end (egress prices) or received.
    pub sent: bool,
    /// The remote's class, from the local zone.
    pub class: TrafficClass,
    /// How the bytes left or entered the VPC.
    pub path: EgressPath,
    /// The remote's cloud service (empty: none).
    pub service: String,
    /// The remote's region (empty: unknown).
    pub region: String,
    /// The provider whose published range holds the remote.
    pub provider: Option<crate::cloud::Provider>,
}

/// One series of `--openmetrics`: a bucket and the configured networks (indices into
/// `networks`) of both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Index of the bucket in [`Analysis::buckets`].
    pub bucket: u32,
    /// The local address's network (its name is the series' `workload`).
    pub local_network: Option<u32>,
    /// The remote's network (`remote`, `remote_zone`).
    pub remote_network: Option<u32>,
}

/// Bytes per bucket (buckets by their index in the worker's [`Analysis::buckets`]); a few
/// entries per address, the first inside the map's entry (most addresses meet one bucket:
/// no second cache miss behind the entry's).
#[derive(Debug, Clone, Default)]
pub struct Spend(pub smallvec::SmallVec<[(u32, Counts); 1]>);

impl Spend {
    /// Adds a record's counts to `bucket`'s, which then moves to the front: an address's
    /// records often come in runs (those of one interface), and a local address can meet a
    /// bucket per class, path, service and region it reaches (the entries' order means
    /// nothing).
    fn add(&mut self, bucket: u32, bytes: u64, packets: u64) {
        let parts = &mut self.0;
        match parts.iter().position(|(b, _)| *b == bucket) {
            Some(i) => {
                parts[i].1.add(bytes, packets);
                parts.swap(0, i);
            }
            None => {
                parts.push((bucket, Counts::one(bytes, packets)));
                let last = parts.len() - 1;
                parts.swap(0, last);
            }
        }
    }

    /// Adds `o`, whose bucket indices `map` translates into this one's.
    pub fn merge(&mut self, o: &Spend, map: &[u32]) {
        for (b, c) in &o.0 {
            let b = map[*b as usize];
            match self.0.iter_mut().find(|(x, _)| *x == b) {
                Some((_, mine)) => mine.merge(c),
                None => self.0.push((b, *c)),
            }
        }
    }
}

/// Bytes the analysis saw but did not count, because another record counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Duplicates {
    /// A NAT gateway's internet leg (its instance leg, with packet-level fields, counts).
    pub nat_internet_leg: Counts,
    /// A NAT gateway's instance leg (without packet-level fields the internet leg counts).
    pub nat_instance_leg: Counts,
    /// An instance's record of traffic its subnet sends through a given NAT gateway.
    pub seen_at_nat_gateway: Counts,
}

/// A remote address and its numbers, in one cache line (64 bytes, checked by a test): a
/// record reads and writes that line only, as most addresses meet one bucket and name no
/// AWS service; rarer numbers are boxed apart. (Half the 128 bytes of the entry before:
/// half the memory per remote, though no faster on the 2-vCPU VM measured.)
#[derive(Debug, Clone)]
#[repr(align(64))]
pub struct Destination {
    /// The address.
    pub addr: Addr,
    /// Its first bucket.
    first_bucket: u32,
    /// The counts there (0 records: none yet).
    first: Counts,
    /// The classifier's verdict from the zone (number) of its last record: the address is
    /// looked up once per record, for its verdict and its sums.
    verdict: Option<(u8, Found)>,
    /// Its other buckets and the AWS service its records named, for the addresses with
    /// either.
    more: Option<Box<More>>,
}

/// The rarer numbers of a [`Destination`].
#[derive(Debug, Clone, Default)]
struct More {
    spend: Vec<(u32, Counts)>,
    aws_service: Option<String>,
}

impl Destination {
    /// A free slot of [`Destinations`].
    const FREE: Self = Self::new(Addr(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)));

    const fn new(addr: Addr) -> Self {
        Self {
            addr,
            first_bucket: 0,
            first: Counts { bytes: 0, packets: 0, records: 0 },
            verdict: None,
            more: None,
        }
    }

    /// Whether it holds an address's numbers (every entry has a record from the start).
    fn is_used(&self) -> bool {
        self.first.records > 0
    }

    /// Bytes by bucket (buckets by their index in [`Analysis::buckets`]).
    pub fn spend(&self) -> Spend {
        let mut spend = Spend::default();
        if self.first.records > 0 {
            spend.0.push((self.first_bucket, self.first));
        }
        if let Some(more) = &self.more {
            spend.0.extend(more.spend.iter().copied());
        }
        spend
    }

    /// The AWS service the records named (`pkt-*-aws-service`), if any.
    pub fn aws_service(&self) -> Option<&str> {
        self.more.as_ref()?.aws_service.as_deref()
    }

    fn set_aws_service(&mut self, service: Option<&str>) {
        if let Some(s) = service {
            self.more.get_or_insert_default().aws_service = Some(s.to_owned());
        }
    }

    fn add(&mut self, bucket: u32, counts: Counts) {
        if self.first.records == 0 || self.first_bucket == bucket {
            self.first_bucket = bucket;
            self.first.merge(&counts);
            return;
        }
        let more = &mut self.more.get_or_insert_default().spend;
        match more.iter_mut().find(|(b, _)| *b == bucket) {
            Some((_, c)) => c.merge(&counts),
            None => more.push((bucket, counts)),
        }
    }

    /// Adds `o`'s counts, whose bucket indices `map` translates into this one's.
    fn merge(&mut self, o: &Destination, map: &[u32]) {
        for (b, c) in o.spend().0 {
            self.add(map[b as usize], c);
        }
        if self.aws_service().is_none() {
            self.set_aws_service(o.aws_service());
        }
    }
}

/// Where an avoidable cost comes from: a same-region service reached through a NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AvoidableKey {
    /// The service (S3, DYNAMODB).
    pub service: String,
    /// Its region.
    pub region: String,
    /// The local subnet: the record's `subnet-id`, else the configured subnet's CIDR, else
    /// empty.
    pub subnet: String,
}

/// Settings of an analysis.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Private addresses of NAT gateways whose interfaces the input logs (a few: a list).
    pub nat_gateways: Vec<IpAddr>,
    /// Whether to keep the timeline `--openmetrics` writes.
    pub timeline: bool,
    /// Local addresses kept apart per worker.
    pub max_sources: usize,
    /// Remote addresses kept apart per worker.
    pub max_destinations: usize,
}

/// One worker's sums.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Buckets, by index.
    pub buckets: Vec<(BucketKey, Counts)>,
    /// Local addresses' spend.
    pub sources: Map<Addr, Spend>,
    /// Local addresses beyond the cap.
    pub other_sources: Spend,
    /// Remote addresses.
    pub destinations: Destinations,
    /// Remote addresses beyond the cap.
    pub other_destinations: Spend,
    /// Avoidable spend by service, region and subnet.
    pub avoidable: Map<AvoidableKey, Spend>,
    /// REJECT records.
    pub rejected: Counts,
    /// Records not counted because others count their bytes.
    pub duplicates: Duplicates,
    /// Distinct remote addresses (also those beyond the cap).
    pub unique_destinations: Sketch,
    /// Series of the timeline, by index.
    pub series: Vec<SeriesKey>,
    /// Counts by (series index, minute since the Unix epoch of the record's `end`), with
    /// [`Options::timeline`]: about 40 bytes per series and minute of logs.
    pub timeline: Map<(u32, u32), Counts>,
    /// Counted records without `end`, which the timeline cannot place.
    pub untimed: Counts,
    /// Private addresses, none of [`Options::nat_gateways`], that records name in
    /// `srcaddr`/`dstaddr` where their packets' `pkt-srcaddr`/`pkt-dstaddr` is public, as on
    /// a NAT gateway's interface: records each (at most [`MAX_UNLISTED_NAT_GATEWAYS`]
    /// addresses).
    pub unlisted_nat_gateways: Map<Addr, u64>,
}

/// Addresses [`Analysis::unlisted_nat_gateways`] keeps (a VPC has a few NAT gateways).
pub const MAX_UNLISTED_NAT_GATEWAYS: usize = 16;

/// Reads records into an [`Analysis`]: one per worker thread.
pub struct Analyzer {
    config: Arc<FileConfig>,
    cloud: Arc<SharedCloudTable>,
    options: Arc<Options>,
    /// Classifier of each zone met (index: zone number); 0 is the node's zone.
    zones: Vec<(Option<String>, Classifier)>,
    /// The zone number of the last record (records of one interface come together).
    last_zone: u8,
    paths: EgressPaths,
    gateway_services: Vec<String>,
    /// Services and regions by name, and by number.
    names: Map<String, u16>,
    name_list: Vec<String>,
    /// The classifier's verdict on each (address, zone number) met, bounded by
    /// [`FOUND_CACHE`].
    found: Map<(Addr, u8), Found>,
    bucket_index: Map<FastKey, u32>,
    series_index: Map<SeriesKey, u32>,
    hash: foldhash::fast::FixedState,
    /// The sums so far.
    pub analysis: Analysis,
}

/// Configured networks an analysis tells apart (a verdict holds a network's index in two
/// bytes); `egressor flowlogs` refuses a configuration with more.
pub const MAX_NETWORKS: usize = u16::MAX as usize - 1;

/// How many records ahead [`Analyzer::add_all`] prefetches a remote's slot: enough records'
/// work to cover a wait on memory (about 100 ns against 150–350 ns per record). 2 and 8
/// measured no different (docs/benchmarks.md, "Flow logs").
const PREFETCH_AHEAD: usize = 4;

/// Zones a worker keeps a classifier for (each a copy of the configuration's tables).
const MAX_ZONES: usize = 64;

/// Verdicts a worker keeps (about 56 bytes each: 224 KiB, inside a core's L2 cache — a
/// cache of 2^18 measured slower than none on addresses spread over S3's ranges); the cache
/// starts over when full.
const FOUND_CACHE: usize = 1 << 12;

/// The classifier's verdict on an address, with service and region interned (8 bytes: it
/// is kept in each [`Destination`]).
#[derive(Debug, Clone, Copy)]
struct Found {
    class: TrafficClass,
    /// The provider of the cloud range holding it (`service` and `region` are then the
    /// range's).
    provider: Option<crate::cloud::Provider>,
    /// Index + 1 of its configured network (at most [`MAX_NETWORKS`]).
    network: Option<std::num::NonZeroU16>,
    /// Service and region as priced (the cloud range's, else the network's region).
    service: u16,
    region: u16,
}

impl Found {
    /// Index of its configured network.
    fn network(&self) -> Option<usize> {
        self.network.map(|n| usize::from(n.get()) - 1)
    }

    /// Provider, service and region of the cloud range holding it.
    fn cloud(&self) -> Option<(crate::cloud::Provider, u16, u16)> {
        self.provider.map(|p| (p, self.service, self.region))
    }
}

/// A [`BucketKey`] with service and region interned: no allocation to look a bucket up, and
/// hashed as one 64-bit word (the derived hash wrote seven).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FastKey {
    direction: Direction,
    sent: bool,
    class: TrafficClass,
    path: EgressPath,
    service: u16,
    region: u16,
    provider: Option<crate::cloud::Provider>,
}

impl std::hash::Hash for FastKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let small = |x: u8| u64::from(x);
        let word = small(self.direction as u8)
            | small(u8::from(self.sent)) << 4
            | small(self.provider.map_or(0, |p| p as u8 + 1)) << 8
            | small(self.class as u8) << 16
            | small(self.path as u8) << 24
            | u64::from(self.service) << 32
            | u64::from(self.region) << 48;
        state.write_u64(word);
    }
}

/// Where a record's bytes go, or why they are not counted.
enum Ends {
    Counted { local: IpAddr, remote: IpAddr, sent: bool, nat: bool },
    Duplicate(fn(&mut Duplicates) -> &mut Counts),
}

impl Analyzer {
    /// A worker's analyzer over the configuration (node zone, region and provider already
    /// defaulted), the cloud ranges and the price sheet's gateway-endpoint services.
    pub fn new(
        config: Arc<FileConfig>,
        cloud: Arc<SharedCloudTable>,
        options: Arc<Options>,
        gateway_services: Vec<String>,
    ) -> Self {
        let mut names = Map::default();
        names.insert(String::new(), 0);
        Self {
            zones: vec![(config.node.zone.clone(), Classifier::new(&config, cloud.clone()))],
            last_zone: 0,
            paths: EgressPaths::new(&config),
            config,
            cloud,
            options,
            gateway_services,
            names,
            name_list: vec![String::new()],
            found: Map::default(),
            bucket_index: Map::default(),
            series_index: Map::default(),
            hash: address_hash(),
            analysis: Analysis::default(),
        }
    }

    /// Counts records in order, each remote's slot asked for [`PREFETCH_AHEAD`] records
    /// before it is needed, so that the waits on memory of several records overlap.
    pub fn add_all(&mut self, records: &[Record<'_>]) {
        for (i, r) in records.iter().enumerate() {
            if let Some(ahead) = records.get(i + PREFETCH_AHEAD) {
                self.prefetch(ahead);
            }
            self.add(r);
        }
    }

    /// Prefetches the slots of the record's remote: the packet's destination if the
    /// interface sent it, its source if it received it, both when the record does not say.
    fn prefetch(&self, r: &Record<'_>) {
        let (s, d) = (r.pkt_src.unwrap_or(r.src), r.pkt_dst.unwrap_or(r.dst));
        let table = &self.analysis.destinations;
        if r.direction != Some(FlowDirection::Ingress) {
            table.prefetch(self.hash.hash_one(Addr(d)));
        }
        if r.direction != Some(FlowDirection::Egress) {
            table.prefetch(self.hash.hash_one(Addr(s)));
        }
    }

    /// Counts one record.
    pub fn add(&mut self, r: &Record<'_>) {
        if r.action == Action::Reject {
            self.analysis.rejected.add(r.bytes, r.packets);
            return;
        }
        let (local, remote, sent, nat) = match self.ends(r) {
            Ends::Counted { local, remote, sent, nat } => (local, remote, sent, nat),
            Ends::Duplicate(which) => {
                which(&mut self.analysis.duplicates).add(r.bytes, r.packets);
                return;
            }
        };
        let zone = self.zone(r.az, local);
        let remote_hash = self.hash.hash_one(Addr(remote));
        // The remote's slot, found once: nothing enters the table before it is counted.
        let slot = self.analysis.destinations.find(remote_hash, Addr(remote));
        let kept = slot.and_then(|i| self.analysis.destinations.get(i).verdict);
        let found = match kept {
            // A zone decides only between private classes.
            Some((z, f)) if z == zone || f.class.is_public() => f,
            _ => self.found(remote, zone),
        };
        let path = if nat {
            EgressPath::NatGateway
        } else {
            match r.traffic_path {
                Some(7) => EgressPath::VpcGatewayEndpoint,
                Some(8) => EgressPath::InternetGateway,
                _ => {
                    let names = &self.name_list;
                    let cloud = found.cloud().map(|(p, s, g)| {
                        (p, names[s as usize].as_str(), names[g as usize].as_str())
                    });
                    self.paths.path_of(Some(local), found.class, found.network(), cloud)
                }
            }
        };
        if !nat
            && path == EgressPath::NatGateway
            && found.class.is_public()
            && !self.options.nat_gateways.is_empty()
        {
            self.analysis.duplicates.seen_at_nat_gateway.add(r.bytes, r.packets);
            return;
        }
        let direction = match (found.class.is_public(), sent) {
            (true, true) => Direction::Egress,
            (true, false) => Direction::Ingress,
            (false, _) => Direction::Internal,
        };
        let key = FastKey {
            direction,
            sent,
            class: found.class,
            path,
            service: found.service,
            region: found.region,
            provider: found.provider,
        };
        let bucket = match self.bucket_index.get(&key) {
            Some(&i) => i,
            None => self.new_bucket(key),
        };
        if self.options.timeline {
            self.place_in_time(r, bucket, local, found.network());
        }
        let avoidable = path == EgressPath::NatGateway
            && found.class == TrafficClass::CloudSameRegion
            && self.gateway_services.iter().any(|s| *s == self.name_list[found.service as usize]);
        let a = &mut self.analysis;
        a.buckets[bucket as usize].1.add(r.bytes, r.packets);
        let options = &self.options;
        let full = a.sources.len() >= options.max_sources;
        match a.sources.get_mut(&Addr(local)) {
            Some(s) => s.add(bucket, r.bytes, r.packets),
            None if !full => {
                a.sources.entry(Addr(local)).or_default().add(bucket, r.bytes, r.packets);
            }
            None => a.other_sources.add(bucket, r.bytes, r.packets),
        }
        match slot {
            Some(i) => {
                let d = a.destinations.get_mut(i);
                d.add(bucket, Counts::one(r.bytes, r.packets));
                d.verdict = Some((zone, found));
            }
            None => {
                // Each address enters the sketch once: when first kept, or on every record
                // beyond the cap (a sketch counts an address once however often it sees it).
                a.unique_destinations.insert_hash(remote_hash);
                if a.destinations.len() >= options.max_destinations {
                    a.other_destinations.add(bucket, r.bytes, r.packets);
                } else {
                    let mut d = Destination::new(Addr(remote));
                    d.add(bucket, Counts::one(r.bytes, r.packets));
                    d.verdict = Some((zone, found));
                    let d = a.destinations.insert(remote_hash, d);
                    d.set_aws_service(text(if sent { r.dst_service } else { r.src_service }));
                }
            }
        }
        if avoidable {
            // A NAT interface's record names the gateway's subnet; the endpoint belongs in
            // the instance's.
            let subnet = match text(r.subnet) {
                Some(s) if !nat => s.to_owned(),
                _ => self.subnet_of(local),
            };
            let key = AvoidableKey {
                service: self.name_list[found.service as usize].clone(),
                region: self.name_list[found.region as usize].clone(),
                subnet,
            };
            self.analysis.avoidable.entry(key).or_default().add(bucket, r.bytes, r.packets);
        }
    }

    fn new_bucket(&mut self, key: FastKey) -> u32 {
        let i = self.analysis.buckets.len() as u32;
        let full = BucketKey {
            direction: key.direction,
            sent: key.sent,
            class: key.class,
            path: key.path,
            service: self.name_list[key.service as usize].clone(),
            region: self.name_list[key.region as usize].clone(),
            provider: key.provider,
        };
        self.analysis.buckets.push((full, Counts::default()));
        self.bucket_index.insert(key, i);
        i
    }

    /// Adds a counted record to the timeline: its series, at the minute of its `end`.
    fn place_in_time(&mut self, r: &Record<'_>, bucket: u32, local: IpAddr, remote: Option<usize>) {
        let Some(end) = r.end else {
            self.analysis.untimed.add(r.bytes, r.packets);
            return;
        };
        let key = SeriesKey {
            bucket,
            local_network: self.found(local, 0).network().map(|i| i as u32),
            remote_network: remote.map(|i| i as u32),
        };
        let a = &mut self.analysis;
        let series = *self.series_index.entry(key).or_insert_with(|| {
            a.series.push(key);
            a.series.len() as u32 - 1
        });
        let minute = u32::try_from(end / 60).unwrap_or(u32::MAX);
        a.timeline.entry((series, minute)).or_default().add(r.bytes, r.packets);
    }

    /// The zone number of a record's local end: its `az-id`, else its network's zone, else
    /// the node's.
    fn zone(&mut self, az: Option<&[u8]>, local: IpAddr) -> u8 {
        if let Some(z) = az {
            return self.zone_named(z);
        }
        let Some(network) = self.found(local, 0).network() else { return 0 };
        let config = self.config.clone();
        match config.networks[network].zone.as_deref() {
            Some(name) => self.zone_named(name.as_bytes()),
            None => 0,
        }
    }

    /// The number of the zone `name` (a classifier for it made the first time), without an
    /// allocation when it is known: records of one interface come together, and a region
    /// has a handful of zones.
    fn zone_named(&mut self, name: &[u8]) -> u8 {
        let is =
            |(z, _): &(Option<String>, Classifier)| z.as_deref().map(str::as_bytes) == Some(name);
        if self.zones.get(usize::from(self.last_zone)).is_some_and(is) {
            return self.last_zone;
        }
        let i = match self.zones.iter().position(is) {
            Some(i) => i,
            // Beyond MAX_ZONES names (a corrupt az-id column), the node's zone is used, and
            // memory stays bounded; so is a name that is not UTF-8 (AWS writes none).
            None if self.zones.len() >= MAX_ZONES => 0,
            None => {
                let Ok(name) = std::str::from_utf8(name) else { return 0 };
                let mut c = (*self.config).clone();
                c.node.zone = Some(name.to_owned());
                self.zones.push((Some(name.to_owned()), Classifier::new(&c, self.cloud.clone())));
                self.zones.len() - 1
            }
        } as u8;
        self.last_zone = i;
        i
    }

    /// The classifier's verdict on `addr` from zone number `zone`.
    fn found(&mut self, addr: IpAddr, zone: u8) -> Found {
        if let Some(f) = self.found.get(&(Addr(addr), zone)) {
            return *f;
        }
        let remote = self.zones[zone as usize].1.classify(Some(addr));
        let (names, list) = (&mut self.names, &mut self.name_list);
        let mut id = |name: &str| intern(names, list, name);
        let cloud = remote.cloud.map(|m| (m.provider, id(m.service), id(m.region)));
        let network_region =
            remote.network.and_then(|i| self.config.networks[i].region.as_deref()).unwrap_or("");
        let (service, region) = match cloud {
            Some((_, s, r)) => (s, r),
            None => (0, id(network_region)),
        };
        let network = remote.network.and_then(|i| u16::try_from(i + 1).ok()?.try_into().ok());
        let provider = cloud.map(|(p, _, _)| p);
        let found = Found { class: remote.class, provider, network, service, region };
        if self.found.len() >= FOUND_CACHE {
            self.found.clear();
        }
        self.found.insert((Addr(addr), zone), found);
        found
    }

    fn ends(&mut self, r: &Record<'_>) -> Ends {
        let (s, d) = (r.pkt_src.unwrap_or(r.src), r.pkt_dst.unwrap_or(r.dst));
        let nats = &self.options.nat_gateways;
        if !nats.is_empty() && (nats.contains(&r.src) || nats.contains(&r.dst)) {
            let packet_level = r.pkt_src.is_some() || r.pkt_dst.is_some();
            let (gateway_src, gateway_dst) = (nats.contains(&s), nats.contains(&d));
            if gateway_src || gateway_dst {
                let other = if gateway_src { d } else { s };
                return match (self.public(other), packet_level) {
                    // The gateway ↔ internet leg.
                    (true, true) => Ends::Duplicate(|d| &mut d.nat_internet_leg),
                    (true, false) => {
                        let (local, remote) = if gateway_src { (s, d) } else { (d, s) };
                        Ends::Counted { local, remote, sent: gateway_src, nat: true }
                    }
                    // Instance ↔ gateway without the packet's real ends.
                    (false, false) => Ends::Duplicate(|d| &mut d.nat_instance_leg),
                    // Traffic to the gateway itself.
                    (false, true) => Ends::Counted { local: s, remote: d, sent: true, nat: false },
                };
            }
            // The instance leg, with its real ends.
            return match (self.public(s), self.public(d)) {
                (true, false) => Ends::Counted { local: d, remote: s, sent: false, nat: true },
                _ => Ends::Counted { local: s, remote: d, sent: true, nat: true },
            };
        }
        self.note_translation(r);
        match r.direction {
            Some(FlowDirection::Egress) => {
                Ends::Counted { local: s, remote: d, sent: true, nat: false }
            }
            Some(FlowDirection::Ingress) => {
                Ends::Counted { local: d, remote: s, sent: false, nat: false }
            }
            None => match (self.public(s), self.public(d)) {
                (true, false) => Ends::Counted { local: d, remote: s, sent: false, nat: false },
                _ => Ends::Counted { local: s, remote: d, sent: true, nat: false },
            },
        }
    }

    /// Notes a private `srcaddr` or `dstaddr` whose packet address is public: a NAT gateway's
    /// (AWS's flow-log record example "NAT gateway traffic": `dstaddr` the gateway,
    /// `pkt-dstaddr` the internet host, and the reverse for replies) that `--nat-gateway`
    /// does not name. Addresses in pods (`pkt-srcaddr` a pod's, `srcaddr` its node's) are
    /// private on both sides and not noted.
    fn note_translation(&mut self, r: &Record<'_>) {
        // Most records: each packet address is the interface's (or not logged).
        if r.pkt_dst.is_none_or(|p| p == r.dst) && r.pkt_src.is_none_or(|p| p == r.src) {
            return;
        }
        for (interface, packet) in [(r.dst, r.pkt_dst), (r.src, r.pkt_src)] {
            let Some(packet) = packet.filter(|p| *p != interface) else { continue };
            if self.public(interface) || !self.public(packet) {
                continue;
            }
            let noted = &mut self.analysis.unlisted_nat_gateways;
            let full = noted.len() >= MAX_UNLISTED_NAT_GATEWAYS;
            match noted.get_mut(&Addr(interface)) {
                Some(records) => *records += 1,
                None if !full => {
                    noted.insert(Addr(interface), 1);
                }
                None => {}
            }
        }
    }

    /// Whether the node's classifier calls `addr` public: the verdict kept with the address
    /// when it is a remote already (from any zone: a zone decides only between private
    /// classes), else the classifier's.
    fn public(&mut self, addr: IpAddr) -> bool {
        let d = &self.analysis.destinations;
        match d.find(self.hash.hash_one(Addr(addr)), Addr(addr)).and_then(|i| d.get(i).verdict) {
            Some((_, found)) => found.class.is_public(),
            None => self.found(addr, 0).class.is_public(),
        }
    }

    fn subnet_of(&self, local: IpAddr) -> String {
        self.paths.subnet(local).map_or_else(String::new, |s| s.cidr.to_string())
    }
}

/// The number standing for `name` (services and regions: a few dozen).
fn intern(names: &mut Map<String, u16>, list: &mut Vec<String>, name: &str) -> u16 {
    if let Some(&n) = names.get(name) {
        return n;
    }
    let n = u16::try_from(list.len()).unwrap_or(u16::MAX);
    names.insert(name.to_owned(), n);
    list.push(name.to_owned());
    n
}

impl Analysis {
    /// Adds another worker's sums.
    pub fn merge(&mut self, o: Analysis) {
        let mut index: Map<BucketKey, u32> =
            self.buckets.iter().enumerate().map(|(i, (k, _))| (k.clone(), i as u32)).collect();
        let map: Vec<u32> = o
            .buckets
            .iter()
            .map(|(k, c)| match index.get(k) {
                Some(&i) => {
                    self.buckets[i as usize].1.merge(c);
                    i
                }
                None => {
                    let i = self.buckets.len() as u32;
                    self.buckets.push((k.clone(), *c));
                    index.insert(k.clone(), i);
                    i
                }
            })
            .collect();
        for (a, s) in o.sources {
            self.sources.entry(a).or_default().merge(&s, &map);
        }
        self.other_sources.merge(&o.other_sources, &map);
        let hash = address_hash();
        for d in o.destinations.into_entries() {
            let h = hash.hash_one(d.addr);
            match self.destinations.find(h, d.addr) {
                Some(i) => self.destinations.get_mut(i).merge(&d, &map),
                None => {
                    let mut mine = Destination::new(d.addr);
                    mine.merge(&d, &map);
                    self.destinations.insert(h, mine);
                }
            }
        }
        self.other_destinations.merge(&o.other_destinations, &map);
        for (k, s) in o.avoidable {
            self.avoidable.entry(k).or_default().merge(&s, &map);
        }
        self.rejected.merge(&o.rejected);
        let (d, od) = (&mut self.duplicates, &o.duplicates);
        d.nat_internet_leg.merge(&od.nat_internet_leg);
        d.nat_instance_leg.merge(&od.nat_instance_leg);
        d.seen_at_nat_gateway.merge(&od.seen_at_nat_gateway);
        self.unique_destinations.merge(&o.unique_destinations);
        let mut series: Map<SeriesKey, u32> =
            self.series.iter().enumerate().map(|(i, k)| (*k, i as u32)).collect();
        let series_map: Vec<u32> = o
            .series
            .iter()
            .map(|k| {
                let k = SeriesKey { bucket: map[k.bucket as usize], ..*k };
                *series.entry(k).or_insert_with(|| {
                    self.series.push(k);
                    self.series.len() as u32 - 1
                })
            })
            .collect();
        for ((s, minute), c) in o.timeline {
            self.timeline.entry((series_map[s as usize], minute)).or_default().merge(&c);
        }
        self.untimed.merge(&o.untimed);
        for (a, records) in o.unlisted_nat_gateways {
            *self.unlisted_nat_gateways.entry(a).or_default() += records;
        }
    }

    /// A warning for each address in [`Analysis::unlisted_nat_gateways`], most records
    /// first (at most [`MAX_UNLISTED_NAT_GATEWAYS`]).
    pub fn unlisted_nat_gateway_warnings(&self) -> Vec<String> {
        let mut noted: Vec<(&Addr, &u64)> = self.unlisted_nat_gateways.iter().collect();
        noted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.0.cmp(&b.0.0)));
        noted
            .into_iter()
            .take(MAX_UNLISTED_NAT_GATEWAYS)
            .map(|(Addr(a), &n)| {
                let records = if n == 1 { "1 record".into() } else { format!("{n} records") };
                format!(
                    "{a} looks like a NAT gateway: in {records} it stands for a public \
                     address (a private srcaddr or dstaddr whose pkt-srcaddr or pkt-dstaddr is \
                     public); give --nat-gateway {a}, or the bytes through it count twice where \
                     the instances' interfaces are logged too"
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer(nat_gateways: &[&str]) -> Analyzer {
        let options = Options {
            nat_gateways: nat_gateways.iter().map(|a| a.parse().unwrap()).collect(),
            max_sources: 100,
            max_destinations: 100,
            ..Options::default()
        };
        let config = Arc::new(FileConfig::default());
        let cloud = Arc::new(SharedCloudTable::default());
        Analyzer::new(config, cloud, Arc::new(options), Vec::new())
    }

    /// A record of `bytes` from `src` to `dst`, with the packet's ends when given.
    fn record(src: &str, dst: &str, packet: Option<(&str, &str)>) -> Record<'static> {
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        Record {
            interface: None,
            src: ip(src),
            dst: ip(dst),
            pkt_src: packet.map(|p| ip(p.0)),
            pkt_dst: packet.map(|p| ip(p.1)),
            packets: 1,
            bytes: 100,
            action: Action::Accept,
            subnet: None,
            az: None,
            src_service: None,
            dst_service: None,
            direction: None,
            traffic_path: None,
            end: None,
        }
    }

    /// AWS's flow-log record example "NAT gateway traffic" (the gateway 10.0.0.220's
    /// interface: instance leg out, internet leg out, internet leg back, instance leg back),
    /// a pod's record (its node's address, its own in `pkt-srcaddr`), and a public address
    /// in place of another public one (no NAT gateway's: those are private).
    fn nat_gateway_interface_and_a_pod() -> [Record<'static>; 6] {
        [
            record("10.0.1.5", "10.0.0.220", Some(("10.0.1.5", "203.0.113.5"))),
            record("10.0.0.220", "203.0.113.5", Some(("10.0.0.220", "203.0.113.5"))),
            record("203.0.113.5", "10.0.0.220", Some(("203.0.113.5", "10.0.0.220"))),
            record("10.0.0.220", "10.0.1.5", Some(("203.0.113.5", "10.0.1.5"))),
            record("10.0.1.7", "203.0.113.9", Some(("10.0.1.99", "203.0.113.9"))),
            record("198.51.100.3", "10.0.1.5", Some(("198.51.100.4", "10.0.1.5"))),
        ]
    }

    #[test]
    fn a_nat_gateway_not_given_is_named_with_its_records() {
        let mut a = analyzer(&[]);
        for r in nat_gateway_interface_and_a_pod() {
            a.add(&r);
        }
        let gateway = Addr("10.0.0.220".parse().unwrap());
        let noted: Vec<_> = a.analysis.unlisted_nat_gateways.iter().collect();
        assert_eq!(noted, [(&gateway, &2)], "the two instance-leg records, not the pod's");
        let warnings = a.analysis.unlisted_nat_gateway_warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("10.0.0.220 looks like a NAT gateway: in 2 records"));
        assert!(warnings[0].contains("give --nat-gateway 10.0.0.220"), "{}", warnings[0]);

        // Given, it is read as a NAT gateway and not noted.
        let mut given = analyzer(&["10.0.0.220"]);
        for r in nat_gateway_interface_and_a_pod() {
            given.add(&r);
        }
        assert!(given.analysis.unlisted_nat_gateways.is_empty());
        assert!(given.analysis.unlisted_nat_gateway_warnings().is_empty());

        // Workers' notes add up; at most MAX_UNLISTED_NAT_GATEWAYS addresses are kept.
        let mut other = analyzer(&[]);
        for i in 0..MAX_UNLISTED_NAT_GATEWAYS + 4 {
            let gateway = format!("10.0.0.{}", 100 + i);
            other.add(&record("10.0.1.5", &gateway, Some(("10.0.1.5", "198.51.100.1"))));
        }
        assert_eq!(other.analysis.unlisted_nat_gateways.len(), MAX_UNLISTED_NAT_GATEWAYS);
        other.add(&record("10.0.1.6", "10.0.0.220", Some(("10.0.1.6", "198.51.100.2"))));
        assert!(!other.analysis.unlisted_nat_gateways.contains_key(&gateway), "full");
        a.analysis.merge(other.analysis);
        a.add(&nat_gateway_interface_and_a_pod()[0]);
        assert_eq!(a.analysis.unlisted_nat_gateways[&gateway], 3);
        let warnings = a.analysis.unlisted_nat_gateway_warnings();
        assert_eq!(warnings.len(), MAX_UNLISTED_NAT_GATEWAYS, "most records first, capped");
        assert!(warnings[0].starts_with("10.0.0.220 "), "{}", warnings[0]);
    }

    #[test]
    fn a_destination_is_one_cache_line_and_keeps_every_bucket() {
        assert_eq!(std::mem::size_of::<Destination>(), 64);
        assert_eq!(std::mem::align_of::<Destination>(), 64);
        assert_eq!(std::mem::size_of::<Found>(), 8);

        let addr = Addr("54.231.1.2".parse().unwrap());
        let mut d = Destination::new(addr);
        assert!(d.spend().0.is_empty());
        d.add(3, Counts::one(100, 2));
        d.add(3, Counts::one(50, 1));
        assert!(d.more.is_none(), "one bucket, no service: nothing outside the line");
        d.add(7, Counts::one(10, 1));
        d.set_aws_service(Some("S3"));
        let c = |bytes, packets, records| Counts { bytes, packets, records };
        assert_eq!(d.spend().0.as_slice(), &[(3, c(150, 3, 2)), (7, c(10, 1, 1))]);
        assert_eq!(d.aws_service(), Some("S3"));

        // Another worker's buckets 0 and 1 are this one's 7 and 5.
        let mut o = Destination::new(addr);
        o.add(0, Counts::one(1, 1));
        o.add(1, Counts::one(2, 1));
        o.set_aws_service(Some("AMAZON"));
        d.merge(&o, &[7, 5]);
        assert_eq!(d.spend().0.as_slice(), &[(3, c(150, 3, 2)), (7, c(11, 2, 2)), (5, c(2, 1, 1))]);
        assert_eq!(d.aws_service(), Some("S3"), "the first service named stays");
        let mut fresh = Destination::new(addr);
        fresh.merge(&o, &[7, 5]);
        assert_eq!(fresh.spend().0.as_slice(), &[(7, c(1, 1, 1)), (5, c(2, 1, 1))]);
        assert_eq!(fresh.aws_service(), Some("AMAZON"));
    }

    #[test]
    fn the_destinations_table_finds_every_address_through_growth_and_collisions() {
        let mut t = Destinations::default();
        let hash = |a: Addr| address_hash().hash_one(a);
        let v4 = |i: u32| Addr(IpAddr::V4(i.into()));
        let v6 = |i: u32| Addr(IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) << 64)));
        assert_eq!(t.find(hash(v4(1)), v4(1)), None, "no slots yet");
        t.prefetch(12345);
        let mut addresses: Vec<Addr> = (0..5000).flat_map(|i| [v4(i), v6(i)]).collect();
        // 10,000 addresses and more fill 32,768 slots; three whose first probe is the last
        // slot make a probe that wraps around the table's end.
        let last = (1 << 15) - 1;
        addresses.extend((5000..).map(v4).filter(|&a| hash(a) as usize & last == last).take(3));
        for (i, &a) in addresses.iter().enumerate() {
            assert_eq!(t.find(hash(a), a), None);
            let mut d = Destination::new(a);
            d.add(i as u32 % 4, Counts::one(i as u64, 1));
            t.insert(hash(a), d);
        }
        assert_eq!((t.len(), t.iter().count(), t.slots.len()), (10_003, 10_003, 1 << 15));
        for (i, &a) in addresses.iter().enumerate() {
            let slot = t.find(hash(a), a).expect("entered");
            assert_eq!(t.get(slot).addr, a);
            assert_eq!(t.get(slot).spend().0[0], (i as u32 % 4, Counts::one(i as u64, 1)));
        }
        let slots: Vec<usize> =
            addresses[10_000..].iter().map(|&a| t.find(hash(a), a).unwrap()).collect();
        assert!(slots.iter().any(|&s| s < 10), "a probe wrapped around: {slots:?}");
        assert_eq!(t.find(hash(v4(u32::MAX)), v4(u32::MAX)), None);
        let bytes: u64 = t.into_entries().map(|d| d.first.bytes).sum();
        assert_eq!(bytes, (0..10_003u64).sum::<u64>());
    }
}
