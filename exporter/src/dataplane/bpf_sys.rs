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
    sync::mpsc,
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
/// each, in the kernel's order. `cpus` is the number of possible CPUs.
///
/// A map larger than one batch is read by two threads: a scoped helper makes the next
/// `BPF_MAP_LOOKUP_BATCH` call while this thread runs `f` over the batch before, so the
/// kernel's walk of the buckets and `f` overlap instead of adding up (for 100,000 new flows
/// each is about half of a cycle). Two batch buffers circulate between them; the syscalls stay
/// in order, one at a time. If the helper cannot be started, the rest is read on this thread.
///
/// # Errors
/// The syscall's error (the entries of the batches before it have been passed to `f`);
/// `EINVAL` on kernels without batch operations (before 5.6).
pub fn for_each_percpu<K: Pod + Default + Send, V: Pod + Default + Send>(
    map: BorrowedFd<'_>,
    cpus: usize,
    batch: usize,
    mut f: impl FnMut(&K, &[V]),
) -> io::Result<()> {
    debug_assert_eq!(percpu_stride::<V>(), std::mem::size_of::<V>());
    let mut cursor = BatchCursor::new(map);
    let mut first = Batch::new(batch, cpus);
    if cursor.read(&mut first)? {
        first.each(&mut f);
        return Ok(());
    }
    std::thread::scope(|scope| {
        let (filled_tx, filled) = mpsc::sync_channel::<io::Result<(Batch<K, V>, bool)>>(1);
        let (empty, empty_rx) = mpsc::channel::<Batch<K, V>>();
        // The helper continues from a copy of the cursor; this thread's copy is only used if
        // the helper does not start, and then it is where the helper would have begun.
        let mut ahead = cursor;
        let helper = std::thread::Builder::new().name("egressor-read".into()).spawn_scoped(
            scope,
            move || {
                while let Ok(mut b) = empty_rx.recv() {
                    let read = ahead.read(&mut b).map(|done| (b, done));
                    let last = !matches!(read, Ok((_, false)));
                    if filled_tx.send(read).is_err() || last {
                        return;
                    }
                }
            },
        );
        if helper.is_err() {
            first.each(&mut f);
            return read_rest(&mut cursor, &mut first, &mut f);
        }
        // Sent before `first` is gone through: the kernel fills the second batch meanwhile.
        let _ = empty.send(Batch::new(batch, cpus));
        first.each(&mut f);
        let _ = empty.send(first);
        loop {
            let (b, done) = filled
                .recv()
                .map_err(|_| io::Error::other("the batch-reading thread ended early"))??;
            b.each(&mut f);
            if done {
                return Ok(());
            }
            let _ = empty.send(b);
        }
    })
}

/// Reads the remaining batches through `batch` on this thread.
fn read_rest<K: Pod, V: Pod>(
    cursor: &mut BatchCursor<'_>,
    batch: &mut Batch<K, V>,
    f: &mut impl FnMut(&K, &[V]),
) -> io::Result<()> {
    loop {
        let done = cursor.read(batch)?;
        batch.each(f);
        if done {
            return Ok(());
        }
    }
}

/// Where a batched read of a map is: the kernel's opaque batch token (a bucket index for hash
/// maps; 8 bytes cover every map type), `None` before the first call.
#[derive(Clone, Copy)]
struct BatchCursor<'fd> {
    map: BorrowedFd<'fd>,
    token: Option<u64>,
}

impl<'fd> BatchCursor<'fd> {
    fn new(map: BorrowedFd<'fd>) -> Self {
        Self { map, token: None }
    }

    /// Fills `batch` with the next entries; returns whether the map has no more.
    fn read<K: Pod, V: Pod>(&mut self, batch: &mut Batch<K, V>) -> io::Result<bool> {
        let mut token_in = [self.token.unwrap_or(0)];
        let mut token_out = [0u64];
        let mut attr = Attr::new();
        // struct { __aligned_u64 in_batch, out_batch, keys, values; __u32 count, map_fd;
        //          __u64 elem_flags, flags; }
        attr.put_u64(0, if self.token.is_some() { token_in.as_mut_ptr() as u64 } else { 0 });
        attr.put_u64(8, token_out.as_mut_ptr() as u64);
        attr.put_u64(16, batch.keys.as_mut_ptr() as u64);
        attr.put_u64(24, batch.values.as_mut_ptr() as u64);
        attr.put_u32(32, batch.keys.len() as u32);
        attr.put_u32(36, self.map.as_raw_fd() as u32);
        let done = match bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(e) => {
                batch.count = 0;
                return Err(e);
            }
        };
        batch.count = (attr.get_u32(32) as usize).min(batch.keys.len());
        self.token = Some(token_out[0]);
        Ok(done)
    }
}

