//! Flow accounting: turns the kernel's per-flow totals into monotonic counters per label set.
//!
//! Label sets are identified by a small `Copy` key (`L`, the agent's
//! [`LabelKey`](crate::labels::LabelKey)): hashing it is cheap, which matters when a cycle
//! meets tens of thousands of new flows.
//!
//! Each read cycle sees every kernel entry's total since the entry was created. The
//! difference from the previous read is the flow's delta, added to its label set's
//! counters. A flow whose total has not moved for `idle_cycles` reads is removed from the
//! kernel map with an atomic lookup-and-delete, and the bytes it gained since the last read
//! are added too: an idle flow's removal loses nothing. If a key is created again later, its
//! new total starts from zero and counts as a delta on its own.

use std::{collections::HashMap, hash::Hash};

use egressor_common::{FlowCounters, FlowKey};
use foldhash::fast::RandomState;

use crate::{flow_table::FlowTable, prices::Cost};

/// What the attribution says about one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labelled<L> {
    /// The label set its bytes count under.
    pub labels: L,
    /// `false` while attribution is incomplete: the flow is labelled again at its next read.
    pub settled: bool,
    /// An opaque tag whose bytes [`Accounting::take_usage`] reports (0: not reported), e.g.
    /// the (workload, remote name) pair before a cardinality fold.
    pub tag: u64,
}

/// Label sets that can give up detail when the series cap is reached.
pub trait Fold: Sized {
    /// A coarser label set (the remote folded into `other`).
    fn fold(&self) -> Self;
    /// The coarsest label set, always admitted (few exist: they keep only hook, direction,
    /// class and path).
    fn fold_all(&self) -> Self;
}

/// Totals of one label set since the agent started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// L3 bytes on the wire.
    pub bytes: u64,
    /// Packets (segments on the wire).
    pub packets: u64,
}

#[derive(Debug)]
struct Tracked {
    last: FlowCounters,
    /// Bytes gained in the last cycle that saw the flow.
    last_delta: u64,
    series: usize,
    tag: u64,
    label_generation: u64,
    idle_cycles: u32,
    seen_in_cycle: u64,
}

impl Tracked {
    /// A flow first met in `cycle` whose kernel totals up to `last` are already counted.
    fn new(last: FlowCounters, series: usize, tag: u64, label_generation: u64, cycle: u64) -> Self {
        Self {
            last,
            last_delta: 0,
            series,
            tag,
            label_generation,
            idle_cycles: 0,
            seen_in_cycle: cycle,
        }
    }
}

#[derive(Debug)]
struct Series<L> {
    labels: L,
    totals: Totals,
    /// Tracked flows counted under these labels.
    flows: u32,
    /// Cycle in which the totals last grew (or the series was created).
    changed_in_cycle: u64,
    /// Cost of the bytes priced so far.
    cost: Cost,
    /// Bytes counted but not priced yet (see [`Accounting::price`]).
    unpriced: u64,
}

/// Label sets and their totals. Slots are stable while a series lives (flows hold their
/// index); an expired series' slot is reused.
#[derive(Debug)]
struct SeriesTable<L> {
    index: HashMap<L, usize, RandomState>,
    slots: Vec<Option<Series<L>>>,
    free: Vec<usize>,
    /// Live series allowed in all.
    max: usize,
    /// Part of `max` kept for the full folds: detailed label sets are admitted while fewer
    /// than `max - reserve` series live.
    reserve: usize,
    /// Flows whose label set was folded because of `max`.
    folded: u64,
    /// Full folds created while `max` series already lived (the reserve was used up).
    over_cap: u64,
}

impl<L: Copy + Eq + Hash + Fold> SeriesTable<L> {
    fn new(max: usize) -> Self {
        Self {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            max,
            reserve: fold_reserve(max),
            folded: 0,
            over_cap: 0,
        }
    }

    fn live_count(&self) -> usize {
        self.index.len()
    }

