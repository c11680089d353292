//! `s3://BUCKET/PREFIX` inputs, through the `object_store` crate: the objects under the
//! prefix, filtered by the date in AWS's key layout
//! (`AWSLogs/ACCOUNT/vpcflowlogs/REGION/YYYY/MM/DD/…`), each downloaded whole by the worker
//! that reads it (AWS rolls log files at 75 MB, so memory stays at one object per thread).
//!
//! Credentials, region and endpoint come from AWS's default chain as the AWS tools read it
//! (environment, then the profile in `~/.aws/credentials` and `~/.aws/config`, web identity,
//! ECS, the EC2 instance profile: see [`super::aws_chain`]); `AWS_ENDPOINT_URL_S3`,
//! `AWS_ENDPOINT_URL` or the profile's `endpoint_url` (S3's own in its `services` section
//! first) for S3-compatible stores, `AWS_ALLOW_HTTP=true` for one served over plain HTTP.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, aws::AmazonS3Builder, path::Path};

/// A bucket and the runtime its requests run on.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    runtime: Arc<tokio::runtime::Runtime>,
    /// `s3://BUCKET`.
    pub url: String,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

/// Dates (`YYYY-MM-DD`, inclusive) that select objects by the date in their key; keys
/// without one are always read.
#[derive(Debug, Clone, Default)]
pub struct Dates {
    /// First day read.
    pub since: Option<String>,
    /// Last day read.
    pub until: Option<String>,
}

impl Dates {
    /// Whether a key (or path) is inside the dates.
    pub fn admit(&self, key: &str) -> bool {
        let Some(day) = date_in(key) else { return true };
        self.since.as_deref().is_none_or(|s| day.as_str() >= s)
            && self.until.as_deref().is_none_or(|u| day.as_str() <= u)
    }
}

/// A `--since`/`--until` value: `YYYY-MM-DD`.
///
/// # Errors
/// Anything else.
pub fn parse_date(v: &str) -> Result<String, String> {
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
    {
        Ok(v.to_owned())
    } else {
        Err(format!("{v:?} is not a date YYYY-MM-DD"))
    }
}

/// The `YYYY-MM-DD` of the first `…/YYYY/MM/DD/…` in `key`.
fn date_in(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('/').collect();
    parts.windows(3).find_map(|w| {
        let ok = |s: &str, n| s.len() == n && s.bytes().all(|c| c.is_ascii_digit());
        (ok(w[0], 4) && ok(w[1], 2) && ok(w[2], 2)).then(|| format!("{}-{}-{}", w[0], w[1], w[2]))
    })
}

/// Whether `arg` names S3.
pub fn is_s3(arg: &str) -> bool {
    arg.starts_with("s3://")
}

/// An object to read: its key and size in bytes.
pub type Object = (Path, u64);

/// The bucket of `url` (`s3://BUCKET/PREFIX`) and its objects under the prefix inside
/// `dates`, in key order.
///
/// # Errors
/// A malformed URL, missing credentials or region, or a failed listing, naming the URL.
pub fn list(url: &str, dates: &Dates) -> Result<(Arc<Bucket>, Vec<Object>), String> {
    let rest = url.strip_prefix("s3://").unwrap_or(url);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url}: no bucket (s3://BUCKET/PREFIX)"));
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("{url}: {e}"))?;
    let chain = runtime.block_on(super::aws_chain::load());
    // The environment's options (`AWS_ALLOW_HTTP`, …), then what the chain found.
    let mut builder =
        AmazonS3Builder::from_env().with_bucket_name(bucket).with_credentials(chain.credentials);
    if let Some(region) = chain.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = chain.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let store = builder.build().map_err(|e| format!("{url}: {e}"))?;
    let prefix = (!prefix.is_empty()).then(|| Path::from(prefix.trim_end_matches('/')));
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    let listed = runtime.block_on(store.list(prefix.as_ref()).try_collect::<Vec<_>>());
    let mut objects: Vec<Object> = listed
        .map_err(|e| format!("{url}: listing: {e}"))?
        .into_iter()
        .filter(|m| dates.admit(m.location.as_ref()))
        .map(|m| (m.location, m.size))
        .collect();
    objects.sort();
    let bucket = Bucket { store, runtime: Arc::new(runtime), url: format!("s3://{bucket}") };
    Ok((Arc::new(bucket), objects))
}

impl Bucket {
    /// The whole object at `key`.
    ///
    /// # Errors
    /// A failed download, naming the object.
    pub fn fetch(&self, key: &Path) -> Result<impl std::io::Read + use<>, String> {
        let (store, at) = (self.store.clone(), key.clone());
        self.runtime
            .block_on(async move { store.get(&at).await?.bytes().await })
            .map(std::io::Cursor::new)
            .map_err(|e| format!("{}/{key}: {e}", self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_select_by_the_key_layout() {
        let key = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2025/12/01/x_20251201T0000Z_1.log.gz";
        assert_eq!(date_in(key).as_deref(), Some("2025-12-01"));
        assert_eq!(date_in("logs/a.log"), None);
        let d = Dates { since: Some("2025-12-01".into()), until: Some("2025-12-02".into()) };
        assert!(d.admit(key) && d.admit("no/date.log"));
        assert!(!d.admit("AWSLogs/1/vpcflowlogs/us-east-1/2025/11/30/a.log"));
        assert!(!d.admit("AWSLogs/1/vpcflowlogs/us-east-1/2025/12/03/a.log"));
        assert_eq!(parse_date("2025-12-01"), Ok("2025-12-01".into()));
        assert!(parse_date("2025-12-1").is_err() && parse_date("20251201").is_err());
    }
}
