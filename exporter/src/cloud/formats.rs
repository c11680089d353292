//! The providers' published range files, parsed into [`RangeEntry`]s.
//!
//! - AWS `ip-ranges.json` (<https://docs.aws.amazon.com/vpc/latest/userguide/aws-ip-ranges.html>):
//!   `prefixes[].{ip_prefix, region, service}` and `ipv6_prefixes[].{ipv6_prefix, …}`.
//! - GCP `cloud.json` (<https://cloud.google.com/compute/docs/faq#find_ip_range>):
//!   `prefixes[].{ipv4Prefix | ipv6Prefix, service, scope}`; `scope` is the region.
//! - Azure Service Tags (<https://learn.microsoft.com/azure/virtual-network/service-tags-overview>):
//!   `values[].{name, properties.{region, addressPrefixes}}`; the service is the tag's name
//!   before the dot (`Storage` for `Storage.AustraliaEast`), the region `properties.region`
//!   (empty for global tags).

use ipnet::IpNet;
use serde::Deserialize;

use super::Provider;

/// One published prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeEntry {
    /// The prefix, host bits cleared.
    pub prefix: IpNet,
    /// The service as the provider spells it (`S3`, `AMAZON`, `Storage`, `Google Cloud`).
    pub service: String,
    /// The provider's region name (`us-east-1`, `europe-west1`, `australiaeast`), `GLOBAL`
    /// for AWS's global services, empty when the provider gives none.
    pub region: String,
}

/// A range file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not the JSON shape the provider publishes.
    #[error("not a {provider} range file: {source}")]
    Json {
        /// The format expected.
        provider: Provider,
        #[source]
        /// serde_json's message, with line and column.
        source: serde_json::Error,
    },
    /// A prefix that does not parse.
    #[error("{at}: {value:?} is not an IP prefix")]
    Prefix {
        /// Where in the file (`prefixes[12].ip_prefix`).
        at: String,
        /// The text found.
        value: String,
    },
    /// The file parsed but lists no prefix at all (an error page saved as JSON, say).
    #[error("no prefixes in the {provider} range file")]
    Empty {
        /// The format expected.
        provider: Provider,
    },
}

#[derive(Deserialize)]
struct AwsFile {
    prefixes: Vec<AwsPrefix>,
    #[serde(default)]
    ipv6_prefixes: Vec<AwsPrefix>,
}

#[derive(Deserialize)]
struct AwsPrefix {
    #[serde(alias = "ipv6_prefix")]
    ip_prefix: String,
    region: String,
    service: String,
}

#[derive(Deserialize)]
struct GcpFile {
    prefixes: Vec<GcpPrefix>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcpPrefix {
    #[serde(alias = "ipv6Prefix")]
    ipv4_prefix: String,
    service: String,
    scope: String,
}

#[derive(Deserialize)]
struct AzureFile {
    values: Vec<AzureTag>,
}

#[derive(Deserialize)]
struct AzureTag {
    name: String,
    properties: AzureProperties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AzureProperties {
    #[serde(default)]
    region: String,
    address_prefixes: Vec<String>,
}

/// Parses a provider's file.
///
/// # Errors
/// [`FormatError`] naming the provider and, for a bad prefix, where it is.
pub fn parse(provider: Provider, bytes: &[u8]) -> Result<Vec<RangeEntry>, FormatError> {
    let json = |source| FormatError::Json { provider, source };
    let mut out = Vec::new();
    match provider {
        Provider::Aws => {
            let file: AwsFile = serde_json::from_slice(bytes).map_err(json)?;
            for (list, items) in
                [("prefixes", file.prefixes), ("ipv6_prefixes", file.ipv6_prefixes)]
            {
                for (i, p) in items.into_iter().enumerate() {
                    let prefix = prefix(&p.ip_prefix, || format!("{list}[{i}]"))?;
                    out.push(RangeEntry { prefix, service: p.service, region: p.region });
                }
            }
        }
        Provider::Gcp => {
            let file: GcpFile = serde_json::from_slice(bytes).map_err(json)?;
            for (i, p) in file.prefixes.into_iter().enumerate() {
                let prefix = prefix(&p.ipv4_prefix, || format!("prefixes[{i}]"))?;
                out.push(RangeEntry { prefix, service: p.service, region: p.scope });
            }
        }
        Provider::Azure => {
            let file: AzureFile = serde_json::from_slice(bytes).map_err(json)?;
            for (i, tag) in file.values.into_iter().enumerate() {
                let service = tag.name.split('.').next().unwrap_or_default().to_owned();
                for (j, p) in tag.properties.address_prefixes.iter().enumerate() {
                    let at = || format!("values[{i}] ({}).addressPrefixes[{j}]", tag.name);
                    out.push(RangeEntry {
                        prefix: prefix(p, at)?,
                        service: service.clone(),
                        region: tag.properties.region.clone(),
                    });
                }
            }
        }
    }
    if out.is_empty() {
        return Err(FormatError::Empty { provider });
    }
    Ok(out)
}

fn prefix(text: &str, at: impl FnOnce() -> String) -> Result<IpNet, FormatError> {
    text.parse::<IpNet>()
        .map(|p| p.trunc())
        .map_err(|_| FormatError::Prefix { at: at(), value: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_parses_v4_and_v6() {
        let aws = br#"{"syncToken":"1","prefixes":[{"ip_prefix":"52.95.128.0/21","region":"ap-southeast-2","service":"S3","network_border_group":"ap-southeast-2"}],
            "ipv6_prefixes":[{"ipv6_prefix":"2600:1f69:7400::/40","region":"mx-central-1","service":"AMAZON","network_border_group":"mx-central-1"}]}"#;
        let e = parse(Provider::Aws, aws).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].service.as_str(), e[0].region.as_str()), ("S3", "ap-southeast-2"));
        assert_eq!(e[1].prefix.to_string(), "2600:1f69:7400::/40");
        let gcp = br#"{"prefixes":[{"ipv4Prefix":"34.1.208.0/20","service":"Google Cloud","scope":"africa-south1"},{"ipv6Prefix":"2600:1900:8000::/44","service":"Google Cloud","scope":"us-east1"}]}"#;
        let e = parse(Provider::Gcp, gcp).unwrap();
        assert_eq!(e[1].region, "us-east1");
        let azure = br#"{"changeNumber":1,"cloud":"Public","values":[{"name":"Storage.AustraliaEast","id":"x","properties":{"region":"australiaeast","addressPrefixes":["20.60.72.0/23","2603:1010::/48"]}}]}"#;
        let e = parse(Provider::Azure, azure).unwrap();
        assert_eq!((e[1].service.as_str(), e[1].region.as_str()), ("Storage", "australiaeast"));
    }

    #[test]
    fn corrupt_files_say_what_and_where() {
        let e = parse(Provider::Aws, b"<html>503</html>").unwrap_err().to_string();
        assert!(e.contains("not a aws range file") && e.contains("line 1"), "{e}");
        let bad = br#"{"prefixes":[{"ip_prefix":"52.95.128.0/33","region":"r","service":"S3"}]}"#;
        let e = parse(Provider::Aws, bad).unwrap_err().to_string();
        assert_eq!(e, r#"prefixes[0]: "52.95.128.0/33" is not an IP prefix"#);
        let e = parse(Provider::Gcp, br#"{"prefixes":[]}"#).unwrap_err().to_string();
        assert_eq!(e, "no prefixes in the gcp range file");
        let truncated = br#"{"values":[{"name":"AzureCloud","properties":{"addressPrefixes":["1.2"#;
        assert!(parse(Provider::Azure, truncated).is_err());
    }
}
