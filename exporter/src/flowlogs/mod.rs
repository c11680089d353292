//! `egressor flowlogs`: the agent's classifier and price sheets over AWS VPC Flow Logs, for
//! teams that cannot run eBPF (Fargate, managed nodes) or want a first look.
//!
//! Reads plain or gzip files (as AWS delivers them to S3), directories and stdin, in
//! parallel ([`input`]); reads each record by its file's header ([`format`], [`record`]);
//! decides ends, direction, class, path, service and region with the agent's own code
//! ([`analysis`]); prices and reports ([`report`]), and with `--openmetrics` writes the
//! agent's flow counters over time ([`openmetrics`]). Bad lines are counted and the first few
//! named with file and line; an input that cannot be read to its end is an error naming it,
//! and the others are still analysed.

pub mod analysis;
pub mod aws_chain;
pub mod format;
pub mod input;
pub mod openmetrics;
pub mod record;
pub mod report;
pub mod s3;

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use crate::{
    agent::load_setup,
    classify::Classifier,
    cli::FlowLogsArgs,
    cloud::sources::{CloudRanges, SourceMetrics},
    error::ConfigError,
    geoip::GeoIp,
    paths::EgressPaths,
    prices::Pricer,
    verdict::{Judge, NetworkInfo},
};
use analysis::{Analysis, Analyzer, Options};
use format::Layout;
use input::{Input, UnitResult};

/// Whether every input was read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All inputs read.
    Complete,
    /// Some input failed (named in the report); the rest was analysed.
    InputErrors,
}

/// Analyses the inputs of `args` and writes the summary (or, with `--json`, the report) to
/// `out`.
///
/// # Errors
/// A bad configuration, price sheet, `--format` or input path (nothing analysed), or a
/// failed write.
pub fn run(args: &FlowLogsArgs, out: &mut impl Write) -> Result<Outcome, ConfigError> {
    let flag = |flag, e: &dyn std::fmt::Display| ConfigError::Flag { flag, problem: e.to_string() };
    let format = args
        .format
        .as_deref()
        .map(Layout::from_format)
        .transpose()
        .map_err(|e| flag("--format", &e))?;
    let (file, sheet) = load_setup(&args.setup, None)?;
    if file.networks.len() > analysis::MAX_NETWORKS {
        let problem = format!(
            "networks: {} entries, and flowlogs tells at most {} apart",
            file.networks.len(),
            analysis::MAX_NETWORKS
        );
        return Err(flag("--config.file", &problem));
    }
    let geoip = GeoIp::open(args.setup.geoip_asn.as_deref(), args.setup.geoip_country.as_deref())?;
    let mut ranges = CloudRanges::start(file.cloud_ranges.clone(), SourceMetrics::default());
    if ranges.has_urls() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| flag("flowlogs", &e))?;
        rt.block_on(ranges.fetch_if_empty());
    }
    let started = Instant::now();
    let date = |name, v: &Option<String>| {
        v.as_deref().map(s3::parse_date).transpose().map_err(|e| flag(name, &e))
    };
    let dates =
        s3::Dates { since: date("--since", &args.since)?, until: date("--until", &args.until)? };
    let inputs =
        input::collect(&args.inputs, format.as_ref(), &dates).map_err(|e| flag("INPUT", &e))?;
    let units = input::units(&inputs, args.chunk_bytes);
    let options = Arc::new(Options {
        nat_gateways: args.nat_gateways.clone(),
        timeline: args.openmetrics.is_some(),
        max_sources: args.max_sources,
        max_destinations: args.max_destinations,
    });
    let config = Arc::new(file);
    let gateway_services = sheet.gateway_endpoints.services.clone();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let stored: u64 = inputs.iter().map(|i| i.size).sum();
    let workers = Workers {
        inputs: &inputs,
        units: &units,
        format: format.as_ref(),
        config: &config,
        cloud: &ranges,
        options: &options,
        gateway_services: &gateway_services,
    };
    let (analysis, results) = workers.run(threads, stored, args.chunk_bytes);
    let mut summary = summarize(&inputs, &units, results);
    summary.warnings.extend(analysis.unlisted_nat_gateway_warnings());
    summary.stored_bytes = stored;
    summary.seconds = started.elapsed().as_secs_f64();
    let outcome = if summary.errors.is_empty() { Outcome::Complete } else { Outcome::InputErrors };

    let classifier = Classifier::new(&config, ranges.shared());
    let paths = EgressPaths::new(&config);
    let sheet = Arc::new(sheet);
    let openmetrics = match &args.openmetrics {
        None => None,
        Some(path) => Some(
            write_openmetrics(path, &analysis, sheet.clone(), &config)
                .map_err(|e| flag("--openmetrics", &format!("{}: {e}", path.display())))?,
        ),
    };
    let mut pricer = Pricer::new(sheet, &config.pricing);
    pricer.start_cycle(SystemTime::now());
    let costs = report::price(&analysis, &mut pricer);
    let networks = |i: usize| NetworkInfo::from(&config.networks[i]);
    let judge = Judge {
        classifier: &classifier,
        paths: &paths,
        geoip: &geoip,
        dns: None,
        pricer: &pricer,
        networks: &networks,
        kube: &|_| None,
    };
    let mut report = report::build(&analysis, &costs, &judge, summary, args.top);
    report.openmetrics = openmetrics;
    let text = if args.json {
        serde_json::to_string_pretty(&report).expect("the report serializes") + "\n"
    } else {
        report::render(&report)
    };
    out.write_all(text.as_bytes()).map_err(|e| flag("stdout", &e))?;
    Ok(outcome)
}

