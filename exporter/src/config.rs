//! The agent's YAML configuration file (`--config.file`): this node's zone and region, and
//! named networks that tell the classifier where a remote address lives.
//!
//! ```yaml
//! node:
//!   zone: use1-az1        # where this machine runs
//!   region: us-east-1
//! networks:               # longest prefix wins; IPv4 and IPv6
//!   - cidr: 10.0.16.0/20
//!     name: vpc-main-az2
//!     zone: use1-az2
//!     region: us-east-1
//! kubernetes:
//!   nodes:                # zone/region of nodes, over their topology labels
//!     - name: ip-10-0-3-30.ec2.internal
//!       zone: us-east-1c
//! ```

use std::{collections::HashSet, path::Path, time::Duration};

use ipnet::IpNet;
use serde::Deserialize;

use crate::{
    cloud::{Provider, sources::CloudRangesConfig},
    discovery::DiscoveryConfig,
    error::ConfigError,
    paths::EgressPath,
};

/// The whole file. Unknown fields are errors, so a typo never silently zeroes a cost.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where this node runs.
    #[serde(default)]
    pub node: NodeConfig,
    /// Named networks; the longest matching prefix names a remote address.
    #[serde(default)]
    pub networks: Vec<NetworkConfig>,
    /// Cloud provider range files (default: AWS's and GCP's published URLs).
    #[serde(default)]
    pub cloud_ranges: CloudRangesConfig,
    /// This node's subnets and how their traffic leaves the VPC.
    #[serde(default)]
    pub subnets: Vec<SubnetConfig>,
    /// How prices are applied.
    #[serde(default)]
    pub pricing: PricingConfig,
    /// What to ask the cloud's metadata service.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Kubernetes settings.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
}

/// `kubernetes` in the configuration file.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Nodes whose zone or region is not (or not rightly) in their topology labels:
    /// on-premises nodes, nodes whose labels drifted. What is given wins over the labels.
    #[serde(default)]
    pub nodes: Vec<NodeTopology>,
}

/// One node's place, as configured.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeTopology {
    /// The Node object's name.
    pub name: String,
    /// Its zone (over `topology.kubernetes.io/zone`).
    pub zone: Option<String>,
    /// Its region (over `topology.kubernetes.io/region`).
    pub region: Option<String>,
}

/// A local subnet: flows whose local address lies in it leave the VPC by `egress`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    /// IPv4 or IPv6 prefix of the subnet (pod CIDRs count too).
    pub cidr: IpNet,
    /// The route to public addresses: `nat_gateway`, `internet_gateway`, `transit_gateway`
    /// (centralised egress) or `none`.
    #[serde(default)]
    pub egress: EgressPath,
    /// Services with a VPC gateway endpoint in this subnet's route table (`S3`, `DYNAMODB`):
    /// their same-region ranges bypass `egress`.
    #[serde(default)]
    pub gateway_endpoints: Vec<String>,
}

/// `pricing` in the configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// Apply the sheet's account-wide free allowance tiers (only right when this node is the
    /// account's only sender).
    #[serde(default)]
    pub free_tier: bool,
    /// GiB of this month's tiered volume (internet egress) sent elsewhere in the account,
    /// added to this node's own count when choosing the tier.
    #[serde(default)]
    pub tier_offset_gib: f64,
}

/// This node's location. Without a zone, no remote can be same-zone or cross-zone.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Availability zone (AWS zone ID such as `use1-az1`, or name such as `us-east-1a`;
    /// networks must use the same form).
    pub zone: Option<String>,
    /// Region as the provider spells it (`us-east-1`, `europe-west1`, `eastus`). Defaults to
    /// the price sheet's region.
    pub region: Option<String>,
    /// Cloud provider (`aws`, `gcp`, `azure`): its ranges in this region are
    /// `cloud_same_region`. Defaults to the price sheet's provider.
    pub provider: Option<Provider>,
}

/// One named network.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// IPv4 or IPv6 prefix, e.g. `10.0.16.0/20` or `2001:db8::/48`.
    pub cidr: IpNet,
    /// Becomes the `remote` label: keep it short and stable.
    pub name: String,
    /// Zone the network lives in.
    pub zone: Option<String>,
    /// Region the network lives in.
    pub region: Option<String>,
    /// How traffic reaches it (`transit_gateway`, `vpc_interface_endpoint`, …; default `none`).
    #[serde(default)]
    pub path: EgressPath,
}

