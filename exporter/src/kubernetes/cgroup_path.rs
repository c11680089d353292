//! The pod behind a cgroup: the kubelet names each pod's cgroup after the pod's UID, in one
//! of two shapes depending on its cgroup driver, under a QoS level (guaranteed pods sit
//! directly under `kubepods`):
//!
//! - cgroupfs: `/kubepods/burstable/pod1b4e…-…/<container id>`
//! - systemd: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b4e…_….slice/
//!   cri-containerd-<container id>.scope` (CRI-O: `crio-<id>.scope`, Docker: `docker-<id>.scope`)
//!
//! The kubepods tree may sit below other directories (kind and k3s nodes nest it), so the
//! pod component is looked for anywhere in the path.

/// QoS class of a pod, from its cgroup's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Directly under `kubepods`.
    Guaranteed,
    /// Under `burstable`.
    Burstable,
    /// Under `besteffort`.
    BestEffort,
}

/// What a cgroup path says about the pod it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// The pod's UID, dashed (`1b4e28ba-2fa1-11d2-883f-0016d3cca427`).
    pub uid: String,
    /// Its QoS class.
    pub qos: Qos,
    /// The container's ID, when the cgroup is a container's (not the pod's own).
    pub container: Option<String>,
}

/// The pod of a cgroup path (relative to the cgroup2 root), if it is a pod's.
pub fn pod_of(path: &str) -> Option<PodCgroup> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (at, uid) = parts.iter().enumerate().find_map(|(i, p)| pod_uid(p).map(|u| (i, u)))?;
    let before = &parts[..at];
    let qos = if before.iter().chain([&parts[at]]).any(|p| p.contains("besteffort")) {
        Qos::BestEffort
    } else if before.iter().chain([&parts[at]]).any(|p| p.contains("burstable")) {
        Qos::Burstable
    } else {
        Qos::Guaranteed
    };
    let container = parts.get(at + 1).and_then(|c| container_id(c));
    Some(PodCgroup { uid, qos, container })
}

/// `pod<uid>` at the end of a component (after `kubepods-burstable-` and before `.slice` in
/// the systemd shape, where the UID's dashes are underscores).
fn pod_uid(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let at = name.rfind("pod")?;
    let uid = &name[at + 3..];
    let dashed: String = uid.chars().map(|c| if c == '_' { '-' } else { c }).collect();
    is_uid(&dashed).then_some(dashed)
}

/// 8-4-4-4-12 hexadecimal digits.
fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The container ID of a container cgroup: 64 hex digits, bare (cgroupfs) or wrapped as
/// `<runtime>-<id>.scope` (systemd).
fn container_id(component: &str) -> Option<String> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    let id = name.rsplit('-').next()?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    const UID_: &str = "1b4e28ba_2fa1_11d2_883f_0016d3cca427";
    const CID: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn every_kubelet_shape_gives_uid_qos_and_container() {
        let cases = [
            (format!("/kubepods/pod{UID}/{CID}"), Qos::Guaranteed),
            (format!("/kubepods/burstable/pod{UID}/{CID}"), Qos::Burstable),
            (format!("/kubepods/besteffort/pod{UID}/{CID}"), Qos::BestEffort),
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope"),
                Qos::Guaranteed,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope"
                ),
                Qos::Burstable,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{CID}.scope"
                ),
                Qos::BestEffort,
            ),
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope"
                ),
                Qos::Burstable,
            ),
            (format!("/docker/abc/kubepods/burstable/pod{UID}/{CID}"), Qos::Burstable),
        ];
        for (path, qos) in cases {
            let pod = pod_of(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(
                pod,
                PodCgroup { uid: UID.into(), qos, container: Some(CID.into()) },
                "{path}"
            );
        }
        // The pod's own cgroup (no container).
        let pod = pod_of(&format!("/kubepods/burstable/pod{UID}")).unwrap();
        assert_eq!(pod.container, None);
    }

    #[test]
    fn other_cgroups_are_not_pods() {
        for path in [
            "/",
            "/system.slice/nginx.service",
            "/kubepods/burstable",
            "/kubepods.slice/kubepods-burstable.slice",
            "/user.slice/user-1000.slice/podman-123.scope",
            "/kubepods/burstable/podnot-a-uid",
        ] {
            assert_eq!(pod_of(path), None, "{path}");
        }
    }
}
