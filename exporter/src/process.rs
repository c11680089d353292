//! The standard process metrics of the agent (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, …), named and defined as Prometheus' client libraries
//! define them (<https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics>),
//! without the `egressor_` prefix, so the usual process dashboards and alerts work. Read from
//! `/proc/self` (procfs) at scrape time.

use std::fmt;

use procfs::{
    WithCurrentSystemInfo,
    process::{LimitValue, Process},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};

/// Collects the agent's CPU time (seconds), resident and virtual memory (bytes), open and
/// maximum file descriptors, threads and start time (Unix seconds). A value that cannot be
/// read (no `/proc`) is left out of that scrape; the others are still served.
#[derive(Debug, Default)]
pub struct ProcessCollector;

fn one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Ok(me) = Process::myself() else { return Ok(()) };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            one(
                &mut encoder,
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                &ConstCounter::new((stat.utime + stat.stime) as f64 / ticks),
            )?;
            one(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(&Unit::Bytes),
                &ConstGauge::new(stat.rss_bytes().get() as i64),
            )?;
            one(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(&Unit::Bytes),
                &ConstGauge::new(stat.vsize as i64),
            )?;
            one(
                &mut encoder,
                "process_threads",
                "Number of OS threads in the process.",
                None,
                &ConstGauge::new(stat.num_threads),
            )?;
            if let Ok(boot) = procfs::boot_time_secs() {
                let start = boot as f64 + stat.starttime as f64 / ticks;
                one(
                    &mut encoder,
                    "process_start_time",
                    "Start time of the process since unix epoch in seconds.",
                    Some(&Unit::Seconds),
                    &ConstGauge::new(start),
                )?;
            }
        }
        if let Ok(fds) = me.fd_count() {
            one(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                &ConstGauge::new(fds as i64),
            )?;
        }
        if let Ok(limits) = me.limits()
            && let LimitValue::Value(max) = limits.max_open_files.soft_limit
        {
            one(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                &ConstGauge::new(max as i64),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;

    /// Value of `name` in the text exposition `text`.
    fn value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing in {text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn reports_this_process_as_proc_and_getrusage_see_it() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        // Burn some CPU so the counter is not 0.
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();

        // Oracles: getrusage for CPU time; the kernel's own status file for RSS and threads.
        let usage =
            nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
        let cpu = usage.user_time().tv_sec() as f64
            + usage.user_time().tv_usec() as f64 / 1e6
            + usage.system_time().tv_sec() as f64
            + usage.system_time().tv_usec() as f64 / 1e6;
        let reported = value(&text, "process_cpu_seconds_total");
        assert!(reported > 0.0 && (reported - cpu).abs() < 0.05, "{reported} vs {cpu}");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |k: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let rss = value(&text, "process_resident_memory_bytes");
        let rss_kib = field("VmRSS:");
        assert!((rss / 1024.0 - rss_kib).abs() / rss_kib < 0.2, "{rss} vs {rss_kib} KiB");
        assert!(value(&text, "process_threads") >= 1.0);
        let fds = std::fs::read_dir("/proc/self/fd").unwrap().count() as f64;
        assert!((value(&text, "process_open_fds") - fds).abs() <= 2.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value(&text, "process_start_time_seconds");
        assert!(start < now && now - start < 3_600.0, "{start}");
        assert!(text.contains("# TYPE process_cpu_seconds counter"), "{text}");
    }
}