impl FileConfig {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if the file cannot be read, [`ConfigError::Parse`] for YAML
    /// that does not match the schema (the message names the field, line and column), and
    /// [`ConfigError::Invalid`] listing every semantic problem found.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&ConfigError::read_file(path)?, path)
    }

    /// Parses and validates YAML text; `origin` names the source in errors.
    ///
    /// # Errors
    /// As [`FileConfig::load`], without the read error.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        // An empty file is an empty configuration, not an error.
        let config: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            ConfigError::parse_yaml(text, origin)?
        };
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { path: origin.to_owned(), problems })
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (i, net) in self.networks.iter().enumerate() {
            let at = format!("networks[{i}] ({})", net.cidr);
            if net.name.trim().is_empty() {
                problems.push(format!("{at}.name: must not be empty"));
            }
            if net.cidr != net.cidr.trunc() {
                problems
                    .push(format!("{at}.cidr: host bits set; did you mean {}?", net.cidr.trunc()));
            }
            if !seen.insert(net.cidr.trunc()) {
                problems.push(format!("{at}.cidr: listed twice"));
            }
            for (field, value) in [("zone", &net.zone), ("region", &net.region)] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    problems.push(format!("{at}.{field}: must not be empty when given"));
                }
            }
        }
        for (field, value) in [("zone", &self.node.zone), ("region", &self.node.region)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                problems.push(format!("node.{field}: must not be empty when given"));
            }
        }
        for (i, s) in self.subnets.iter().enumerate() {
            let at = format!("subnets[{i}] ({})", s.cidr);
            if s.cidr != s.cidr.trunc() {
                problems
                    .push(format!("{at}.cidr: host bits set; did you mean {}?", s.cidr.trunc()));
            }
            if matches!(s.egress, EgressPath::VpcGatewayEndpoint | EgressPath::VpcInterfaceEndpoint)
            {
                problems.push(format!(
                    "{at}.egress: {} is not a default route; list services in gateway_endpoints, \
                     or endpoint addresses under networks with a path",
                    s.egress.as_str()
                ));
            }
        }
        if !self.pricing.tier_offset_gib.is_finite() || self.pricing.tier_offset_gib < 0.0 {
            problems.push(format!(
                "pricing.tier_offset_gib: {} must be ≥ 0",
                self.pricing.tier_offset_gib
            ));
        }
        let mut names = HashSet::new();
        for (i, n) in self.kubernetes.nodes.iter().enumerate() {
            let at = format!("kubernetes.nodes[{i}] ({})", n.name);
            if n.name.trim().is_empty() {
                problems.push(format!("kubernetes.nodes[{i}].name: must not be empty"));
            } else if !names.insert(n.name.as_str()) {
                problems.push(format!("{at}.name: listed twice"));
            }
            if n.zone.is_none() && n.region.is_none() {
                problems.push(format!("{at}: give a zone, a region or both"));
            }
            for (field, value) in [("zone", &n.zone), ("region", &n.region)] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    problems.push(format!("{at}.{field}: must not be empty when given"));
                }
            }
        }
        problems.extend(self.cloud_ranges.problems());
        problems
    }
}

/// Deserializes a duration written as `30s`, `15m`, `24h` (humantime).
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("{text:?} is not a duration like 30s or 24h: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(yaml, Path::new("test.yaml"))
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            "node: {zone: use1-az1, region: us-east-1}\n\
             networks:\n  - {cidr: 10.0.0.0/16, name: vpc, zone: use1-az2, region: us-east-1}\n  \
             - {cidr: '2001:db8::/32', name: v6}\n",
        )
        .unwrap();
        assert_eq!(c.node.zone.as_deref(), Some("use1-az1"));
        assert_eq!(c.networks.len(), 2);
        assert_eq!(c.networks[1].cidr.to_string(), "2001:db8::/32");
    }

    #[test]
    fn kubernetes_node_overrides_are_checked() {
        let c = parse("kubernetes:\n  nodes:\n    - {name: n1, zone: us-east-1c}\n").unwrap();
        assert_eq!(c.kubernetes.nodes[0].zone.as_deref(), Some("us-east-1c"));
        let e = parse(
            "kubernetes:\n  nodes:\n    - {name: n1, zone: a}\n    - {name: n1, region: r}\n    \
             - {name: n2}\n    - {name: '', zone: ''}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("kubernetes.nodes[1] (n1).name: listed twice"), "{e}");
        assert!(e.contains("kubernetes.nodes[2] (n2): give a zone, a region or both"), "{e}");
        assert!(e.contains("kubernetes.nodes[3].name: must not be empty"), "{e}");
        assert!(e.contains("kubernetes.nodes[3] ().zone: must not be empty when given"), "{e}");
        let e = parse("kubernetes:\n  nodes:\n    - {name: n1, zome: a}\n").unwrap_err();
        assert!(e.to_string().contains("zome"), "a typo is an error: {e}");
    }

    #[test]
    fn empty_file_is_empty_config() {
        assert_eq!(parse("  \n").unwrap(), FileConfig::default());
    }

    #[test]
    fn bad_cidr_names_the_field_and_line() {
        let e = parse("networks:\n  - cidr: 10.0.0/8\n    name: x\n").unwrap_err().to_string();
        assert!(e.contains("networks[0].cidr"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("test.yaml"), "{e}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let e = parse("node: {zome: a}\n").unwrap_err().to_string();
        assert!(e.contains("zome"), "{e}");
    }

    #[test]
    fn every_semantic_problem_is_reported() {
        let e = parse(
            "node: {zone: ''}\nnetworks:\n  - {cidr: 10.0.0.1/8, name: ''}\n  \
             - {cidr: 10.0.0.0/8, name: b}\n",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "networks[0] (10.0.0.1/8).name",
            "host bits set; did you mean 10.0.0.0/8",
            "networks[1] (10.0.0.0/8).cidr: listed twice",
            "node.zone",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in {e}");
        }
    }
}
