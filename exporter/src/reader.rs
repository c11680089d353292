//! The read loop: every interval, read the kernel maps, account the deltas, evict idle
//! flows and publish a snapshot for scrapes. Runs on its own thread (map reads are
//! syscalls); when it stops, the dataplane it owns is dropped and the programs detach.

use std::{
    collections::HashMap,
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
    api::{FlowsQuery, FlowsReply, MAX_TOP, SortBy},
    attribution::{Attributor, host_addresses, remote_address},
    checkpoint::{Checkpoint, CheckpointFile},
    dataplane::{Dataplane, DataplaneError},
    destinations::Destinations,
    dns::DnsNames,
    labels::HookLabel,
    labels::LabelKey,
    metrics::{DnsSnapshot, PriceRows, SelfMetrics, SharedSnapshot, Snapshot},
    prices::Pricer,
    prices::cost_usd,
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
    /// Address → name from captured DNS responses (shared with the attributor).
    pub dns: DnsNames,
    /// Service addresses the kernel's service map could not take yet (retried each cycle).
    pub pending_services: Option<std::collections::HashSet<std::net::IpAddr>>,
    /// Where each cycle saves the accounting state (with pinned maps).
    pub checkpoint: Option<CheckpointFile>,
    /// Whether the next cycle takes the kernel's totals as already counted (reused pinned
    /// maps without a usable checkpoint).
    pub adopt_next: bool,
}

/// What the reader thread is asked between two cycles.
#[derive(Debug)]
pub enum Request {
    /// The top flows (`/api/v1/flows`).
    Flows(FlowsQuery, tokio::sync::oneshot::Sender<FlowsReply>),
    /// Verdicts on remote addresses as seen from a local one (`/api/v1/classify`).
    Classify {
        /// The remote addresses.
        addresses: Vec<std::net::IpAddr>,
        /// The local address that selects the subnet.
        from: Option<std::net::IpAddr>,
        /// Where the verdicts go, in the order asked.
        reply: tokio::sync::oneshot::Sender<Vec<crate::verdict::Verdict>>,
    },
    /// Stop: return and detach the programs.
    Stop,
}

impl Reader {
    /// Runs cycles every `interval` and answers requests in between, until [`Request::Stop`]
    /// (or every sender is dropped); then returns, detaching the programs.
    pub fn run(mut self, interval: Duration, requests: Receiver<Request>) {
        let mut next = Instant::now();
        let mut next_dns = Instant::now() + DNS_DRAIN_INTERVAL;
        loop {
            let now = Instant::now();
            if now >= next {
                if self.cycle_logged() {
                    self.ready.store(true, Ordering::Release);
                }
                next = Instant::now() + interval;
            } else if now >= next_dns {
                self.drain_dns();
            }
            if now >= next_dns {
                next_dns = now + DNS_DRAIN_INTERVAL;
            }
            let wake = next.min(next_dns);
            match requests.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(Request::Flows(query, reply)) => {
                    let _ = reply.send(self.top_flows(query, interval));
                }
                Ok(Request::Classify { addresses, from, reply }) => {
                    let verdicts = addresses
                        .into_iter()
                        .map(|a| self.attributor.verdict(a, from, &self.pricer))
                        .collect();
                    let _ = reply.send(verdicts);
                }
                Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        debug!("reader stopped; detaching programs");
    }

    /// The top `query.top` flows by `query.sort`, with full detail.
    pub fn top_flows(&self, query: FlowsQuery, interval: Duration) -> FlowsReply {
        let n = query.top.clamp(1, MAX_TOP);
        let mut price_of: HashMap<LabelKey, f64> = HashMap::new();
        let mut price = |l: &LabelKey| {
            *price_of
                .entry(*l)
                .or_insert_with(|| self.pricer.price_per_gib(&self.attributor.price_query(l)))
        };
        let mut rows: Vec<_> = self
            .accounting
            .flows()
            .map(|(key, total, delta, labels)| {
                let cost = cost_usd(total.bytes, price(labels));
                let rank = match query.sort {
                    SortBy::Bytes => total.bytes as f64,
                    SortBy::Rate => delta as f64,
                    SortBy::Cost => cost,
                };
                (rank, key, total, delta, labels, cost)
            })
            .collect();
        let tracked_flows = rows.len();
        let by_rank = |a: &(f64, _, _, _, _, _), b: &(f64, _, _, _, _, _)| b.0.total_cmp(&a.0);
        if rows.len() > n {
            rows.select_nth_unstable_by(n - 1, by_rank);
            rows.truncate(n);
        }
        rows.sort_by(by_rank);
        let flows = rows
            .into_iter()
            .map(|(_, key, total, delta, labels, cost)| {
                let mut d = self.attributor.describe(key, labels);
                d.bytes = total.bytes;
                d.packets = total.packets;
                d.bytes_per_second = delta as f64 / interval.as_secs_f64();
                d.cost_usd = cost;
                d.avoidable = self.pricer.is_avoidable(&self.attributor.price_query(labels));
                d
            })
            .collect();
        FlowsReply { sort: query.sort, tracked_flows, flows }
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
        // DNS answers first: a flow whose address was just looked up gets its name.
        self.drain_dns();
        self.sync_service_addresses();
        let mut relabel = self.attributor.next_cycle(host_addresses()) | self.relabel_next;
        match self.attributor.take_kube_changes() {
            None => relabel = true,
            Some(changed) if !changed.is_empty() => {
                let changed: std::collections::HashSet<_> = changed.into_iter().collect();
                self.accounting
                    .relabel_where(|k| remote_address(k).is_some_and(|a| changed.contains(&a)));
            }
            Some(_) => {}
        }
        self.accounting.begin_cycle(relabel);
        let mut entries = 0u64;
        let adopt = std::mem::take(&mut self.adopt_next);
        {
            let accounting = &mut self.accounting;
            let attributor = &mut self.attributor;
            let destinations = &mut self.destinations;
            let mut labels = |k: &egressor_common::FlowKey| attributor.label_key(k);
            let result = self.dataplane.read_flows(|key, counters| {
                entries += 1;
                if adopt {
                    accounting.adopt(key, counters, &mut labels);
                    return;
                }
                let active = accounting.observe(key, counters, &mut labels);
                if let Some(l) = active
                    && l.hook == HookLabel::Cgroup
                    && l.traffic_class.is_public()
                    && let Some(remote) = remote_address(&key)
                {
                    destinations.active(l.workload, remote);
                }
            });
            if result.is_err() {
                self.adopt_next |= adopt;
            }
            result?;
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
            dns: DnsSnapshot {
                responses: self.dataplane.dns_stats()?,
                parse_errors: self.dns.parse_errors(),
                learned: self.dns.learned(),
                names: self.dns.len(),
            },
            folded_flows: self.accounting.folded_flows(),
            series_over_cap: self.accounting.over_cap(),
            overflow,
            map_entries: entries,
        });
        self.save_checkpoint();
        Ok(())
    }