/// What the worker threads share.
struct Workers<'a> {
    inputs: &'a [Input],
    units: &'a [input::Unit],
    format: Option<&'a Layout>,
    config: &'a Arc<crate::config::FileConfig>,
    cloud: &'a CloudRanges,
    options: &'a Arc<Options>,
    gateway_services: &'a [String],
}

impl Workers<'_> {
    /// Reads every unit on `threads` threads (each taking the next unit when done with one),
    /// with a progress bar over the `stored` bytes on stderr; returns the merged analysis and
    /// each unit's result by unit index.
    ///
    /// A worker reading a sequential input (gzip, stdin, S3) cuts its lines into blocks of
    /// at most `block_bytes` (and [`input::BLOCK_BYTES`]) that idle workers parse; a worker
    /// takes a waiting block before a new unit. At most one block per thread waits (memory
    /// stays bounded): when none can wait, the reader parses the block itself.
    fn run(
        &self,
        threads: usize,
        stored: u64,
        block_bytes: u64,
    ) -> (Analysis, Vec<(usize, UnitResult)>) {
        let progress = indicatif::ProgressBar::with_draw_target(
            Some(stored),
            indicatif::ProgressDrawTarget::stderr(),
        );
        progress.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        let threads = threads.max(1);
        let next = AtomicUsize::new(0);
        // Workers inside a unit: while any is, a worker without a unit waits for blocks.
        let busy = AtomicUsize::new(0);
        let queue = BlockQueue::new(threads);
        let waiting = &queue.waiting;
        let block_size = usize::try_from(block_bytes).unwrap_or(usize::MAX).min(input::BLOCK_BYTES);
        let results: Mutex<Vec<(usize, UnitResult)>> = Mutex::new(Vec::new());
        let parsed_blocks: Mutex<Vec<(usize, UnitResult)>> = Mutex::new(Vec::new());
        let analyses: Mutex<Vec<Analysis>> = Mutex::new(Vec::new());
        let tick = |n: u64| progress.inc(n);
        std::thread::scope(|scope| {
            // Every thread has work when an input is sequential (its blocks); else a unit each.
            let sequential = self.inputs.iter().any(|i| i.gzip || i.path.is_none());
            let work = if sequential { threads } else { self.units.len().max(1) };
            for _ in 0..threads.min(work) {
                scope.spawn(|| {
                    let mut analyzer = Analyzer::new(
                        self.config.clone(),
                        self.cloud.shared(),
                        self.options.clone(),
                        self.gateway_services.to_vec(),
                    );
                    let parse = |block: input::Block, analyzer: &mut Analyzer| {
                        let r =
                            input::parse_block(&block, &mut |records| analyzer.add_all(records));
                        parsed_blocks.lock().unwrap().push((block.unit, r));
                    };
                    // Whether this worker found no unit left: it parses blocks only.
                    let mut consumer = false;
                    loop {
                        if let Ok(block) = waiting.try_recv() {
                            parse(block, &mut analyzer);
                            continue;
                        }
                        // Counted busy before taking a unit, so that no worker sees neither
                        // a unit left nor a busy one while this one starts the last unit.
                        busy.fetch_add(1, Ordering::SeqCst);
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if let Some(&unit) = self.units.get(i) {
                            let blocks = (threads > 1).then_some((i, block_size, &queue as _));
                            let r = input::read_unit(
                                &self.inputs[unit.input],
                                unit,
                                self.format,
                                &tick,
                                blocks,
                                &mut |records| analyzer.add_all(records),
                            );
                            results.lock().unwrap().push((i, r));
                            busy.fetch_sub(1, Ordering::SeqCst);
                            continue;
                        }
                        busy.fetch_sub(1, Ordering::SeqCst);
                        // No unit left: done once no reader can cut another block.
                        if busy.load(Ordering::SeqCst) == 0 && waiting.is_empty() {
                            break;
                        }
                        if !consumer {
                            consumer = true;
                            queue.consumers.fetch_add(1, Ordering::SeqCst);
                        }
                        if let Ok(block) = waiting.recv_timeout(Duration::from_millis(5)) {
                            parse(block, &mut analyzer);
                        }
                    }
                    analyses.lock().unwrap().push(analyzer.analysis);
                });
            }
        });
        progress.finish_and_clear();
        let mut analysis = Analysis::default();
        for a in analyses.into_inner().unwrap() {
            analysis.merge(a);
        }
        // A unit's blocks parsed elsewhere join its own result (its lines and bytes).
        let mut units = results.into_inner().unwrap();
        units.sort_by_key(|(i, _)| *i);
        for (unit, r) in parsed_blocks.into_inner().unwrap() {
            let at = units.binary_search_by_key(&unit, |(i, _)| *i).expect("its reader's result");
            units[at].1.absorb(r);
        }
        (analysis, units)
    }
}

