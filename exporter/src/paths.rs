//! Egress paths: how a flow leaves (or enters) the VPC, which decides the processing charges
//! on top of transfer prices and whether a cost is avoidable.
//!
//! Rules, from the configuration (`subnets`, `networks[].path`):
//! - a remote in a configured network takes that network's `path` (a peer VPC through a
//!   transit gateway, a VPC interface endpoint's addresses);
//! - a public remote (internet or a cloud range) from a local address in a configured subnet
//!   takes the subnet's `egress` path, except a service listed in the subnet's
//!   `gateway_endpoints` in this node's provider and region, which takes the gateway endpoint;
//! - anything else has no path (`none`): nothing is added to its transfer price.

use std::net::IpAddr;

use ipnet::IpNet;
use prefix_trie::joint::map::JointPrefixMap;
use serde::{Deserialize, Serialize};

use crate::{
    classify::{Remote, TrafficClass},
    cloud::Provider,
    config::{FileConfig, SubnetConfig},
};

/// The value of the `egress_path` label.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EgressPath {
    /// No gateway in the path (same VPC, or nothing configured).
    #[default]
    None,
    /// An internet gateway: the instance's own public address.
    InternetGateway,
    /// A NAT gateway: per-GiB processing in both directions.
    NatGateway,
    /// A VPC gateway endpoint (S3, DynamoDB): free.
    VpcGatewayEndpoint,
    /// A VPC interface endpoint (PrivateLink): per-GiB processing.
    VpcInterfaceEndpoint,
    /// A transit gateway: per-GiB processing of what is sent into it.
    TransitGateway,
}

impl EgressPath {
    /// Every path, in label order.
    pub const ALL: [EgressPath; 6] = [
        Self::None,
        Self::InternetGateway,
        Self::NatGateway,
        Self::VpcGatewayEndpoint,
        Self::VpcInterfaceEndpoint,
        Self::TransitGateway,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::InternetGateway => "internet_gateway",
            Self::NatGateway => "nat_gateway",
            Self::VpcGatewayEndpoint => "vpc_gateway_endpoint",
            Self::VpcInterfaceEndpoint => "vpc_interface_endpoint",
            Self::TransitGateway => "transit_gateway",
        }
    }
}

/// Decides egress paths from the configuration.
pub struct EgressPaths {
    subnets: JointPrefixMap<IpNet, SubnetConfig>,
    network_paths: Vec<EgressPath>,
    node_provider: Option<Provider>,
    node_region: Option<String>,
}

impl EgressPaths {
    /// From the validated configuration (node provider and region already defaulted).
    pub fn new(config: &FileConfig) -> Self {
        let mut subnets = JointPrefixMap::new();
        for s in &config.subnets {
            subnets.insert(s.cidr.trunc(), s.clone());
        }
        Self {
            subnets,
            network_paths: config.networks.iter().map(|n| n.path).collect(),
            node_provider: config.node.provider,
            node_region: config.node.region.clone(),
        }
    }

    /// Whether any subnet or network path is configured.
    pub fn is_configured(&self) -> bool {
        self.subnets.iter().next().is_some()
            || self.network_paths.iter().any(|p| *p != EgressPath::None)
    }

    /// The most specific configured subnet holding `local`.
    pub fn subnet(&self, local: IpAddr) -> Option<&SubnetConfig> {
        self.subnets.get_lpm(&IpNet::from(local.to_canonical())).map(|(_, s)| s)
    }

    /// The path between `local` (this end's address) and `remote`.
    pub fn path(&self, local: Option<IpAddr>, remote: &Remote<'_>) -> EgressPath {
        let cloud = remote.cloud.map(|m| (m.provider, m.service, m.region));
        self.path_of(local, remote.class, remote.network, cloud)
    }

    /// [`EgressPaths::path`] from the parts of the classifier's verdict that decide it: the
    /// remote's class, configured network (index) and cloud range's (provider, service,
    /// region).
    pub fn path_of(
        &self,
        local: Option<IpAddr>,
        class: TrafficClass,
        network: Option<usize>,
        cloud: Option<(Provider, &str, &str)>,
    ) -> EgressPath {
        if let Some(i) = network {
            return self.network_paths[i];
        }
        if !class.is_public() {
            return EgressPath::None;
        }
        let Some(subnet) = local.and_then(|a| self.subnet(a)) else { return EgressPath::None };
        let via_endpoint = cloud.is_some_and(|(provider, service, region)| {
            Some(provider) == self.node_provider
                && self.node_region.as_deref() == Some(region)
                && subnet.gateway_endpoints.iter().any(|s| s == service)
        });
        if via_endpoint { EgressPath::VpcGatewayEndpoint } else { subnet.egress }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, sync::Arc};

    use super::*;
    use crate::{
        classify::Classifier,
        cloud::{CloudTable, RangeEntry, sources::SharedCloudTable},
    };

    #[test]
    fn subnet_paths_endpoints_and_network_paths() {
        let mut config = FileConfig::parse(
            "node: {region: us-east-1, provider: aws}\n\
             subnets:\n  - {cidr: 10.0.1.0/24, egress: nat_gateway, gateway_endpoints: [S3]}\n  \
             - {cidr: 10.0.2.0/24, egress: internet_gateway}\n\
             networks:\n  - {cidr: 10.20.0.0/16, name: shared, path: transit_gateway}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        config.cloud_ranges.sources.clear();
        let entries = [
            RangeEntry {
                prefix: "3.5.0.0/16".parse().unwrap(),
                service: "S3".into(),
                region: "us-east-1".into(),
            },
            RangeEntry {
                prefix: "3.6.0.0/16".parse().unwrap(),
                service: "S3".into(),
                region: "us-west-2".into(),
            },
        ];
        let shared = Arc::new(SharedCloudTable::default());
        shared.store(CloudTable::build([(Provider::Aws, &entries[..])]));
        let c = Classifier::new(&config, shared);
        let p = EgressPaths::new(&config);
        let path = |local: &str, remote: &str| {
            p.path(Some(local.parse().unwrap()), &c.classify(Some(remote.parse().unwrap())))
        };
        assert_eq!(path("10.0.1.5", "3.5.1.1"), EgressPath::VpcGatewayEndpoint);
        assert_eq!(path("10.0.1.5", "3.6.1.1"), EgressPath::NatGateway, "other region");
        assert_eq!(path("10.0.1.5", "198.51.100.1"), EgressPath::NatGateway);
        assert_eq!(path("10.0.2.5", "3.5.1.1"), EgressPath::InternetGateway, "no endpoint");
        assert_eq!(path("10.0.1.5", "10.20.3.4"), EgressPath::TransitGateway);
        assert_eq!(path("10.0.1.5", "10.0.2.9"), EgressPath::None, "private");
        assert_eq!(path("172.16.0.1", "198.51.100.1"), EgressPath::None, "no subnet");
    }
}