    /// The slot of `labels`, created if needed, with one more flow counted under it. Once
    /// `max - reserve` series live, a new label set becomes its fold if that exists, else
    /// its full fold; full folds take the reserve, and only past `max` itself does one more
    /// series appear (counted in `over_cap`), because no byte may be dropped.
    fn attach(&mut self, labels: L, cycle: u64) -> usize {
        // Most new flows join a label set that lives already: one lookup.
        if let Some(&i) = self.index.get(&labels) {
            self.live(i).flows += 1;
            return i;
        }
        let live = self.live_count();
        let labels = if live + self.reserve < self.max {
            labels
        } else {
            self.folded += 1;
            let folded = labels.fold();
            if self.index.contains_key(&folded) { folded } else { labels.fold_all() }
        };
        if live >= self.max && !self.index.contains_key(&labels) {
            self.over_cap += 1;
        }
        let i = match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                let series = Series {
                    labels,
                    totals: Totals::default(),
                    flows: 0,
                    changed_in_cycle: cycle,
                    cost: Cost::default(),
                    unpriced: 0,
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i] = Some(series);
                        i
                    }
                    None => {
                        self.slots.push(Some(series));
                        self.slots.len() - 1
                    }
                };
                self.index.insert(labels, i);
                i
            }
        };
        self.live(i).flows += 1;
        i
    }

    /// One flow fewer under slot `i`.
    fn detach(&mut self, i: usize) {
        let series = self.live(i);
        series.flows = series.flows.saturating_sub(1);
    }

    fn add(&mut self, i: usize, delta: FlowCounters, cycle: u64) {
        if delta.bytes == 0 && delta.packets == 0 {
            return;
        }
        let series = self.live(i);
        series.totals.bytes = series.totals.bytes.wrapping_add(delta.bytes);
        series.totals.packets = series.totals.packets.wrapping_add(delta.packets);
        series.unpriced += delta.bytes;
        series.changed_in_cycle = cycle;
    }

    /// Drops series no flow counts under any more and whose totals have not grown for more
    /// than `idle_after` cycles. Returns how many were dropped.
    fn expire(&mut self, cycle: u64, idle_after: u64) -> usize {
        let mut dropped = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let expired = slot
                .as_ref()
                .is_some_and(|s| s.flows == 0 && cycle - s.changed_in_cycle > idle_after);
            if expired && let Some(series) = slot.take() {
                self.index.remove(&series.labels);
                self.free.push(i);
                dropped += 1;
            }
        }
        dropped
    }

    fn live(&mut self, i: usize) -> &mut Series<L> {
        self.slots[i].as_mut().expect("a tracked flow points at a live series")
    }
}

/// The share of a series cap kept for the full folds: 1/20 of it, between 16 and 1,024, but
/// never more than half of it (and at least 1). A node meets few full folds (one per hook,
/// direction, class, path and cloud range priced differently), so the cap holds unless more
/// of them than this appear.
pub fn fold_reserve(max: usize) -> usize {
    (max / 20).clamp(16, 1024).min(max / 2).max(1)
}

/// Per-flow state and per-label-set totals; `L` identifies a label set.
#[derive(Debug)]
pub struct Accounting<L> {
    // In the kernel's read order: a cycle walks it instead of hashing into it (a random
    // lookup per flow was the largest user-space cost of a 100k-flow cycle). Out-of-order
    // flows hash with foldhash: keys come from the kernel, not from peers who could choose
    // them to collide, and the seed is still random per process.
    flows: FlowTable<Tracked>,
    table: SeriesTable<L>,
    usage: HashMap<u64, u64, RandomState>,
    cycle: u64,
    label_generation: u64,
    idle_after: u32,
    series_idle_after: u64,
}

impl<L: Copy + Eq + Hash + Fold> Accounting<L> {
    /// `idle_after`: reads without change before a flow's kernel entry is removed (≥ 1).
    /// `series_idle_after`: reads without growth before a label set no flow counts under
    /// any more leaves the exposition (bounds memory and series on nodes where workloads
    /// come and go). `max_series`: the cap on live label sets. Detailed ones are admitted
    /// until [`fold_reserve`] of it is left, then new label sets fold ([`Fold`]) and the
    /// full folds use the reserve; a full fold is still admitted past the cap (no byte is
    /// dropped), counted by [`Accounting::over_cap`].
    ///
    /// The flow table grows with the flows; see [`Accounting::with_flow_capacity`] to
    /// reserve it.
    pub fn new(idle_after: u32, series_idle_after: u64, max_series: usize) -> Self {
        Self::with_flow_capacity(idle_after, series_idle_after, max_series, 0)
    }

    /// [`Accounting::new`] with room for `flows` tracked flows (the kernel flow map's
    /// capacity) reserved up front ([`FlowTable::with_capacity`]): a cycle that meets many
    /// new flows then fills the reservation in place instead of copying the table at every
    /// doubling (a copy was a fifth of a first 100k-flow cycle's user-space time). The
    /// reservation is address space, not resident memory: pages count once flows reach them.
    pub fn with_flow_capacity(
        idle_after: u32,
        series_idle_after: u64,
        max_series: usize,
        flows: usize,
    ) -> Self {
        Self {
            flows: FlowTable::with_capacity(flows),
            table: SeriesTable::new(max_series),
            usage: HashMap::default(),
            cycle: 0,
            label_generation: 0,
            idle_after: idle_after.max(1),
            series_idle_after,
        }
    }

