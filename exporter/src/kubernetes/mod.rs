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
