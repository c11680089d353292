//! Discovery from cloud metadata: on AWS, the instance metadata service (IMDSv2,
//! <https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html>)
//! tells the node's zone ID, region, and the subnets and VPCs of its network interfaces.
//! What the configuration says wins; discovery fills what it leaves out. An unreachable or
//! refusing service is a warning, never a failure.
//!
//! Discovered subnets become `subnets` entries with the egress path the configuration
//! assumes for them (`discovery.subnet_egress`: IMDS does not expose route tables), and
//! `networks` entries (`subnet-…` in this zone, `vpc-…` in this region) so that same-subnet
//! peers are `same_zone` and the rest of the VPC at least `private` in the right region.

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::{
    cloud::Provider,
    config::{FileConfig, NetworkConfig, SubnetConfig},
    paths::EgressPath,
};

/// Default IMDS endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Time allowed for each metadata request (IMDS answers in milliseconds on EC2; off EC2 the
/// address does not answer at all).
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

/// `discovery` in the configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Ask the AWS instance metadata service (IMDSv2).
    #[serde(default)]
    pub aws_imds: bool,
    /// The IMDS base URL.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Egress path of discovered subnets (`nat_gateway` for private subnets,
    /// `internet_gateway` for public ones).
    #[serde(default)]
    pub subnet_egress: EgressPath,
    /// Gateway endpoints in the discovered subnets' route tables (`S3`, `DYNAMODB`).
    #[serde(default)]
    pub subnet_gateway_endpoints: Vec<String>,
}

fn default_endpoint() -> String {
    IMDS_ENDPOINT.into()
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            aws_imds: false,
            endpoint: default_endpoint(),
            subnet_egress: EgressPath::None,
            subnet_gateway_endpoints: Vec::new(),
        }
    }
}

/// What the metadata service said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Availability zone ID (`use1-az1`).
    pub zone: Option<String>,
    /// Region (`us-east-1`).
    pub region: Option<String>,
    /// (subnet ID, CIDRs) of each network interface.
    pub subnets: Vec<(String, Vec<IpNet>)>,
    /// (VPC ID, CIDRs) of each network interface.
    pub vpcs: Vec<(String, Vec<IpNet>)>,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {message}")]
pub struct DiscoveryError {
    /// The request that failed.
    pub url: String,
    /// What went wrong.
    pub message: String,
}

/// Asks IMDSv2: a session token first (PUT), then the metadata with it.
///
/// # Errors
/// [`DiscoveryError`] naming the request that failed.
pub async fn aws_imds(endpoint: &str) -> Result<Discovered, DiscoveryError> {
    let base = endpoint.trim_end_matches('/');
    let client = crate::http_client::client(IMDS_TIMEOUT)
        .map_err(|e| DiscoveryError { url: base.into(), message: e.to_string() })?;
    let token_url = format!("{base}/latest/api/token");
    let fail = |url: &str, e: &dyn std::fmt::Display| DiscoveryError {
        url: url.into(),
        message: e.to_string(),
    };
    let token = client
        .put(&token_url)
        .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| fail(&token_url, &e))?
        .text()
        .await
        .map_err(|e| fail(&token_url, &e))?;
    let get = |path: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let url = format!("{base}/latest/meta-data/{path}");
            let r = client
                .get(&url)
                .header("X-aws-ec2-metadata-token", token)
                .send()
                .await
                .map_err(|e| fail(&url, &e))?;
            if r.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let r = r.error_for_status().map_err(|e| fail(&url, &e))?;
            r.text().await.map(|t| Some(t.trim().to_owned())).map_err(|e| fail(&url, &e))
        }
    };
    let mut found = Discovered {
        zone: get("placement/availability-zone-id".into()).await?,
        region: get("placement/region".into()).await?,
        ..Discovered::default()
    };
    let macs = get("network/interfaces/macs/".into()).await?.unwrap_or_default();
    for mac in macs.lines().map(|m| m.trim().trim_end_matches('/')).filter(|m| !m.is_empty()) {
        let at = |leaf: &str| format!("network/interfaces/macs/{mac}/{leaf}");
        let cidrs = |text: Option<String>| -> Vec<IpNet> {
            text.unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
        };
        if let Some(subnet) = get(at("subnet-id")).await? {
            let mut nets = cidrs(get(at("subnet-ipv4-cidr-block")).await?);
            nets.extend(cidrs(get(at("subnet-ipv6-cidr-blocks")).await?));
            found.subnets.push((subnet, nets));
        }
        if let Some(vpc) = get(at("vpc-id")).await? {
            let mut nets = cidrs(get(at("vpc-ipv4-cidr-blocks")).await?);
            nets.extend(cidrs(get(at("vpc-ipv6-cidr-blocks")).await?));
            found.vpcs.push((vpc, nets));
        }
    }
    Ok(found)
}

/// Fills what `config` leaves out with what was discovered; returns how many subnets and
/// networks were added.
pub fn merge(config: &mut FileConfig, found: &Discovered) -> usize {
    let mut added = 0;
    if config.node.zone.is_none() {
        config.node.zone = found.zone.clone();
    }
    if config.node.region.is_none() {
        config.node.region = found.region.clone();
    }
    if found.region.is_some() && config.node.provider.is_none() {
        config.node.provider = Some(Provider::Aws);
    }
    let known = |config: &FileConfig, cidr: &IpNet| config.networks.iter().any(|n| n.cidr == *cidr);
    for (id, cidrs) in &found.subnets {
        for cidr in cidrs {
            if !config.subnets.iter().any(|s| s.cidr == *cidr) {
                config.subnets.push(SubnetConfig {
                    cidr: *cidr,
                    egress: config.discovery.subnet_egress,
                    gateway_endpoints: config.discovery.subnet_gateway_endpoints.clone(),
                });
                added += 1;
            }
            if !known(config, cidr) {
                config.networks.push(NetworkConfig {
                    cidr: *cidr,
                    name: id.clone(),
                    zone: found.zone.clone(),
                    region: found.region.clone(),
                    path: EgressPath::None,
                });
                added += 1;
            }
        }
    }
    for (id, cidrs) in &found.vpcs {
        for cidr in cidrs {
            if !known(config, cidr) {
                config.networks.push(NetworkConfig {
                    cidr: *cidr,
                    name: id.clone(),
                    zone: None,
                    region: found.region.clone(),
                    path: EgressPath::None,
                });
                added += 1;
            }
        }
    }
    added
}
