//! Optional MaxMind databases (`--geoip-asn`, `--geoip-country`, .mmdb: GeoLite2/GeoIP2 ASN,
//! Country or City): the AS organisation and country of external peers, read with the
//! `maxminddb` crate (<https://maxmind.github.io/MaxMind-DB/>).

use std::{net::IpAddr, path::Path};

use maxminddb::{Reader, geoip2};

use crate::error::ConfigError;

/// What the databases say about one address; `None` where a database is not given or has no
/// record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// The AS's organisation (`Google LLC`).
    pub as_organization: Option<String>,
    /// ISO 3166-1 alpha-2 country code: where MaxMind places the address, else where its
    /// block is registered.
    pub country: Option<String>,
}

/// The opened databases.
#[derive(Default)]
pub struct GeoIp {
    asn: Option<Reader<Vec<u8>>>,
    country: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("asn", &self.asn.is_some())
            .field("country", &self.country.is_some())
            .finish()
    }
}

impl GeoIp {
    /// Opens the databases given.
    ///
    /// # Errors
    /// [`ConfigError::Database`] naming the flag and file: unreadable, not a MaxMind DB
    /// (corrupt or truncated), or the wrong kind of database for the flag.
    pub fn open(asn: Option<&Path>, country: Option<&Path>) -> Result<Self, ConfigError> {
        Ok(Self {
            asn: asn.map(|p| open(p, "--geoip-asn", &["ASN", "ISP"])).transpose()?,
            country: country
                .map(|p| open(p, "--geoip-country", &["Country", "City", "Enterprise"]))
                .transpose()?,
        })
    }

    /// Whether any database is open.
    pub fn is_enabled(&self) -> bool {
        self.asn.is_some() || self.country.is_some()
    }

    /// Looks `addr` up in each database. A record that does not decode counts as absent.
    pub fn lookup(&self, addr: IpAddr) -> GeoInfo {
        let mut info = GeoInfo::default();
        if let Some(r) = &self.asn
            && let Ok(Some(rec)) = r.lookup(addr).and_then(|l| l.decode::<geoip2::Asn>())
        {
            info.asn = rec.autonomous_system_number;
            info.as_organization = rec.autonomous_system_organization.map(str::to_owned);
        }
        if let Some(r) = &self.country
            && let Ok(Some(rec)) = r.lookup(addr).and_then(|l| l.decode::<geoip2::Country>())
        {
            info.country =
                rec.country.iso_code.or(rec.registered_country.iso_code).map(str::to_owned);
        }
        info
    }
}

fn open(path: &Path, flag: &'static str, kinds: &[&str]) -> Result<Reader<Vec<u8>>, ConfigError> {
    let problem = |message: String| ConfigError::Database { flag, path: path.to_owned(), message };
    let reader = Reader::open_readfile(path).map_err(|e| problem(e.to_string()))?;
    let kind = reader.metadata().database_type.clone();
    if !kinds.iter().any(|k| kind.contains(k)) {
        return Err(problem(format!(
            "is a {kind:?} database; {flag} needs one of type {}",
            kinds.join(", ")
        )));
    }
    Ok(reader)
}