/// The blocks of sequential inputs waiting for a worker (at most one per thread), and the
/// number of workers that found no unit left (they parse blocks only).
struct BlockQueue {
    to_parse: crossbeam_channel::Sender<input::Block>,
    waiting: crossbeam_channel::Receiver<input::Block>,
    consumers: AtomicUsize,
}

impl BlockQueue {
    fn new(threads: usize) -> Self {
        let (to_parse, waiting) = crossbeam_channel::bounded(threads);
        Self { to_parse, waiting, consumers: AtomicUsize::new(0) }
    }
}

impl input::BlockSink for BlockQueue {
    /// While every worker has a unit of its own, cutting blocks would only add copies.
    fn wanted(&self) -> bool {
        self.consumers.load(Ordering::Relaxed) > 0
    }

    fn send(&self, block: input::Block) -> Option<input::Block> {
        self.to_parse.try_send(block).err().map(crossbeam_channel::TrySendError::into_inner)
    }
}

/// Writes `--openmetrics` to `path`.
fn write_openmetrics(
    path: &std::path::Path,
    analysis: &Analysis,
    sheet: Arc<crate::prices::PriceSheet>,
    config: &crate::config::FileConfig,
) -> std::io::Result<report::OpenMetricsInfo> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let written = openmetrics::write(analysis, sheet, config, &mut file)?;
    file.flush()?;
    Ok(report::OpenMetricsInfo {
        file: path.display().to_string(),
        series: written.series,
        samples: written.samples,
        untimed: analysis.untimed,
    })
}

/// Sums the units' results per input; numbers bad lines within their files.
fn summarize(
    inputs: &[Input],
    units: &[input::Unit],
    results: Vec<(usize, UnitResult)>,
) -> report::InputSummary {
    let mut s = report::InputSummary { files: inputs.len(), ..Default::default() };
    // Lines in the chunks before each unit of the same input.
    let mut lines_before = vec![0u64; inputs.len()];
    for (i, r) in results {
        let unit = units[i];
        let name = &inputs[unit.input].name;
        s.records += r.records;
        s.nodata += r.nodata;
        s.skipdata += r.skipdata;
        s.bad_lines += r.bad;
        s.text_bytes += r.bytes;
        for (line, problem) in r.bad_examples {
            if s.bad_line_examples.len() < input::BAD_EXAMPLES {
                let line = lines_before[unit.input] + line;
                s.bad_line_examples.push(format!("{name}:{line}: {problem}"));
            }
        }
        lines_before[unit.input] += r.lines;
        if let Some(e) = r.error {
            s.errors.push(e);
        }
        if let Some(w) = r.warning.map(|w| format!("{name}: {w}"))
            && !s.warnings.contains(&w)
        {
            s.warnings.push(w);
        }
    }
    s
}