    /// Starts a read cycle. With `relabel`, every flow's labels are computed afresh at its
    /// next observation (the classifier's inputs changed).
    pub fn begin_cycle(&mut self, relabel: bool) {
        self.cycle += 1;
        if relabel {
            self.label_generation += 1;
        }
    }

    /// Records the kernel's current totals for `key`. One hash lookup per call.
    ///
    /// `labels` returns a flow's label set and whether it is settled. It is called for flows
    /// seen for the first time, after a relabel, and at every observation of a flow whose
    /// labels were not settled (its cgroup was not found yet): such a flow's later deltas
    /// move to the right label set as soon as attribution succeeds.
    ///
    /// Returns the flow's label set when it gained bytes since the last read.
    pub fn observe(
        &mut self,
        key: FlowKey,
        now: FlowCounters,
        labels: &mut impl FnMut(&FlowKey) -> Labelled<L>,
    ) -> Option<L> {
        self.record(key, now, FlowCounters::default(), labels)
    }

    /// [`Accounting::observe`], where a flow not tracked yet has its totals up to `counted`
    /// already counted.
    fn record(
        &mut self,
        key: FlowKey,
        now: FlowCounters,
        counted: FlowCounters,
        labels: &mut impl FnMut(&FlowKey) -> Labelled<L>,
    ) -> Option<L> {
        let (generation, cycle) = (self.label_generation, self.cycle);
        let table = &mut self.table;
        // A generation no cycle ever has: the flow is labelled again at its next read.
        let generation_of = |settled: bool| if settled { generation } else { u64::MAX };
        let (tracked, new) = self.flows.get_or_push(key, || {
            let l = labels(&key);
            let series = table.attach(l.labels, cycle);
            Tracked::new(counted, series, l.tag, generation_of(l.settled), cycle)
        });
        if !new && tracked.label_generation != generation {
            let l = labels(&key);
            let series = table.attach(l.labels, cycle);
            table.detach(tracked.series);
            tracked.series = series;
            tracked.tag = l.tag;
            tracked.label_generation = generation_of(l.settled);
        }
        let delta = delta(tracked.last, now);
        table.add(tracked.series, delta, cycle);
        if tracked.tag != 0 && delta.bytes != 0 {
            *self.usage.entry(tracked.tag).or_default() += delta.bytes;
        }
        tracked.last = now;
        tracked.last_delta = delta.bytes;
        tracked.seen_in_cycle = cycle;
        if delta.packets == 0 && delta.bytes == 0 {
            tracked.idle_cycles += 1;
            None
        } else {
            tracked.idle_cycles = 0;
            table.slots[tracked.series].as_ref().map(|s| s.labels)
        }
    }

    /// Ends a read cycle: returns the keys that have been idle long enough to be removed
    /// (pass each to [`Accounting::removed`]), forgets flows the kernel has not shown for as
    /// long, and expires idle label sets. Only the agent deletes kernel entries, so a flow
    /// missing from one read is a read that missed it, not a flow that ended: forgetting it
    /// at once would count its whole total again when it reappears.
    pub fn end_cycle(&mut self) -> Vec<FlowKey> {
        let (cycle, idle_after) = (self.cycle, self.idle_after);
        let table = &mut self.table;
        let mut idle = Vec::new();
        self.flows.retain(|key, t| {
            if t.idle_cycles >= idle_after {
                idle.push(*key);
            }
            let keep = cycle - t.seen_in_cycle <= u64::from(idle_after);
            if !keep {
                table.detach(t.series);
            }
            keep
        });
        self.flows.end_cycle();
        self.table.expire(cycle, self.series_idle_after);
        idle
    }

    /// Accounts the final totals of a flow removed from the kernel (`None` when it was
    /// already gone) and forgets it.
    pub fn removed(&mut self, key: &FlowKey, last: Option<FlowCounters>) {
        if let Some(t) = self.flows.remove(key) {
            if let Some(last) = last {
                let d = delta(t.last, last);
                self.table.add(t.series, d, self.cycle);
                if t.tag != 0 && d.bytes != 0 {
                    *self.usage.entry(t.tag).or_default() += d.bytes;
                }
            }
            self.table.detach(t.series);
        }
    }

    /// Makes every flow matching `pred` be labelled again at its next observation (its
    /// remote's identity changed: a pod IP reused).
    pub fn relabel_where(&mut self, pred: impl Fn(&FlowKey) -> bool) {
        for (key, t) in self.flows.iter_mut() {
            if pred(key) {
                t.label_generation = u64::MAX;
            }
        }
    }

    /// Every tracked flow: its key, the kernel entry's totals at the last read, the bytes it
    /// gained in that read, and the label set it counts under.
    pub fn flows(&self) -> impl Iterator<Item = (&FlowKey, FlowCounters, u64, &L)> {
        self.flows.iter().filter_map(|(k, t)| {
            let series = self.table.slots[t.series].as_ref()?;
            Some((k, t.last, t.last_delta, &series.labels))
        })
    }