    /// Writes the checkpoint, if there is one; a failure is logged and counted, and the
    /// previous checkpoint stays.
    fn save_checkpoint(&mut self) {
        let Some(file) = &mut self.checkpoint else { return };
        let attributor = &self.attributor;
        let checkpoint = Checkpoint {
            format: crate::checkpoint::FORMAT,
            layout: egressor_common::PIN_LAYOUT_VERSION,
            boot_id: file.boot_id().to_owned(),
            flow_map_id: self.dataplane.flow_map_id(),
            saved: self.accounting.saved_view(|l| attributor.persisted(l)),
        };
        if let Err(e) = file.write(&checkpoint) {
            self.metrics.checkpoint_errors.inc();
            warn!(error = %error_chain(&e), "cannot write the checkpoint; a restart would resume from the previous one");
        }
    }
}

/// How often DNS responses are taken from the kernel's ring buffer between read cycles: at
/// the default rate limit (1,000 responses per second and CPU) a tenth of a second fills a
/// sixth of the 1 MiB ring on a 2-CPU node.
const DNS_DRAIN_INTERVAL: Duration = Duration::from_millis(100);

impl Reader {
    /// Learns the DNS responses waiting in the kernel's ring buffer.
    fn drain_dns(&mut self) {
        let dns = &self.dns;
        self.dataplane.drain_dns(|message, tcp| dns.learn(message, tcp));
        dns.purge_due();
    }

    /// Makes the kernel's service map hold the Kubernetes Service addresses, when they
    /// changed; a refused update is retried next cycle.
    fn sync_service_addresses(&mut self) {
        let Some(addresses) =
            self.attributor.take_service_addresses().or(self.pending_services.take())
        else {
            return;
        };
        match self.dataplane.set_service_addresses(&addresses) {
            Ok(held) if held < addresses.len() => warn!(
                held,
                services = addresses.len(),
                "the kernel's service map is full: flows to the Service addresses left out are attributed to their Service, class unknown"
            ),
            Ok(held) => debug!(held, "Service addresses in the kernel's service map"),
            Err(e) => {
                warn!(error = %error_chain(&e), "cannot update the kernel's service map; retrying next cycle");
                self.pending_services = Some(addresses);
            }
        }
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
