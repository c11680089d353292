//! Pinning in bpffs (`--bpf.pin-path`), so that a restarted or upgraded agent takes over
//! counting where the last one stopped: no byte counted twice, none lost in between.
//!
//! Layout under the pin path, one directory per [`PIN_LAYOUT_VERSION`]:
//!
//! ```text
//! <pin path>/v1/maps/FLOWS, OVERFLOW, DNS_STATS    the counters (pinned maps)
//! <pin path>/v1/links/cgroup-ingress, tc-eth0-egress, …   the attachments (pinned links)
//! ```
//!
//! Pinned links keep the programs attached while no agent runs, counting into the pinned
//! maps. A new agent reuses maps of its own layout version and swaps its freshly loaded
//! programs into the pinned links with `BPF_LINK_UPDATE`, which replaces a link's program
//! atomically. Directories of other layout versions, and maps whose shape does not match
//! (a changed `--flow-map.max-entries`), are removed: their links detach and counting starts
//! over. clsact filters (TC on kernels before 6.6) cannot be pinned and are replaced at
//! restart, leaving a gap of the restart's length on those interfaces.

use std::{
    collections::HashSet,
    io,
    os::fd::{AsFd, BorrowedFd},
    path::{Path, PathBuf},
};

use aya::{maps::MapInfo, programs::links::FdLink};
use egressor_common::{
    DNS_STATS_MAP, FLOWS_MAP, FlowCounters, FlowKey, OVERFLOW_MAP, PIN_LAYOUT_VERSION,
};
use tracing::{info, warn};

use super::{DataplaneError, bpf_sys};

/// The maps a restarted agent must find again: the flow counters and the totals exported
/// as counters since load (overflow, DNS capture). The DNS ring and the service map are
/// per agent.
pub const PINNED_MAPS: [&str; 3] = [FLOWS_MAP, OVERFLOW_MAP, DNS_STATS_MAP];

/// The prepared pin directories of this layout version.
#[derive(Debug)]
pub struct PinLayout {
    maps: PathBuf,
    links: PathBuf,
    /// Whether the maps pinned by an earlier agent are reused (its counts carry over).
    pub reused: bool,
    /// Links pinned by this agent or taken over by it.
    wanted: HashSet<String>,
}

impl PinLayout {
    /// Checks that `root` is on bpffs, removes other layout versions and incompatible maps,
    /// and creates this version's directories.
    ///
    /// # Errors
    /// [`DataplaneError::Pin`] naming the path: not on bpffs, or a directory that cannot be
    /// created or removed.
    pub fn prepare(root: &Path, max_flows: u32) -> Result<Self, DataplaneError> {
        check_bpffs(root)?;
        let io = |path: &Path, e: io::Error| pin_error(path, e.to_string());
        std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
        let current = format!("v{PIN_LAYOUT_VERSION}");
        for entry in std::fs::read_dir(root).map_err(|e| io(root, e))? {
            let entry = entry.map_err(|e| io(root, e))?;
            if entry.file_name() != current.as_str() {
                let path = entry.path();
                warn!(path = %path.display(), "removing pins of another egressor layout version; its counters do not carry over");
                remove_path(&path).map_err(|e| io(&path, e))?;
            }
        }
        let dir = root.join(&current);
        let maps = dir.join("maps");
        let flows = maps.join(FLOWS_MAP);
        let mut reused = false;
        if flows.exists() {
            match flow_map_mismatch(&flows, max_flows) {
                None => reused = true,
                Some(why) => {
                    warn!(path = %flows.display(), "{why}: removing the pinned maps and links; counting starts over");
                    remove_path(&dir).map_err(|e| io(&dir, e))?;
                }
            }
        }
        let links = dir.join("links");
        for d in [&maps, &links] {
            std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
        }
        if reused {
            info!(path = %dir.display(), "reusing pinned maps: counts carry over from the last agent");
        }
        Ok(Self { maps, links, reused, wanted: HashSet::new() })
    }

    /// Where map `name` is pinned.
    pub fn map_path(&self, name: &str) -> PathBuf {
        self.maps.join(name)
    }

