//! Where the range files come from: files named in the configuration, or the providers'
//! URLs fetched every `refresh` with an on-disk cache so that a restart classifies at once,
//! even when the URL is unreachable. A missing, unreachable or corrupt source is a warning
//! and a self-metric, never a failure: the agent classifies with what it has.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};
use serde::Deserialize;
use tracing::{info, warn};

use super::{CloudTable, Provider, RangeEntry, formats};

/// Default time between two fetches of a URL source.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// Default directory of the on-disk cache of fetched files.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/egressor/cloud-ranges";
/// Time allowed for one fetch (connect, headers and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// `cloud_ranges` in the configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudRangesConfig {
    /// Time between two fetches of each URL source (`24h`).
    #[serde(default = "default_refresh", deserialize_with = "crate::config::duration")]
    pub refresh: Duration,
    /// Directory for the cached copies of URL sources; `null` disables the cache.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: Option<PathBuf>,
    /// The sources; several per provider are merged.
    #[serde(default = "default_sources")]
    pub sources: Vec<SourceConfig>,
}

/// One range file: exactly one of `file` and `url`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Whose format the file is in.
    pub provider: Provider,
    /// A local file, read at start.
    pub file: Option<PathBuf>,
    /// An `http://` or `https://` URL, fetched at start and every `refresh`.
    pub url: Option<String>,
}

fn default_refresh() -> Duration {
    DEFAULT_REFRESH
}

fn default_cache_dir() -> Option<PathBuf> {
    Some(PathBuf::from(DEFAULT_CACHE_DIR))
}

/// The providers' published URLs (AWS and GCP; Azure has no stable URL).
fn default_sources() -> Vec<SourceConfig> {
    Provider::ALL
        .into_iter()
        .filter_map(|p| {
            Some(SourceConfig { provider: p, file: None, url: Some(p.published_url()?.into()) })
        })
        .collect()
}

impl Default for CloudRangesConfig {
    fn default() -> Self {
        Self {
            refresh: DEFAULT_REFRESH,
            cache_dir: default_cache_dir(),
            sources: default_sources(),
        }
    }
}

impl SourceConfig {
    /// The file path or URL, as shown in logs and the `source` label.
    pub fn location(&self) -> String {
        match (&self.file, &self.url) {
            (Some(f), _) => f.display().to_string(),
            (None, Some(u)) => u.clone(),
            (None, None) => String::new(),
        }
    }
}

impl CloudRangesConfig {
    /// Problems for the config file's error list.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = format!("cloud_ranges.sources[{i}]");
            match (&s.file, &s.url) {
                (Some(_), Some(_)) | (None, None) => {
                    problems.push(format!("{at}: give exactly one of file and url"))
                }
                (None, Some(u)) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                    problems.push(format!("{at}.url: {u:?} is not an http(s) URL"))
                }
                _ => {}
            }
        }
        if self.refresh < Duration::from_secs(60) {
            problems.push("cloud_ranges.refresh: at least 1m (the providers publish daily)".into());
        }
        problems
    }

    /// The cache file of a URL source.
    fn cache_file(&self, url: &str) -> Option<PathBuf> {
        let name: String = url
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        Some(self.cache_dir.as_ref()?.join(format!("{name}.json")))
    }
}

/// Why one source could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file (or the cached copy) cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        /// The I/O error.
        source: std::io::Error,
    },
    /// The URL could not be fetched.
    #[error("fetching {url}")]
    Fetch {
        /// The URL.
        url: String,
        #[source]
        /// reqwest's error (connect, timeout, HTTP status).
        source: reqwest::Error,
    },
    /// The content is not a valid range file.
    #[error("{location}")]
    Format {
        /// File path or URL.
        location: String,
        #[source]
        /// What is wrong, and where.
        source: formats::FormatError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    provider: &'static str,
    source: String,
}

/// Self-metrics of the range sources (see docs/metrics.md).
#[derive(Debug, Clone, Default)]
pub struct SourceMetrics {
    up: Family<SourceLabels, Gauge>,
    prefixes: Family<SourceLabels, Gauge>,
    last_success: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    errors: Family<SourceLabels, Counter>,
}

