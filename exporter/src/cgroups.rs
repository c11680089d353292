//! Host attribution: cgroup id → cgroup path → workload name.
//!
//! The kernel keys flows by `bpf_skb_cgroup_id`, which is the inode number of the socket's
//! cgroup v2 directory. [`CgroupResolver`] opens the directory straight from the id
//! (`open_by_handle_at` with a kernfs file handle, as systemd and bpftool do; it needs
//! CAP_DAC_READ_SEARCH) and falls back to walking the tree, then names the path's workload:
//! - a container (`docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
//!   `libpod-<id>.scope`, or a bare 64-hex-digit directory) → `container/<first 12 hex>`;
//! - a systemd unit (`*.service`, `*.scope`) → the unit's name;
//! - anything else → the cgroup path relative to the root, e.g. `/`, `/batch/job-7`.
//!
//! Kubernetes attribution (pod, workload) builds on the same path in a later step.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::error::ConfigError;

/// Label value for a cgroup id that no longer exists in the tree (the cgroup was removed
/// before the agent saw it).
pub const UNKNOWN_WORKLOAD: &str = "unknown";

/// Finds the cgroup v2 mount point in `/proc/self/mountinfo` (on hybrid systems such as
/// this one it is `/sys/fs/cgroup/unified`, on unified ones `/sys/fs/cgroup`).
///
/// # Errors
/// [`ConfigError::CgroupPath`] when no cgroup2 file system is mounted.
pub fn find_cgroup2_mount() -> Result<PathBuf, ConfigError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    cgroup2_mount_in(&mountinfo).ok_or_else(|| ConfigError::CgroupPath {
        path: PathBuf::from("(auto)"),
        problem: "no cgroup2 file system is mounted; mount one or pass --cgroup.path".into(),
    })
}