    /// Makes the link pinned as `name` run `program`, or, when none is pinned (or the pinned
    /// one is detached), attaches with `attach` and pins the new link. Returns whether a
    /// pinned link was taken over.
    ///
    /// # Errors
    /// `attach`'s error, or [`DataplaneError::Pin`] when the new link cannot be pinned.
    pub fn attach(
        &mut self,
        name: &str,
        program: BorrowedFd<'_>,
        attach: impl FnOnce() -> Result<FdLink, DataplaneError>,
    ) -> Result<bool, DataplaneError> {
        self.wanted.insert(name.to_owned());
        let path = self.links.join(name);
        match bpf_sys::obj_get(&path) {
            Ok(link) => match bpf_sys::link_update(link.as_fd(), program) {
                Ok(()) => return Ok(true),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "the pinned link cannot take the new program (detached?); attaching afresh");
                    remove_path(&path).map_err(|e| pin_error(&path, e.to_string()))?;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(pin_error(&path, format!("opening the pinned link: {e}"))),
        }
        attach()?
            .pin(&path)
            .map(drop)
            .map_err(|e| pin_error(&path, format!("pinning the link: {e}")))?;
        Ok(false)
    }

    /// Unpins (and so detaches) the links an earlier agent pinned that this one does not use
    /// (an interface no longer given, a hook no longer asked for).
    pub fn remove_unused_links(&self) {
        let Ok(entries) = std::fs::read_dir(&self.links) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.wanted.contains(&name) {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        info!(path = %path.display(), "detached a pinned link this configuration does not use")
                    }
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "cannot remove an unused pinned link")
                    }
                }
            }
        }
    }
}

/// Removes everything pinned under `root` (programs detach, maps are freed once no agent
/// holds them): for uninstalling. Returns whether anything was there.
///
/// # Errors
/// [`DataplaneError::Pin`] when `root` is not on bpffs or cannot be removed.
pub fn remove_all(root: &Path) -> Result<bool, DataplaneError> {
    if !root.exists() {
        return Ok(false);
    }
    check_bpffs(root)?;
    remove_path(root).map_err(|e| pin_error(root, e.to_string()))?;
    Ok(true)
}

/// Why the pinned flow map cannot be reused, if it cannot.
fn flow_map_mismatch(path: &Path, max_flows: u32) -> Option<String> {
    let info = match MapInfo::from_pin(path) {
        Ok(info) => info,
        Err(e) => return Some(format!("the pinned flow map cannot be opened ({e})")),
    };
    let key = size_of::<FlowKey>() as u32;
    let value = size_of::<FlowCounters>() as u32;
    if info.key_size() != key || info.value_size() != value {
        return Some(format!(
            "the pinned flow map has {}-byte keys and {}-byte values, this agent {key} and {value}",
            info.key_size(),
            info.value_size()
        ));
    }
    if info.max_entries() != max_flows {
        return Some(format!(
            "the pinned flow map holds {} entries, --flow-map.max-entries asks for {max_flows}",
            info.max_entries()
        ));
    }
    None
}

/// Fails unless the nearest existing ancestor of `path` is on a bpffs mount.
fn check_bpffs(path: &Path) -> Result<(), DataplaneError> {
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    let fs = nix::sys::statfs::statfs(existing)
        .map_err(|e| pin_error(path, format!("statfs {}: {e}", existing.display())))?;
    if fs.filesystem_type() != nix::sys::statfs::BPF_FS_MAGIC {
        return Err(pin_error(
            path,
            format!(
                "{} is not on a bpffs mount (mount one: `mount -t bpf bpf /sys/fs/bpf`; in a \
                 container, mount the host's /sys/fs/bpf)",
                existing.display()
            ),
        ));
    }
    Ok(())
}

fn remove_path(path: &Path) -> io::Result<()> {
    if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
}

fn pin_error(path: &Path, problem: String) -> DataplaneError {
    DataplaneError::Pin { path: path.to_owned(), problem }
}
