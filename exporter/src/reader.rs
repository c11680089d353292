//! The read loop: every interval, read the kernel maps, account the deltas, evict idle
//! flows and publish a snapshot for scrapes. Runs on its own thread (map reads are
//! syscalls); when it stops, the dataplane it owns is dropped and the programs detach.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tracing::{debug, warn};

use crate::{
    accounting::Accounting,
    attribution::{Attributor, host_addresses, remote_address},
    dataplane::{Dataplane, DataplaneError},
    destinations::Destinations,
    labels::HookLabel,
    labels::LabelKey,
    metrics::{PriceRows, SelfMetrics, SharedSnapshot, Snapshot},
    prices::Pricer,
};

/// Owns the dataplane (dropping it detaches the programs) and the accounting state.
pub struct Reader {
    /// The loaded programs and their maps.
    pub dataplane: Dataplane,
    /// Per-flow state and per-label-set totals.
    pub accounting: Accounting<LabelKey>,
    /// Turns flow keys into labels.
    pub attributor: Attributor,
    /// Prices counted bytes.
    pub pricer: Pricer,
    /// Where each cycle publishes for scrapes.
    pub snapshot: Arc<SharedSnapshot>,
    /// The agent's own metrics.
    pub metrics: SelfMetrics,
    /// Set after the first successful cycle (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Whether the next cycle must label every flow again (the admitted names changed).
    pub relabel_next: bool,
    /// Distinct and new external destinations per workload.
    pub destinations: Destinations,
}

impl Reader {
    /// Runs cycles every `interval` until `stop` receives (or its sender is dropped), then
    /// returns, detaching the programs.
    pub fn run(mut self, interval: Duration, stop: Receiver<()>) {
        loop {
            if self.cycle_logged() {
                self.ready.store(true, Ordering::Release);
            }
            match stop.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        debug!("reader stopped; detaching programs");
    }

    /// Runs one cycle, records its outcome in the self metrics; returns whether it worked.
    fn cycle_logged(&mut self) -> bool {
        let start = Instant::now();
        let ok = match self.cycle() {
            Ok(()) => {
                self.metrics.read_cycles.inc();
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                self.metrics.last_read_timestamp.set(now.as_secs_f64());
                true
            }
            Err(e) => {
                self.metrics.read_errors.inc();
                warn!(error = %error_chain(&e), "read cycle failed; counts are kept, retrying next cycle");
                false
            }
        };
        self.metrics.read_duration.observe(start.elapsed().as_secs_f64());
        ok
    }

    /// One cycle. Public for benchmarks.
    ///
    /// # Errors
    /// A map read failure; what was read before it is accounted.
    pub fn cycle(&mut self) -> Result<(), DataplaneError> {
        let relabel = self.attributor.next_cycle(host_addresses()) | self.relabel_next;
        self.accounting.begin_cycle(relabel);
        let mut entries = 0u64;
        {
            let accounting = &mut self.accounting;
            let attributor = &mut self.attributor;
            let destinations = &mut self.destinations;
            let mut labels = |k: &egressor_common::FlowKey| attributor.label_key(k);
            self.dataplane.read_flows(|key, counters| {
                entries += 1;
                let active = accounting.observe(key, counters, &mut labels);
                if let Some(l) = active
                    && l.hook == HookLabel::Cgroup
                    && l.traffic_class.is_public()
                    && let Some(remote) = remote_address(&key)
                {
                    destinations.active(l.workload, remote);
                }
            })?;
        }
        for key in self.accounting.end_cycle() {
            let last = self.dataplane.remove_flow(&key)?;
            self.accounting.removed(&key, last);
            self.metrics.flow_evictions.inc();
        }
        self.relabel_next = self.attributor.end_cycle(self.accounting.take_usage());
        self.destinations.end_cycle();
        self.pricer.start_cycle(SystemTime::now());
        {
            let (attributor, pricer) = (&self.attributor, &mut self.pricer);
            self.accounting.price(|key, bytes| pricer.cost(&attributor.price_query(key), bytes));
        }
        let overflow = self.dataplane.read_overflow()?;
        self.snapshot.store(Snapshot {
            series: self
                .accounting
                .series()
                .map(|(key, totals, cost)| (self.attributor.labels(key), *totals, *cost))
                .collect(),
            prices: PriceRows::of(&self.pricer),
            series_count: self.accounting.series_count() as u64,
            distinct_destinations: self
                .destinations
                .distinct()
                .map(|(w, n)| (self.attributor.workload_name(w), n))
                .collect(),
            new_destinations: self
                .destinations
                .new_total()
                .map(|(w, n)| (self.attributor.workload_name(w), n))
                .collect(),
            remembered_destinations: self.destinations.remembered(),
            folded_flows: self.accounting.folded_flows(),
            overflow,
            map_entries: entries,
        });
        Ok(())
    }
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