    /// Bytes counted per tag since the last call (see [`Labelled::tag`]).
    pub fn take_usage(&mut self) -> HashMap<u64, u64, RandomState> {
        std::mem::take(&mut self.usage)
    }

    /// Live label sets.
    pub fn series_count(&self) -> usize {
        self.table.live_count()
    }

    /// Flows whose label set was folded because the series cap was reached, since start.
    pub fn folded_flows(&self) -> u64 {
        self.table.folded
    }

    /// Full folds created while `max_series` label sets already lived, since start.
    pub fn over_cap(&self) -> u64 {
        self.table.over_cap
    }

    /// Flows currently tracked (kernel entries seen in the last cycle).
    pub fn tracked_flows(&self) -> usize {
        self.flows.len()
    }

    /// Prices the bytes each label set gained since the last call: `cost` gets the labels
    /// and the bytes, once per label set that grew. Call once per cycle, after evictions.
    pub fn price(&mut self, mut cost: impl FnMut(&L, u64) -> Cost) {
        for series in self.table.slots.iter_mut().flatten() {
            if series.unpriced > 0 {
                series.cost += cost(&series.labels, series.unpriced);
                series.unpriced = 0;
            }
        }
    }

    /// Every live label set with its totals and the cost of its priced bytes.
    pub fn series(&self) -> impl Iterator<Item = (&L, &Totals, &Cost)> {
        self.table.slots.iter().flatten().map(|s| (&s.labels, &s.totals, &s.cost))
    }
}

/// What a later agent needs to carry on counting exactly where this one stopped (see
/// [`Accounting::save`]): every live label set's totals and every tracked flow's kernel
/// totals already counted. `M` spells a label set out by value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Saved<M> {
    /// Live label sets.
    pub series: Vec<SavedSeries<M>>,
    /// Tracked flows.
    pub flows: Vec<SavedFlow>,
}

/// One label set of a [`Saved`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedSeries<M> {
    /// The labels.
    pub labels: M,
    /// Bytes and packets counted under them since the first agent started.
    pub totals: (u64, u64),
    /// Cost of the priced bytes, USD: (transfer and processing, avoidable part).
    pub cost_usd: (f64, f64),
    /// Bytes counted but not priced yet.
    pub unpriced: u64,
}

/// One flow of a [`Saved`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedFlow {
    /// The kernel key.
    pub key: FlowKey,
    /// The kernel entry's totals at the last read (already counted).
    pub last: FlowCounters,
    /// Index of its label set in [`Saved::series`].
    pub series: u32,
}

/// [`Saved`] read straight from an [`Accounting`] as it serializes (no copy of every flow, which
/// at 100,000 flows was an 8 MB vector built and dropped each cycle): its serde form is that
/// of the `Saved` [`Accounting::save`] returns, field for field, so either reads back as a
/// `Saved`.
pub struct SavedView<'a, L, F> {
    accounting: &'a Accounting<L>,
    labels: F,
    /// Each live label set's position in the saved series, by slot (`u32::MAX`: none).
    index: Vec<u32>,
}

impl<L, M, F> serde::Serialize for SavedView<'_, L, F>
where
    L: Copy + Eq + Hash + Fold,
    M: serde::Serialize,
    F: Fn(&L) -> M,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let a = self.accounting;
        let mut out = serializer.serialize_struct("Saved", 2)?;
        let series = Seq::new(a.saved_series(&self.labels), a.table.live_count());
        out.serialize_field("series", &series)?;
        out.serialize_field("flows", &Seq::new(a.saved_flows(&self.index), a.flows.len()))?;
        out.end()
    }
}

/// `len` items of an iterator, serialized once as a sequence of that length.
struct Seq<I> {
    items: std::cell::Cell<Option<I>>,
    len: usize,
}

impl<I> Seq<I> {
    fn new(items: I, len: usize) -> Self {
        Self { items: std::cell::Cell::new(Some(items)), len }
    }
}

impl<I> serde::Serialize for Seq<I>
where
    I: Iterator,
    I::Item: serde::Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq as _};
        let items = self.items.take().ok_or_else(|| S::Error::custom("serialized twice"))?;
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        let mut n = 0;
        for item in items {
            seq.serialize_element(&item)?;
            n += 1;
        }
        if n != self.len {
            return Err(S::Error::custom(format!("{n} items where {} were announced", self.len)));
        }
        seq.end()
    }
}