impl SourceMetrics {
    /// Registers the families under `egressor_cloud_ranges_*`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cloud_ranges_up",
            "1 if the last load of this cloud range source worked, 0 if it failed (see the log)",
            self.up.clone(),
        );
        registry.register(
            "cloud_ranges_prefixes",
            "Prefixes loaded from this cloud range source",
            self.prefixes.clone(),
        );
        registry.register_with_unit(
            "cloud_ranges_last_success_timestamp",
            "Unix time of the last successful load of this cloud range source",
            Unit::Seconds,
            self.last_success.clone(),
        );
        registry.register(
            "cloud_ranges_load_errors",
            "Failed loads of this cloud range source",
            self.errors.clone(),
        );
    }

    fn record(&self, source: &SourceConfig, result: Result<usize, &SourceError>) {
        let labels = SourceLabels { provider: source.provider.as_str(), source: source.location() };
        match result {
            Ok(n) => {
                self.up.get_or_create(&labels).set(1);
                self.prefixes.get_or_create(&labels).set(n as i64);
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                self.last_success.get_or_create(&labels).set(now.as_secs_f64());
            }
            Err(_) => {
                self.up.get_or_create(&labels).set(0);
                self.errors.get_or_create(&labels).inc();
            }
        }
    }
}

/// The current table, swapped in whole when a source changes. Readers compare
/// [`SharedCloudTable::version`] once per cycle and re-classify when it moved.
#[derive(Debug, Default)]
pub struct SharedCloudTable {
    table: Mutex<Arc<CloudTable>>,
    version: AtomicU64,
}

impl SharedCloudTable {
    /// The table and its version.
    pub fn current(&self) -> (u64, Arc<CloudTable>) {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (self.version.load(Ordering::Acquire), table)
    }

    /// The version; it changes with every swap.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Publishes a new table.
    pub fn store(&self, table: CloudTable) {
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

/// Loads and refreshes the configured sources into a [`SharedCloudTable`].
pub struct CloudRanges {
    config: CloudRangesConfig,
    entries: Vec<Option<Vec<RangeEntry>>>,
    shared: Arc<SharedCloudTable>,
    metrics: SourceMetrics,
    client: Option<reqwest::Client>,
}

impl CloudRanges {
    /// Loads every file source and every URL source's cached copy, synchronously, and
    /// publishes the table (so the first read cycle already classifies). Failures are logged
    /// and counted.
    pub fn start(config: CloudRangesConfig, metrics: SourceMetrics) -> Self {
        let mut ranges = Self {
            entries: vec![None; config.sources.len()],
            config,
            shared: Arc::default(),
            metrics,
            client: None,
        };
        for i in 0..ranges.config.sources.len() {
            let source = &ranges.config.sources[i];
            let loaded = match (&source.file, &source.url) {
                (Some(path), _) => Some(read(source.provider, path, &source.location())),
                (None, Some(url)) => ranges
                    .config
                    .cache_file(url)
                    .filter(|p| p.exists())
                    .map(|p| read(source.provider, &p, &p.display().to_string())),
                _ => None,
            };
            if let Some(result) = loaded {
                ranges.accept(i, result, "loaded");
            }
        }
        ranges.publish();
        ranges
    }

    /// The table readers use.
    pub fn shared(&self) -> Arc<SharedCloudTable> {
        self.shared.clone()
    }

    /// Whether any source is a URL (and [`CloudRanges::refresh_forever`] has work to do).
    pub fn has_urls(&self) -> bool {
        self.config.sources.iter().any(|s| s.url.is_some())
    }

    /// For one-shot commands: fetches the URL sources once when neither a file nor a cache
    /// gave any range (failures are warnings, as in [`CloudRanges::fetch_all`]).
    pub async fn fetch_if_empty(&mut self) {
        if self.shared().current().1.is_empty() && self.has_urls() {
            self.fetch_all().await;
        }
    }

    /// Fetches every URL source now, then every `refresh`, forever; publishes a new table
    /// after each round that changed something.
    pub async fn refresh_forever(mut self) {
        loop {
            self.fetch_all().await;
            tokio::time::sleep(self.config.refresh).await;
        }
    }

    /// Fetches every URL source once and publishes the result.
    pub async fn fetch_all(&mut self) {
        let mut changed = false;
        for i in 0..self.config.sources.len() {
            let Some(url) = self.config.sources[i].url.clone() else { continue };
            let provider = self.config.sources[i].provider;
            let result = self.fetch(provider, &url).await;
            changed |= self.accept(i, result, "fetched");
        }
        if changed {
            let entries = std::mem::take(&mut self.entries);
            let config = self.config.clone();
            let shared = self.shared.clone();
            // Building walks ~100k prefixes: keep it off the async workers.
            self.entries = tokio::task::spawn_blocking(move || {
                publish_table(&config, &entries, &shared);
                entries
            })
            .await
            .unwrap_or_else(|_| vec![None; self.config.sources.len()]);
        }
    }

    async fn fetch(
        &mut self,
        provider: Provider,
        url: &str,
    ) -> Result<(Vec<u8>, Vec<RangeEntry>), SourceError> {
        let fetch_error = |source| SourceError::Fetch { url: url.to_owned(), source };
        let client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let c = crate::http_client::client(FETCH_TIMEOUT).map_err(fetch_error)?;
                self.client = Some(c.clone());
                c
            }
        };
        let body = client
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(fetch_error)?
            .bytes()
            .await
            .map_err(fetch_error)?;
        let entries = formats::parse(provider, &body)
            .map_err(|source| SourceError::Format { location: url.to_owned(), source })?;
        Ok((body.to_vec(), entries))
    }

