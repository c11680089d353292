//! Typed label sets of egressor's metrics. Every value comes from a bounded set: hooks,
//! directions and classes are enums; interfaces are the ones given with `--interface`;
//! workloads are the node's cgroups; remote names and zones come from the configuration.
//! No raw address or port is ever a label.

use std::sync::Arc;

use egressor_common::{Direction, Hook};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::{classify::TrafficClass, paths::EgressPath};

/// `hook` label: which kernel hook counted the bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum HookLabel {
    /// cgroup_skb programs.
    Cgroup,
    /// TC programs.
    Tc,
}

impl HookLabel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cgroup => "cgroup",
            Self::Tc => "tc",
        }
    }
}

impl From<Hook> for HookLabel {
    fn from(h: Hook) -> Self {
        match h {
            Hook::Cgroup => Self::Cgroup,
            Hook::Tc => Self::Tc,
        }
    }
}

/// `direction` label.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DirectionLabel {
    /// Received.
    Ingress,
    /// Sent.
    Egress,
}

impl From<Direction> for DirectionLabel {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Ingress => Self::Ingress,
            Direction::Egress => Self::Egress,
        }
    }
}

impl DirectionLabel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }

    /// Whether this is egress.
    pub fn is_egress(self) -> bool {
        self == Self::Egress
    }
}

/// Labels of `egressor_flow_{bytes,packets,cost_usd}_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
pub struct FlowLabels {
    /// `cgroup` or `tc`.
    pub hook: HookLabel,
    /// Interface name for `tc`, empty for `cgroup`.
    pub interface: Arc<str>,
    /// `ingress` or `egress`.
    pub direction: DirectionLabel,
    /// Where the remote lives.
    pub traffic_class: TrafficClass,
    /// Local workload (see `cgroups`; on Kubernetes the pod's Deployment, StatefulSet, …),
    /// empty for `tc`.
    pub workload: Arc<str>,
    /// Kubernetes namespace of the local pod, empty elsewhere.
    pub namespace: Arc<str>,
    /// Kind of the local workload (`Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`,
    /// `Job`, `Pod`), empty outside Kubernetes.
    pub workload_kind: Arc<str>,
    /// The local pod's version label (`--kubernetes.version-label`), empty when absent.
    pub workload_version: Arc<str>,
    /// Name of the remote: its configured network's, else (public remotes) its AS
    /// organisation (`--geoip-asn`); empty when none.
    pub remote: Arc<str>,
    /// Zone of the remote's configured network, empty when unknown.
    pub remote_zone: Arc<str>,
    /// Region of the remote: its configured network's, or its cloud range's (as the provider
    /// spells it); empty when unknown.
    pub remote_region: Arc<str>,
    /// Cloud provider whose published range holds the remote (`aws`, `gcp`, `azure`), empty
    /// when none.
    pub remote_provider: &'static str,
    /// The provider's service for that range (`S3`, `DYNAMODB`, `Storage`, `Google Cloud`),
    /// empty when none.
    pub remote_service: Arc<str>,
    /// ISO 3166-1 country code of a public remote (`--geoip-country`), empty when unknown.
    pub remote_country: Arc<str>,
    /// Namespace of a remote pod, empty otherwise.
    pub remote_namespace: Arc<str>,
    /// Kind of a remote pod's workload (`Deployment`, …), `Node` for a node's address,
    /// empty otherwise.
    pub remote_kind: Arc<str>,
    /// How the flow leaves the VPC (both directions of it): `none`, `nat_gateway`,
    /// `internet_gateway`, `vpc_gateway_endpoint`, `vpc_interface_endpoint`,
    /// `transit_gateway`.
    pub egress_path: EgressPath,
    /// Chargeback labels (`--kubernetes.labels`): `label_<name>` per allowlisted pod or
    /// namespace label; none when no allowlist is given.
    #[prometheus(flatten)]
    pub chargeback: ChargebackLabels,
}

/// Chargeback labels: (label name, value) pairs, the same names in the same order on every
/// series of an agent.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct ChargebackLabels(pub Arc<[(Arc<str>, Arc<str>)]>);

impl EncodeLabelSet for ChargebackLabels {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder<'_>,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeLabelKey;
        for (name, value) in self.0.iter() {
            let mut label = encoder.encode_label();
            let mut key = label.encode_label_key()?;
            EncodeLabelKey::encode(&name.as_ref(), &mut key)?;
            let mut value_encoder = key.encode_label_value()?;
            EncodeLabelValue::encode(&value.as_ref(), &mut value_encoder)?;
            value_encoder.finish()?;
        }
        Ok(())
    }
}

/// The label name a chargeback label key becomes: `label_` and the key with every character
/// outside `[a-zA-Z0-9_]` replaced by `_` (as kube-state-metrics does): `cost-center` →
/// `label_cost_center`.
pub fn chargeback_label_name(key: &str) -> String {
    let tail: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    format!("label_{tail}")
}