impl<L: Copy + Eq + Hash + Fold> Accounting<L> {
    /// [`Accounting::save`]'s state as a view that serializes without copying the flows.
    pub fn saved_view<M, F: Fn(&L) -> M>(&self, labels: F) -> SavedView<'_, L, F> {
        SavedView { accounting: self, labels, index: self.saved_index() }
    }

    /// The state a later agent resumes from with [`Accounting::restore`], its label sets
    /// spelled out by `labels`, as a value (the agent writes [`Accounting::saved_view`], which
    /// serializes the same without the copy).
    pub fn save<M>(&self, labels: impl Fn(&L) -> M) -> Saved<M> {
        let index = self.saved_index();
        Saved {
            series: self.saved_series(&labels).collect(),
            flows: self.saved_flows(&index).collect(),
        }
    }

    /// Each slot's position among the saved label sets (`u32::MAX` for an empty slot).
    fn saved_index(&self) -> Vec<u32> {
        let mut index = vec![u32::MAX; self.table.slots.len()];
        let live = self.table.slots.iter().enumerate().filter(|(_, s)| s.is_some());
        for (position, (slot, _)) in live.enumerate() {
            index[slot] = position as u32;
        }
        index
    }

    /// The live label sets, in slot order.
    fn saved_series<'a, M>(
        &'a self,
        labels: &'a impl Fn(&L) -> M,
    ) -> impl Iterator<Item = SavedSeries<M>> + 'a {
        self.table.slots.iter().flatten().map(|s| SavedSeries {
            labels: labels(&s.labels),
            totals: (s.totals.bytes, s.totals.packets),
            cost_usd: (s.cost.usd, s.cost.avoidable_usd),
            unpriced: s.unpriced,
        })
    }

    /// The tracked flows, their label sets by position (`index` from `saved_index`).
    fn saved_flows<'a>(&'a self, index: &'a [u32]) -> impl Iterator<Item = SavedFlow> + 'a {
        self.flows.iter().map(|(key, t)| SavedFlow {
            key: *key,
            last: t.last,
            series: index[t.series],
        })
    }

    /// Takes over `saved` (from [`Accounting::save`] of an earlier agent counting the same
    /// kernel map), before the first cycle: label sets resume their totals and each flow's
    /// next delta is measured from what was already counted. Label sets that meet after
    /// `labels` merge; past the series cap they fold, keeping their bytes. Returns the
    /// number of (flows, label sets) taken over.
    pub fn restore<M>(
        &mut self,
        saved: Saved<M>,
        mut labels: impl FnMut(M) -> L,
    ) -> (usize, usize) {
        let cycle = self.cycle;
        let slots: Vec<usize> = saved
            .series
            .into_iter()
            .map(|s| {
                let i = self.table.attach(labels(s.labels), cycle);
                self.table.detach(i);
                let series = self.table.live(i);
                series.totals.bytes = series.totals.bytes.wrapping_add(s.totals.0);
                series.totals.packets = series.totals.packets.wrapping_add(s.totals.1);
                series.cost += Cost { usd: s.cost_usd.0, avoidable_usd: s.cost_usd.1 };
                series.unpriced += s.unpriced;
                i
            })
            .collect();
        let mut flows = 0;
        for f in saved.flows {
            let Some(&series) = slots.get(f.series as usize) else { continue };
            self.table.live(series).flows += 1;
            let tracked = Tracked::new(f.last, series, 0, self.label_generation, cycle);
            if let Some(old) = self.flows.insert(f.key, tracked) {
                self.table.detach(old.series);
            }
            flows += 1;
        }
        (flows, slots.len())
    }

    /// Like [`Accounting::observe`], but takes the kernel's current totals of a flow not
    /// tracked yet as already counted elsewhere: for maps an earlier agent counted without
    /// leaving a usable checkpoint (nothing is counted twice; what it had not exported yet
    /// is lost).
    pub fn adopt(
        &mut self,
        key: FlowKey,
        now: FlowCounters,
        labels: &mut impl FnMut(&FlowKey) -> Labelled<L>,
    ) {
        self.record(key, now, now, labels);
    }
}