/// The mount point of the first cgroup2 entry of a mountinfo text (proc(5): fields up to
/// " - ", then the file system type).
fn cgroup2_mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        (fs.split_whitespace().next()? == "cgroup2")
            .then(|| mount.split_whitespace().nth(4).map(unescape_octal))?
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_octal(s: &str) -> PathBuf {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// Checks that `path` is a cgroup v2 directory the agent can attach to and read.
///
/// # Errors
/// [`ConfigError::CgroupPath`] naming the problem.
pub fn check_cgroup_dir(path: &Path) -> Result<(), ConfigError> {
    let problem = |problem: String| ConfigError::CgroupPath { path: path.to_owned(), problem };
    let meta = std::fs::metadata(path).map_err(|e| problem(e.to_string()))?;
    if !meta.is_dir() {
        return Err(problem("not a directory".into()));
    }
    std::fs::read_dir(path).map_err(|e| problem(format!("cannot list it: {e}")))?;
    if !path.join("cgroup.procs").exists() {
        return Err(problem("not a cgroup directory (no cgroup.procs)".into()));
    }
    if path.join("tasks").exists() {
        return Err(problem("a cgroup v1 hierarchy; eBPF cgroup hooks need cgroup v2".into()));
    }
    Ok(())
}

/// Maps cgroup ids to workload names, rescanning the tree when it meets an unknown id.
pub struct CgroupResolver {
    root: PathBuf,
    /// The cgroup2 root, open for `open_by_handle_at`; `None` once the kernel refused it.
    root_dir: Option<std::fs::File>,
    /// cgroup id → (path relative to the root, cycle it was last asked for). Entries not
    /// asked for in [`FORGET_AFTER_CYCLES`] are dropped: every pod brings new cgroups, and
    /// a cgroup still alive is found again (one `open_by_handle_at`) if it is asked for.
    names: HashMap<u64, (Arc<str>, u64), foldhash::fast::RandomState>,
    unknown: Arc<str>,
    /// Read cycle, and the last cycle in which the tree was walked.
    generation: u64,
    scanned_in: Option<u64>,
}

impl CgroupResolver {
    /// A resolver for the cgroup tree under `root` (the attach point).
    pub fn new(root: PathBuf) -> Self {
        // File handles only mean cgroup ids on the cgroup2 file system itself.
        let is_cgroup2 = nix::sys::statfs::statfs(&root)
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        Self {
            root_dir: if is_cgroup2 { std::fs::File::open(&root).ok() } else { None },
            root,
            names: HashMap::default(),
            unknown: UNKNOWN_WORKLOAD.into(),
            generation: 0,
            scanned_in: None,
        }
    }

    /// Starts a new read cycle: ids unknown in an earlier cycle may be looked for again.
    pub fn next_cycle(&mut self) {
        self.generation += 1;
        if self.generation.is_multiple_of(FORGET_AFTER_CYCLES) {
            let oldest = self.generation - FORGET_AFTER_CYCLES;
            self.names.retain(|_, (_, used)| *used >= oldest);
        }
    }

    /// The read cycle, counted by [`CgroupResolver::next_cycle`].
    pub fn cycle(&self) -> u64 {
        self.generation
    }

    /// cgroup paths held (for tests of the bound).
    pub fn cached(&self) -> usize {
        self.names.len()
    }

    /// The workload name of cgroup `id`. Without `open_by_handle_at`, walks the tree at most
    /// once per cycle, so ids of cgroups removed before the agent saw them cost one walk per
    /// cycle, not one each.
    pub fn resolve(&mut self, id: u64) -> Arc<str> {
        match self.resolve_path(id) {
            Some(path) => workload_name(Path::new(path.trim_start_matches('/'))).into(),
            None => self.unknown.clone(),
        }
    }

    /// The path of cgroup `id` relative to the root (`/` for the root itself), cached; `None`
    /// when it is not found (see [`CgroupResolver::resolve`] for the cost).
    pub fn resolve_path(&mut self, id: u64) -> Option<Arc<str>> {
        let now = self.generation;
        if let Some((path, used)) = self.names.get_mut(&id) {
            *used = now;
            return Some(path.clone());
        }
        if let Some(dir) = &self.root_dir {
            match path_of_cgroup_id(dir, id) {
                Ok(Some(path)) => {
                    let relative = path.strip_prefix(&self.root).unwrap_or(&path);
                    let path: Arc<str> = relative_text(relative).into();
                    self.names.insert(id, (path.clone(), now));
                    return Some(path);
                }
                // No such cgroup (any more): walking the tree would not find it either.
                Ok(None) => return None,
                Err(e) => {
                    tracing::info!(error = %e, "cgroup ids resolve by walking the tree (open_by_handle_at needs CAP_DAC_READ_SEARCH)");
                    self.root_dir = None;
                }
            }
        }
        if self.scanned_in != Some(self.generation) {
            self.rescan();
            if let Some((path, used)) = self.names.get_mut(&id) {
                *used = now;
                return Some(path.clone());
            }
        }
        None
    }

    fn rescan(&mut self) {
        self.scanned_in = Some(self.generation);
        for entry in walkdir::WalkDir::new(&self.root).into_iter().filter_map(Result::ok) {
            if !entry.file_type().is_dir() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let id = meta.ino();
            if self.names.contains_key(&id) {
                continue;
            }
            let relative = entry.path().strip_prefix(&self.root).unwrap_or(entry.path());
            self.names.insert(id, (relative_text(relative).into(), self.generation));
        }
    }
}

/// Read cycles after which a cgroup path nobody asked for is forgotten (about 10 minutes at
/// the default 10 s interval).
pub const FORGET_AFTER_CYCLES: u64 = 64;

/// A relative cgroup path as `/a/b` (`/` for the root).
fn relative_text(relative: &Path) -> String {
    format!("/{}", relative.to_string_lossy().trim_start_matches('/'))
}

/// `handle_type` of kernfs file handles (`FILEID_KERNFS`, include/linux/exportfs.h): the
/// handle is the 64-bit kernfs node id, which is what `bpf_skb_cgroup_id` returns.
const FILEID_KERNFS: i32 = 0xfe;

/// The absolute path of cgroup `id` under the cgroup2 mount `root`: `Ok(None)` when no such
/// cgroup exists; an error when the kernel refuses file handles (no CAP_DAC_READ_SEARCH,
/// or a file system without them).
fn path_of_cgroup_id(root: &std::fs::File, id: u64) -> std::io::Result<Option<PathBuf>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    /// `struct file_handle` with room for the 8-byte kernfs id.
    #[repr(C)]
    struct KernfsHandle {
        handle_bytes: u32,
        handle_type: i32,
        id: u64,
    }
    let handle = KernfsHandle { handle_bytes: 8, handle_type: FILEID_KERNFS, id };
    // SAFETY: open_by_handle_at reads a file_handle of `handle_bytes` payload from a valid
    // pointer; the returned descriptor, if any, is ours to own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            root.as_raw_fd(),
            &handle as *const KernfsHandle,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESTALE) | Some(libc::ENOENT) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: a descriptor the kernel just returned to us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map(Some)
}

/// Names the workload that owns cgroup `relative` (a path below the cgroup root).
pub fn workload_name(relative: &Path) -> String {
    for component in relative.iter().rev() {
        let c = component.to_string_lossy();
        if let Some(id) = container_id(&c) {
            return format!("container/{}", &id[..12]);
        }
    }
    if let Some(last) = relative.file_name().map(|c| c.to_string_lossy())
        && (last.ends_with(".service") || last.ends_with(".scope"))
    {
        return last.into_owned();
    }
    format!("/{}", relative.to_string_lossy())
}