/// A compact stand-in for [`FlowLabels`], what the accounting hashes per flow: interned
/// ids instead of strings. Equal keys ⟺ equal labels (the attributor interns by value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelKey {
    /// Which hook.
    pub hook: HookLabel,
    /// Which direction.
    pub direction: DirectionLabel,
    /// Where the remote lives.
    pub traffic_class: TrafficClass,
    /// Interface index for `tc`, 0 for `cgroup`.
    pub interface: u32,
    /// Interned workload name (0 = empty).
    pub workload: u32,
    /// Interned remote labels (0 = all empty).
    pub remote: u32,
    /// Interned remote labels with the name folded into `other` and only the fields that
    /// decide the price kept (what [`Fold`](crate::accounting::Fold) falls back to).
    pub remote_folded: u32,
    /// How the flow leaves the VPC.
    pub egress_path: EgressPath,
}

/// Hashed as three words instead of field by field: the accounting hashes a label set for
/// every new flow, and a derived `Hash` makes eight calls into the hasher (with foldhash,
/// each a multiply) where three do. Equal keys write equal words, as `Eq` requires.
impl std::hash::Hash for LabelKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let small = u64::from(self.hook as u8)
            | u64::from(self.direction as u8) << 8
            | u64::from(self.traffic_class as u8) << 16
            | u64::from(self.egress_path as u8) << 24
            | u64::from(self.interface) << 32;
        state.write_u64(small);
        state.write_u64(u64::from(self.workload) | u64::from(self.remote) << 32);
        state.write_u32(self.remote_folded);
    }
}

/// Workload id of `other` (see [`crate::attribution`]).
pub const OTHER_WORKLOAD: u32 = 1;

impl crate::accounting::Fold for LabelKey {
    fn fold(&self) -> Self {
        Self { remote: self.remote_folded, ..*self }
    }

    fn fold_all(&self) -> Self {
        Self { workload: OTHER_WORKLOAD, remote: self.remote_folded, ..*self }
    }
}

/// Labels of the overflow counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HookDirectionLabels {
    /// Which hook.
    pub hook: HookLabel,
    /// Which direction.
    pub direction: DirectionLabel,
}

/// Labels of `egressor_price_usd_per_gib`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PriceLabels {
    /// The class priced.
    pub traffic_class: TrafficClass,
    /// The direction priced.
    pub direction: DirectionLabel,
    /// The service an exception applies to, empty for the class's default.
    pub remote_service: String,
    /// The region an exception applies to, empty for the class's default.
    pub remote_region: String,
}

/// Labels of `egressor_path_price_usd_per_gib`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PathPriceLabels {
    /// The path priced.
    pub egress_path: EgressPath,
    /// The direction priced.
    pub direction: DirectionLabel,
}

/// Labels of `egressor_tier_volume_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClassDirectionLabels {
    /// The class.
    pub traffic_class: TrafficClass,
    /// The direction.
    pub direction: DirectionLabel,
}

/// Encodes enums by their `as_str` (the derive would use the Rust variant name).
macro_rules! label_value_from_as_str {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    )*};
}
label_value_from_as_str!(HookLabel, DirectionLabel, TrafficClass, EgressPath);

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, hash::Hash};

    use super::*;

    /// Keeps every word a `Hash` impl writes, so that two keys' writes can be compared.
    #[derive(Default)]
    struct Written(Vec<u8>);

    impl std::hash::Hasher for Written {
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }

    fn written(key: &LabelKey) -> Vec<u8> {
        let mut w = Written::default();
        key.hash(&mut w);
        w.0
    }

    #[test]
    fn distinct_label_keys_write_distinct_words() {
        let ids = [0, 1, 7, 0x8000_0000, u32::MAX];
        let mut keys = Vec::new();
        for hook in [HookLabel::Cgroup, HookLabel::Tc] {
            for direction in [DirectionLabel::Ingress, DirectionLabel::Egress] {
                for traffic_class in TrafficClass::ALL {
                    for egress_path in EgressPath::ALL {
                        keys.push(LabelKey {
                            hook,
                            direction,
                            traffic_class,
                            interface: 0,
                            workload: 0,
                            remote: 0,
                            remote_folded: 0,
                            egress_path,
                        });
                    }
                }
            }
        }
        let base = keys[0];
        for id in ids {
            keys.push(LabelKey { interface: id, ..base });
            keys.push(LabelKey { workload: id, ..base });
            keys.push(LabelKey { remote: id, ..base });
            keys.push(LabelKey { remote_folded: id, ..base });
            keys.push(LabelKey { workload: id, remote: id.rotate_left(1), ..base });
        }
        let distinct: HashSet<LabelKey> = keys.iter().copied().collect();
        let words: HashSet<Vec<u8>> = distinct.iter().map(written).collect();
        assert_eq!(words.len(), distinct.len(), "two different keys wrote the same words");
        assert_eq!(written(&base), written(&LabelKey { ..base }));
    }
}