/// What a flow gained since `previous`. A total below the previous one means the kernel
/// entry was deleted and created again since: all of it is new.
fn delta(previous: FlowCounters, now: FlowCounters) -> FlowCounters {
    if now.bytes < previous.bytes || now.packets < previous.packets {
        now
    } else {
        FlowCounters { bytes: now.bytes - previous.bytes, packets: now.packets - previous.packets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey { port, ..FlowKey::zeroed() }
    }

    fn c(bytes: u64, packets: u64) -> FlowCounters {
        FlowCounters { bytes, packets }
    }

    impl Fold for &'static str {
        fn fold(&self) -> Self {
            "folded"
        }
        fn fold_all(&self) -> Self {
            "all"
        }
    }

    fn settled(labels: &'static str) -> Labelled<&'static str> {
        Labelled { labels, settled: true, tag: 0 }
    }

    /// Ports 1 and 2 share the label set "web"; others get their own.
    fn labels_by_port(k: &FlowKey) -> Labelled<&'static str> {
        let labels = match k.port {
            1 | 2 => "web",
            5 => "p5",
            7 => "p7",
            9 => "p9",
            _ => "other",
        };
        Labelled { labels, settled: true, tag: u64::from(k.port) }
    }

    fn totals(a: &Accounting<&'static str>, labels: &str) -> Totals {
        a.series().find(|(l, _, _)| **l == labels).map(|(_, t, _)| *t).unwrap()
    }

    /// An agent restarted from a checkpoint ends with the totals of one that never stopped,
    /// also when the checkpoint is older than its last cycle (a SIGKILL between writes).
    #[test]
    fn a_restored_checkpoint_continues_the_counts_exactly() {
        let run = |a: &mut Accounting<&'static str>, reads: &[(u16, u64)]| {
            a.begin_cycle(false);
            for &(port, bytes) in reads {
                a.observe(key(port), c(bytes, bytes / 100), &mut labels_by_port);
            }
            a.end_cycle();
        };
        let mut whole = Accounting::new(3, 1000, usize::MAX);
        let mut first = Accounting::new(3, 1000, usize::MAX);
        let cycles: [&[(u16, u64)]; 4] = [
            &[(1, 100), (5, 10)],
            &[(1, 300), (5, 10)],
            &[(1, 700), (5, 60)],
            &[(1, 900), (5, 90)],
        ];
        for reads in &cycles[..2] {
            run(&mut whole, reads);
            run(&mut first, reads);
        }
        let saved = first.save(|l| l.to_string());
        run(&mut first, cycles[2]); // counted and exported, then killed before saving
        let mut second = Accounting::new(3, 1000, usize::MAX);
        let leaked: &'static str = "p5";
        let (flows, series) = second.restore(saved, |l| if l == "web" { "web" } else { leaked });
        assert_eq!((flows, series), (2, 2));
        run(&mut whole, cycles[2]);
        run(&mut whole, cycles[3]);
        run(&mut second, cycles[3]);
        for labels in ["web", "p5"] {
            assert_eq!(totals(&second, labels), totals(&whole, labels), "{labels}");
        }
        assert_eq!(totals(&second, "web").bytes, 900);
    }

    /// The checkpoint written from the view is the bytes of the `Saved` it describes, also
    /// with label sets expired in between (holes in the slots).
    #[test]
    fn the_saved_view_serializes_as_the_saved_state() {
        let mut a = Accounting::new(1, 1, usize::MAX);
        let cycles: [&[(u16, u64)]; 5] =
            [&[(1, 100), (5, 10), (7, 70)], &[(1, 300)], &[(1, 400)], &[(1, 500), (9, 9)], &[]];
        for reads in cycles {
            a.begin_cycle(false);
            for &(port, bytes) in reads {
                a.observe(key(port), c(bytes, bytes / 100), &mut labels_by_port);
            }
            a.end_cycle();
            let (view, saved) = (a.saved_view(|l| l.to_string()), a.save(|l| l.to_string()));
            let bytes = postcard::to_stdvec(&view).unwrap();
            assert_eq!(bytes, postcard::to_stdvec(&saved).unwrap());
            assert_eq!(postcard::from_bytes::<Saved<String>>(&bytes).unwrap(), saved);
        }
        assert!(a.table.slots.iter().any(Option::is_none), "a label set expired");
        assert_eq!(a.save(|l| l.to_string()).series.len(), a.table.live_count());
    }

    #[test]
    fn adopted_totals_are_not_counted_again() {
        let mut a = Accounting::new(3, 1000, usize::MAX);
        let mut f = labels_by_port;
        a.begin_cycle(false);
        a.adopt(key(1), c(5000, 50), &mut f);
        a.end_cycle();
        a.begin_cycle(false);
        a.observe(key(1), c(5300, 53), &mut f);
        a.end_cycle();
        assert_eq!(totals(&a, "web"), Totals { bytes: 300, packets: 3 });
    }

    #[test]
    fn deltas_accumulate_into_label_sets() {
        let mut a = Accounting::new(3, 1000, usize::MAX);
        let mut f = labels_by_port;
        a.begin_cycle(false);
        a.observe(key(1), c(100, 1), &mut f);
        a.observe(key(2), c(50, 1), &mut f);
        assert!(a.end_cycle().is_empty());
        a.begin_cycle(false);
        a.observe(key(1), c(300, 3), &mut f);
        a.observe(key(2), c(50, 1), &mut f);
        a.end_cycle();
        assert_eq!(totals(&a, "web"), Totals { bytes: 350, packets: 4 });
        assert_eq!(a.series().count(), 1);
    }

    #[test]
    fn idle_flows_are_removed_with_their_last_delta() {
        let mut a = Accounting::new(2, 1000, usize::MAX);
        let mut f = labels_by_port;
        for (cycle, total) in [(1, 10), (2, 10), (3, 10)] {
            a.begin_cycle(false);
            a.observe(key(7), c(total, 1), &mut f);
            let idle = a.end_cycle();
            assert_eq!(idle.is_empty(), cycle < 3, "cycle {cycle}");
        }
        // Between the last read and the removal, 5 more bytes arrived.
        a.removed(&key(7), Some(c(15, 2)));
        assert_eq!(totals(&a, "p7"), Totals { bytes: 15, packets: 2 });
        assert_eq!(a.tracked_flows(), 0);
        // The kernel creates the entry again: its total is new traffic.
        a.begin_cycle(false);
        a.observe(key(7), c(4, 1), &mut f);
        a.end_cycle();
        assert_eq!(totals(&a, "p7"), Totals { bytes: 19, packets: 3 });
    }

    #[test]
    fn each_byte_is_priced_once_under_its_label_set() {
        let mut a = Accounting::new(3, 1000, usize::MAX);
        let mut f = labels_by_port;
        let mut price = |l: &&str, bytes: u64| Cost {
            usd: bytes as f64 * if *l == "web" { 2.0 } else { 1.0 },
            avoidable_usd: 0.0,
        };
        a.begin_cycle(false);
        a.observe(key(1), c(100, 1), &mut f);
        a.observe(key(5), c(10, 1), &mut f);
        a.end_cycle();
        a.price(&mut price);
        a.begin_cycle(false);
        a.observe(key(1), c(150, 2), &mut f);
        a.observe(key(5), c(10, 1), &mut f);
        a.end_cycle();
        a.price(&mut price);
        let cost = |name: &str| a.series().find(|(l, _, _)| **l == name).unwrap().2.usd;
        assert_eq!((cost("web"), cost("p5")), (300.0, 10.0));
    }

    #[test]
    fn at_the_series_cap_new_label_sets_fold_and_no_byte_is_lost() {
        // A cap of 3 keeps 1 for the full folds: 2 detailed label sets.
        let mut a = Accounting::new(3, 1000, 3);
        let mut f = labels_by_port;
        a.begin_cycle(false);
        a.observe(key(1), c(10, 1), &mut f); // web
        a.observe(key(5), c(20, 1), &mut f); // p5: 2 detailed, the rest is the reserve
        a.observe(key(7), c(30, 1), &mut f); // p7 → "folded" does not exist → "all"
        a.observe(key(9), c(40, 1), &mut f); // p9 → "all"
        a.end_cycle();
        let names: Vec<_> = a.series().map(|(l, _, _)| *l).collect();
        assert_eq!(names, ["web", "p5", "all"]);
        assert_eq!(totals(&a, "all").bytes, 70);
        assert_eq!((a.folded_flows(), a.over_cap()), (2, 0));
        let usage = a.take_usage();
        assert_eq!((usage[&7], usage[&9], usage.len()), (30, 40, 4), "usage by tag, unfolded");
        assert!(a.take_usage().is_empty());
    }

    /// (class, detail): the full fold keeps the class, as the agent's keeps what decides the
    /// price.
    impl Fold for (u8, u8) {
        fn fold(&self) -> Self {
            (self.0, 255)
        }
        fn fold_all(&self) -> Self {
            (self.0, 0)
        }
    }

    #[test]
    fn full_folds_use_the_reserve_and_pass_the_cap_only_when_it_is_used_up() {
        let mut a = Accounting::new(3, 1000, 4); // reserve 2: 2 detailed
        let mut by_port = |k: &FlowKey| Labelled {
            labels: ((k.port / 10) as u8, (k.port % 10) as u8 + 1),
            settled: true,
            tag: 0,
        };
        a.begin_cycle(false);
        for (port, bytes) in [(11, 1), (12, 2), (13, 4), (14, 8), (21, 16)] {
            a.observe(key(port), c(bytes, 1), &mut by_port);
        }
        assert_eq!((a.series_count(), a.over_cap()), (4, 0), "2 detailed + 2 full folds");
        a.observe(key(31), c(32, 1), &mut by_port); // class 3's fold: past the cap
        a.end_cycle();
        assert_eq!((a.series_count(), a.over_cap(), a.folded_flows()), (5, 1, 4));
        let bytes: u64 = a.series().map(|(_, t, _)| t.bytes).sum();
        assert_eq!(bytes, 63, "every byte in one series");
    }

    #[test]
    fn the_fold_reserve_is_a_bounded_share_of_the_cap() {
        let reserves = [1, 2, 3, 40, 20_000, 1_000_000].map(fold_reserve);
        assert_eq!(reserves, [1, 1, 1, 16, 1_000, 1_024]);
    }

    #[test]
    fn a_total_that_went_down_is_a_recreated_entry() {
        assert_eq!(delta(c(100, 10), c(40, 2)), c(40, 2));
        assert_eq!(delta(c(100, 10), c(140, 12)), c(40, 2));
    }

    #[test]
    fn a_flow_missing_from_one_read_is_not_counted_twice() {
        let mut a = Accounting::new(3, 1000, usize::MAX);
        let mut f = labels_by_port;
        a.begin_cycle(false);
        a.observe(key(9), c(100, 1), &mut f);
        a.end_cycle();
        a.begin_cycle(false); // the read missed key 9
        a.end_cycle();
        a.begin_cycle(false);
        a.observe(key(9), c(150, 2), &mut f);
        a.end_cycle();
        assert_eq!(totals(&a, "p9"), Totals { bytes: 150, packets: 2 });
    }

    #[test]
    fn flows_gone_from_the_kernel_are_forgotten_after_the_idle_time() {
        let mut a = Accounting::new(2, 1000, usize::MAX);
        let mut f = labels_by_port;
        a.begin_cycle(false);
        a.observe(key(9), c(1, 1), &mut f);
        a.end_cycle();
        for _ in 0..2 {
            a.begin_cycle(false);
            a.end_cycle();
            assert_eq!(a.tracked_flows(), 1);
        }
        a.begin_cycle(false);
        a.end_cycle();
        assert_eq!(a.tracked_flows(), 0);
        assert_eq!(totals(&a, "p9").bytes, 1, "totals stay");
    }

    #[test]
    fn relabel_moves_future_deltas_only() {
        let mut a = Accounting::new(5, 1000, usize::MAX);
        let mut first = labels_by_port;
        a.begin_cycle(false);
        a.observe(key(1), c(10, 1), &mut first);
        a.end_cycle();
        let mut second = |_: &FlowKey| settled("moved");
        a.begin_cycle(true);
        a.observe(key(1), c(25, 2), &mut second);
        a.end_cycle();
        assert_eq!(totals(&a, "web"), Totals { bytes: 10, packets: 1 });
        assert_eq!(totals(&a, "moved"), Totals { bytes: 15, packets: 1 });
    }

    #[test]
    fn idle_label_sets_without_flows_expire_and_come_back_from_zero() {
        let mut a = Accounting::new(1, 3, usize::MAX);
        let mut f = labels_by_port;
        a.begin_cycle(false);
        a.observe(key(5), c(10, 1), &mut f);
        a.observe(key(1), c(10, 1), &mut f);
        a.end_cycle();
        // Key 5 goes idle and is evicted; key 1 keeps growing.
        a.begin_cycle(false);
        a.observe(key(5), c(10, 1), &mut f);
        a.observe(key(1), c(20, 2), &mut f);
        for k in a.end_cycle() {
            a.removed(&k, Some(c(10, 1)));
        }
        for n in 3..=6 {
            a.begin_cycle(false);
            a.observe(key(1), c(10 * n, n), &mut f);
            a.end_cycle();
        }
        let names: Vec<_> = a.series().map(|(l, _, _)| *l).collect();
        assert_eq!(names, ["web"], "p5 expired after 3 idle cycles without flows");
        a.begin_cycle(false);
        a.observe(key(5), c(4, 1), &mut f);
        a.end_cycle();
        assert_eq!(totals(&a, "p5"), Totals { bytes: 4, packets: 1 }, "a new series");
        assert_eq!(totals(&a, "web"), Totals { bytes: 60, packets: 6 });
    }

    #[test]
    fn unsettled_labels_are_retried_and_later_deltas_move() {
        let mut a = Accounting::new(5, 1000, usize::MAX);
        let mut unknown = |_: &FlowKey| Labelled { labels: "unknown", settled: false, tag: 0 };
        a.begin_cycle(false);
        a.observe(key(3), c(10, 1), &mut unknown);
        a.end_cycle();
        let mut found = |_: &FlowKey| settled("app");
        a.begin_cycle(false);
        a.observe(key(3), c(25, 2), &mut found);
        a.end_cycle();
        let mut never_again = |_: &FlowKey| -> Labelled<&'static str> { panic!("settled") };
        a.begin_cycle(false);
        a.observe(key(3), c(30, 3), &mut never_again);
        a.end_cycle();
        assert_eq!(totals(&a, "unknown"), Totals { bytes: 10, packets: 1 });
        assert_eq!(totals(&a, "app"), Totals { bytes: 20, packets: 2 });
    }
}
