//! The `bpf(2)` commands aya 0.14 does not expose where egressor needs them:
//! `BPF_MAP_LOOKUP_BATCH` (kernel ≥ 5.6; one syscall per few thousand flows instead of two
//! per flow) and `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (hash maps since 5.14; removes an idle flow
//! and returns its final counters in one step, so no byte counted between a read and a delete
//! is lost) for per-CPU hash maps; `BPF_OBJ_GET` and `BPF_LINK_UPDATE` (5.7) to swap the
//! program of a pinned cgroup or TCX link without detaching it.
//!
//! Attribute layouts follow `union bpf_attr` in `include/uapi/linux/bpf.h`.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

use aya::Pod;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// `union bpf_attr` is far smaller than this; the kernel accepts a larger, zero-tailed buffer.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Self([0; 128])
    }
    fn put_u32(&mut self, offset: usize, v: u32) {
        self.0[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, offset: usize, v: u64) {
        self.0[offset..offset + 8].copy_from_slice(&v.to_ne_bytes());
    }
    fn get_u32(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.0[offset..offset + 4].try_into().expect("4 bytes"))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<()> {
    bpf_ret(cmd, attr).map(|_| ())
}

fn bpf_ret(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable, zero-initialised bpf_attr of sufficient size; the
    // pointers inside it come from live slices sized for the command.
    let ret = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, std::mem::size_of::<Attr>())
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Opens the object pinned at `path` in bpffs (`BPF_OBJ_GET`).
///
/// # Errors
/// `ENOENT` when nothing is pinned there; the syscall's error otherwise.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = Attr::new();
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; }
    attr.put_u64(0, c.as_ptr() as u64);
    let fd = bpf_ret(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: BPF_OBJ_GET returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Makes `link` run `program` instead of its current program, atomically: no packet passes
/// without one of the two running (`BPF_LINK_UPDATE`).
///
/// # Errors
/// The syscall's error: `ENOLINK` when the link was detached (its cgroup or interface is
/// gone), `EINVAL` when the program's type does not fit the link.
pub fn link_update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr::new();
    // struct { __u32 link_fd; __u32 new_prog_fd; __u32 flags; __u32 old_prog_fd; }
    attr.put_u32(0, link.as_raw_fd() as u32);
    attr.put_u32(4, program.as_raw_fd() as u32);
    bpf(BPF_LINK_UPDATE, &mut attr)
}

/// Size of one CPU's value slot: the kernel rounds per-CPU values up to 8 bytes.
pub fn percpu_stride<V>() -> usize {
    std::mem::size_of::<V>().next_multiple_of(8)
}

/// Atomically looks up and deletes `key`, filling `values` with one `V` per possible CPU.
/// Returns `Ok(false)` when the key does not exist.
///
/// # Errors
/// The syscall's error (`EINVAL`/`ENOTSUPP` on kernels before 5.14).
pub fn lookup_and_delete<K: Pod, V: Pod>(
    map: BorrowedFd<'_>,
    key: &K,
    values: &mut [V],
) -> io::Result<bool> {
    debug_assert_eq!(percpu_stride::<V>(), std::mem::size_of::<V>());
    let mut attr = Attr::new();
    // struct { __u32 map_fd; __aligned_u64 key; __aligned_u64 value; __u64 flags; }
    attr.put_u32(0, map.as_raw_fd() as u32);
    attr.put_u64(8, key as *const K as u64);
    attr.put_u64(16, values.as_mut_ptr() as u64);
    match bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads every entry of a per-CPU hash map in batches, calling `f(key, per_cpu_values)` for
/// each. `cpus` is the number of possible CPUs.
///
/// # Errors
/// The syscall's error; `EINVAL` on kernels without batch operations (before 5.6).
pub fn for_each_percpu<K: Pod + Default, V: Pod + Default>(
    map: BorrowedFd<'_>,
    cpus: usize,
    batch: usize,
    mut f: impl FnMut(&K, &[V]),
) -> io::Result<()> {
    debug_assert_eq!(percpu_stride::<V>(), std::mem::size_of::<V>());
    let mut keys = vec![K::default(); batch];
    let mut values = vec![V::default(); batch * cpus];
    // The batch token is opaque (a bucket index for hash maps); 8 bytes cover every map type.
    let mut token_in = [0u64; 1];
    let mut token_out = [0u64; 1];
    let mut first = true;
    loop {
        let mut attr = Attr::new();
        // struct { __aligned_u64 in_batch, out_batch, keys, values; __u32 count, map_fd;
        //          __u64 elem_flags, flags; }
        attr.put_u64(0, if first { 0 } else { token_in.as_mut_ptr() as u64 });
        attr.put_u64(8, token_out.as_mut_ptr() as u64);
        attr.put_u64(16, keys.as_mut_ptr() as u64);
        attr.put_u64(24, values.as_mut_ptr() as u64);
        attr.put_u32(32, batch as u32);
        attr.put_u32(36, map.as_raw_fd() as u32);
        let result = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let done = match &result {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(_) => return result,
        };
        let count = attr.get_u32(32) as usize;
        for i in 0..count.min(batch) {
            f(&keys[i], &values[i * cpus..(i + 1) * cpus]);
        }
        if done {
            return Ok(());
        }
        token_in = token_out;
        first = false;
    }
}