    /// Records one source's outcome; returns whether its entries changed.
    fn accept(
        &mut self,
        i: usize,
        result: Result<(Vec<u8>, Vec<RangeEntry>), SourceError>,
        verb: &str,
    ) -> bool {
        let source = self.config.sources[i].clone();
        match result {
            Ok((body, entries)) => {
                self.metrics.record(&source, Ok(entries.len()));
                info!(provider = %source.provider, source = %source.location(), prefixes = entries.len(), "cloud ranges {verb}");
                if let (Some(url), "fetched") = (&source.url, verb) {
                    self.write_cache(url, &body);
                }
                let changed = self.entries[i].as_ref() != Some(&entries);
                self.entries[i] = Some(entries);
                changed
            }
            Err(e) => {
                self.metrics.record(&source, Err(&e));
                warn!(provider = %source.provider, error = %crate::reader::error_chain(&e),
                      "cloud range source unavailable; classifying with the ranges already loaded");
                false
            }
        }
    }

    fn write_cache(&self, url: &str, body: &[u8]) {
        let Some(path) = self.config.cache_file(url) else { return };
        let tmp = path.with_extension("json.tmp");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, body))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            warn!(path = %path.display(), error = %e, "cannot cache cloud ranges; a restart fetches again");
        }
    }

    fn publish(&self) {
        publish_table(&self.config, &self.entries, &self.shared);
    }
}

fn publish_table(
    config: &CloudRangesConfig,
    entries: &[Option<Vec<RangeEntry>>],
    shared: &SharedCloudTable,
) {
    let sets =
        config.sources.iter().zip(entries).filter_map(|(s, e)| Some((s.provider, e.as_deref()?)));
    shared.store(CloudTable::build(sets));
}

fn read(
    provider: Provider,
    path: &Path,
    location: &str,
) -> Result<(Vec<u8>, Vec<RangeEntry>), SourceError> {
    let body = std::fs::read(path)
        .map_err(|source| SourceError::Read { path: path.to_owned(), source })?;
    let entries = formats::parse(provider, &body)
        .map_err(|source| SourceError::Format { location: location.to_owned(), source })?;
    Ok((Vec::new(), entries))
}