/// The container id in a cgroup directory name, if it is a container's.
fn container_id(component: &str) -> Option<&str> {
    const PREFIXES: [&str; 5] = ["docker-", "cri-containerd-", "crio-", "libpod-", ""];
    let stem = component.strip_suffix(".scope").unwrap_or(component);
    PREFIXES.iter().find_map(|p| {
        let id = stem.strip_prefix(p)?;
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_follow_the_documented_rules() {
        let id = "0123456789abcdef".repeat(4);
        let cases = [
            ("", "/"),
            ("system.slice/nginx.service", "nginx.service"),
            ("user.slice/user-0.slice/session-3.scope", "session-3.scope"),
            (&format!("system.slice/docker-{id}.scope") as &str, "container/0123456789ab"),
            (
                &format!("kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope"),
                "container/0123456789ab",
            ),
            (&format!("docker/{id}"), "container/0123456789ab"),
            ("batch/job-7", "/batch/job-7"),
        ];
        for (path, want) in cases {
            assert_eq!(workload_name(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn cgroup_ids_open_by_handle() {
        // Needs root (CAP_DAC_READ_SEARCH) and a cgroup2 mount; the resolver falls back to
        // walking the tree otherwise, which the test below covers.
        let Ok(root) = find_cgroup2_mount() else {
            eprintln!("SKIPPED cgroup_ids_open_by_handle: no cgroup2 mount");
            return;
        };
        let dir = root.join(format!("egressor-handle-{}", std::process::id()));
        if std::fs::create_dir(&dir).is_err() {
            let required = std::env::var("EGRESSOR_REQUIRE_BPF").as_deref() == Ok("1");
            assert!(!required, "cannot create a cgroup under {}", root.display());
            eprintln!("SKIPPED cgroup_ids_open_by_handle: cannot create a cgroup (not root)");
            return;
        }
        let id = std::fs::metadata(&dir).unwrap().ino();
        let root_dir = std::fs::File::open(&root).unwrap();
        let found = path_of_cgroup_id(&root_dir, id);
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(found.unwrap(), Some(dir.clone()));
        assert_eq!(path_of_cgroup_id(&root_dir, id).unwrap(), None, "removed: no such cgroup");
        let mut resolver = CgroupResolver::new(root);
        assert_eq!(&*resolver.resolve(id), UNKNOWN_WORKLOAD);
    }

    #[test]
    fn finds_cgroup2_in_mountinfo_hybrid_and_unified() {
        let hybrid = "30 24 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                      35 30 0:31 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount_in(hybrid).unwrap(), Path::new("/sys/fs/cgroup/unified"));
        let spaced = "35 30 0:31 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount_in(spaced).unwrap(), Path::new("/mnt/my cg"));
        assert!(cgroup2_mount_in("1 0 0:1 / / rw - ext4 /dev/vda rw\n").is_none());
    }

    #[test]
    fn resolver_names_real_directories_by_inode() {
        let dir = std::env::temp_dir().join(format!("egressor-cg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("app.service")).unwrap();
        let ino = std::fs::metadata(dir.join("app.service")).unwrap().ino();
        let mut r = CgroupResolver::new(dir.clone());
        assert_eq!(&*r.resolve(u64::MAX), UNKNOWN_WORKLOAD);
        // Created after this cycle's walk: found in the next cycle.
        std::fs::create_dir_all(dir.join("late.service")).unwrap();
        let late = std::fs::metadata(dir.join("late.service")).unwrap().ino();
        assert_eq!(&*r.resolve(late), UNKNOWN_WORKLOAD);
        r.next_cycle();
        assert_eq!(&*r.resolve(late), "late.service");
        assert_eq!(&*r.resolve(ino), "app.service");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn paths_nobody_asks_for_are_forgotten_and_found_again() {
        let dir = std::env::temp_dir().join(format!("egressor-cg-forget-{}", std::process::id()));
        for i in 0..50 {
            std::fs::create_dir_all(dir.join(format!("pod-{i}.scope"))).unwrap();
        }
        let keep = std::fs::metadata(dir.join("pod-0.scope")).unwrap().ino();
        let mut r = CgroupResolver::new(dir.clone());
        assert_eq!(&*r.resolve(keep), "pod-0.scope");
        assert_eq!(r.cached(), 51, "the walk cached every directory (and the root)");
        for _ in 0..FORGET_AFTER_CYCLES * 2 {
            r.next_cycle();
            r.resolve(keep);
        }
        assert_eq!(r.cached(), 1, "only the one still asked for");
        let other = std::fs::metadata(dir.join("pod-7.scope")).unwrap().ino();
        assert_eq!(&*r.resolve(other), "pod-7.scope", "a live cgroup is found again");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