/// One batch's buffers: keys, and `cpus` values per key.
struct Batch<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
    cpus: usize,
    /// Entries the last read filled.
    count: usize,
}

impl<K: Pod + Default, V: Pod + Default> Batch<K, V> {
    fn new(size: usize, cpus: usize) -> Self {
        Self {
            keys: vec![K::default(); size],
            values: vec![V::default(); size * cpus],
            cpus,
            count: 0,
        }
    }
}

impl<K, V> Batch<K, V> {
    fn each(&self, f: &mut impl FnMut(&K, &[V])) {
        for (key, values) in self.keys[..self.count].iter().zip(self.values.chunks_exact(self.cpus))
        {
            f(key, values);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    const BPF_MAP_TYPE_PERCPU_HASH: u32 = 5;

    fn possible_cpus() -> usize {
        aya::util::nr_cpus().expect("possible CPUs")
    }

    /// A per-CPU hash map of u64 → u64 holding `keys`; CPU c's value of key k is k * 10 + c.
    fn map_with(keys: &[u64], cpus: usize) -> OwnedFd {
        let mut attr = Attr::new();
        // struct { __u32 map_type, key_size, value_size, max_entries, map_flags; … }
        attr.put_u32(0, BPF_MAP_TYPE_PERCPU_HASH);
        attr.put_u32(4, 8);
        attr.put_u32(8, 8);
        attr.put_u32(12, 2048);
        let fd = bpf_ret(BPF_MAP_CREATE, &mut attr).expect("BPF_MAP_CREATE");
        // SAFETY: BPF_MAP_CREATE returned a new descriptor that nothing else owns.
        let map = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        for &k in keys {
            let values: Vec<u64> = (0..cpus as u64).map(|c| k * 10 + c).collect();
            let mut attr = Attr::new();
            // struct { __u32 map_fd; __aligned_u64 key; __aligned_u64 value; __u64 flags; }
            attr.put_u32(0, map.as_raw_fd() as u32);
            attr.put_u64(8, &k as *const u64 as u64);
            attr.put_u64(16, values.as_ptr() as u64);
            bpf(BPF_MAP_UPDATE_ELEM, &mut attr).expect("BPF_MAP_UPDATE_ELEM");
        }
        map
    }

    /// Every entry once, with its values, in the order one thread reading batch after batch
    /// sees them: what the two-thread read must give too.
    #[test]
    fn a_batched_read_passes_every_entry_once_in_the_kernels_order() {
        if !egressor_tests::require_bpf(
            "a_batched_read_passes_every_entry_once_in_the_kernels_order",
        ) {
            return;
        }
        const BATCH: usize = 64;
        let cpus = possible_cpus();
        // Empty, within one batch, exactly one, just over one, exact multiples, a ragged end.
        for n in [0, 1, 63, 64, 65, 128, 640, 1000, 2048] {
            let keys: Vec<u64> = (1..=n as u64).map(|k| k * 7919).collect();
            let map = map_with(&keys, cpus);
            let mut read = Vec::new();
            for_each_percpu::<u64, u64>(map.as_fd(), cpus, BATCH, |k, v| {
                read.push((*k, v.to_vec()))
            })
            .expect("batched read");
            let mut one_thread = Vec::new();
            let mut batch = Batch::<u64, u64>::new(BATCH, cpus);
            read_rest(&mut BatchCursor::new(map.as_fd()), &mut batch, &mut |k: &u64, _: &[u64]| {
                one_thread.push(*k)
            })
            .expect("one-thread read");
            let order: Vec<u64> = read.iter().map(|(k, _)| *k).collect();
            assert_eq!(order, one_thread, "{n} entries: the kernel's order");
            let mut sorted = order.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let mut want = keys.clone();
            want.sort_unstable();
            assert_eq!(sorted, want, "{n} entries: each once");
            assert_eq!(order.len(), n, "{n} entries: none twice");
            for (k, values) in &read {
                let expected: Vec<u64> = (0..cpus as u64).map(|c| k * 10 + c).collect();
                assert_eq!(values, &expected, "key {k}'s per-CPU values");
            }
        }
    }

    #[test]
    fn a_read_error_is_returned() {
        if !egressor_tests::require_bpf("a_read_error_is_returned") {
            return;
        }
        // Not a map: the first batch fails, and `f` is never called.
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        let mut called = false;
        let result =
            for_each_percpu::<u64, u64>(file.as_fd(), possible_cpus(), 64, |_, _| called = true);
        assert!(result.is_err());
        assert!(!called);
    }
}
