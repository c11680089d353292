//! Kubernetes attribution: which pod and workload a cgroup belongs to ([`cgroup_path`]), and
//! what the cluster says about pods, nodes and owners ([`index`], filled by the watches in
//! [`watch`]).

pub mod cgroup_path;
pub mod index;
pub mod watch;

use std::path::Path;

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use self::{cgroup_path::pod_of, watch::SharedIndex};

/// Default pod label holding a workload's version.
pub const DEFAULT_VERSION_LABEL: &str = "app.kubernetes.io/version";

/// The local side of a flow in Kubernetes terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    /// Namespace.
    pub namespace: String,
    /// Workload name (Deployment, StatefulSet, …; the pod itself when bare).
    pub workload: String,
    /// Workload kind.
    pub kind: String,
    /// Value of the version label, empty when absent.
    pub version: String,
}

/// What a cgroup is, in Kubernetes terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupIdentity {
    /// Not a pod's cgroup (a systemd unit, the root, …).
    NotAPod,
    /// A pod the index does not know (yet): not synced, or deleted before it was seen.
    UnknownPod,
    /// A known pod.
    Pod(LocalPod),
}

/// Attribution from the Kubernetes index.
#[derive(Debug, Clone)]
pub struct KubeAttribution {
    /// The index the watches fill.
    pub index: SharedIndex,
    /// The pod label holding the version.
    pub version_label: String,
}

impl KubeAttribution {
    /// What the cgroup at `path` (relative to the cgroup2 root) belongs to.
    pub fn cgroup(&self, path: &str) -> CgroupIdentity {
        let Some(pod) = pod_of(path) else { return CgroupIdentity::NotAPod };
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let Some(info) = index.pod(&pod.uid) else { return CgroupIdentity::UnknownPod };
        let workload = index.workload(info);
        CgroupIdentity::Pod(LocalPod {
            namespace: info.namespace.clone(),
            workload: workload.name,
            kind: workload.kind,
            version: info.labels.get(&self.version_label).cloned().unwrap_or_default(),
        })
    }
}

/// Connects with `kubeconfig` if given, else the in-cluster configuration (service account
/// token and `KUBERNETES_SERVICE_HOST`), else the default kubeconfig.
///
/// # Errors
/// kube's error naming what could not be read or used.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, kube::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(kube::Error::InferKubeconfig)?
        }
        None => Config::infer().await.map_err(kube::Error::InferConfig)?,
    };
    Client::try_from(config)
}
