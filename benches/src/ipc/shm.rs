//! Memory shared between processes: a sealed memfd, mapped `MAP_SHARED`, seen only as atomics.
//!
//! [`SharedMemory::create`] makes an anonymous file (`memfd_create`), sizes it, seals its size
//! (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) and maps all of it read-write. Another
//! process gets the same memory by inheriting the descriptor across `exec` and calling
//! [`SharedMemory::from_fd`], which maps it again (at another address) after checking the
//! seals. The file lives as long as some process has it open or mapped.
//!
//! The memory is never seen as bytes: code reads and writes it only through `&AtomicU32` and
//! `&AtomicU64` views ([`view`](SharedMemory::view), [`words`](SharedMemory::words)), because
//! another process may write any byte at any time (INV-SHM-2 in `benches/DESIGN.md`).

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::mem::{align_of, size_of};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memmap2::{MmapOptions, MmapRaw};

use crate::ipc::sync::AtomicU64;
use crate::ipc::sys;

/// The seals every shared region carries: its size can never change again.
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// Types that may be viewed in place inside a [`SharedMemory`].
///
/// # Safety
///
/// An implementor must be `#[repr(C)]` and consist only of `AtomicU32`/`AtomicU64` fields
/// (possibly nested in other `ShmSafe` types) and padding, so that (INV-SHM-2):
/// - every bit pattern is a valid value (fresh memory is zero; a faulty peer may write
///   anything), and
/// - every access through a shared reference is an atomic operation, which is what another
///   process's concurrent writes require.
pub(crate) unsafe trait ShmSafe: Sync {}

/// An anonymous shared-memory file (memfd) and a read-write `MAP_SHARED` mapping of all of it.
pub struct SharedMemory {
    file: File,
    map: MmapRaw,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("fd", &self.file)
            .field("addr", &self.map.as_ptr())
            .field("len", &self.map.len())
            .finish()
    }
}

impl SharedMemory {
    /// Creates a zero-filled shared region of `len` bytes (rounded up to a whole page by the
    /// kernel's mapping, but `len` is what [`len`](Self::len) reports). The descriptor has
    /// `FD_CLOEXEC` set: a child inherits it only if the spawner clears the flag in the child.
    ///
    /// # Errors
    ///
    /// If `len` is zero, or `memfd_create`, `ftruncate`, sealing or `mmap` fails.
    pub fn create(name: &str, len: usize) -> io::Result<SharedMemory> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty shared region"));
        }
        let name = CString::new(name)?;
        let fd = sys::memfd_create(&name, libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)?;
        let file = File::from(fd);
        file.set_len(len as u64)?;
        sys::fcntl_int(file.as_fd(), libc::F_ADD_SEALS, SEALS)?;
        SharedMemory::map(file)
    }

    /// Maps a region created by [`create`](Self::create), typically in another process that
    /// inherited `fd`.
    ///
    /// # Errors
    ///
    /// If `fd` is not a memfd whose size is sealed (so that it could shrink under the
    /// mapping), or if `mmap` fails.
    pub fn from_fd(fd: OwnedFd) -> io::Result<SharedMemory> {
        SharedMemory::map(File::from(fd))
    }

    fn map(file: File) -> io::Result<SharedMemory> {
        let seals = sys::fcntl_int(file.as_fd(), libc::F_GET_SEALS, 0)?;
        if seals & (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW)
            != libc::F_SEAL_SHRINK | libc::F_SEAL_GROW
        {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "shared region is not sealed"));
        }
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "region too large"))?;
        let map = MmapOptions::new().len(len).map_raw(&file)?;
        Ok(SharedMemory { file, map })
    }

    /// The region's size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the region is empty (never: [`create`](Self::create) refuses that).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The memfd, for passing to a child process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The `T` at byte `offset`.
    ///
    /// # Panics
    ///
    /// If `offset` is not a multiple of `T`'s alignment or `T` does not fit in the region
    /// there.
    pub(crate) fn view<T: ShmSafe>(&self, offset: usize) -> &T {
        self.check(offset, size_of::<T>(), align_of::<T>());
        let ptr = self.map.as_ptr().wrapping_add(offset).cast::<T>();
        // SAFETY: (1) in bounds and aligned: checked above (INV-SHM-3), the mapping being page-
        // aligned; (2) valid while `&self` lives: `self.map` keeps the mapping and the file is
        // sealed against shrinking (INV-SHM-1); (3) any bytes are a valid `T: ShmSafe`, which
        // every process accesses only atomically, and no `&mut` to it exists (INV-SHM-2).
        unsafe { &*ptr }
    }

    /// The `len` consecutive `AtomicU64` words starting at byte `offset`.
    ///
    /// # Panics
    ///
    /// If `offset` is not 8-byte aligned or the words do not fit in the region.
    pub(crate) fn words(&self, offset: usize, len: usize) -> &[AtomicU64] {
        let bytes = len.checked_mul(size_of::<AtomicU64>()).expect("word count overflows");
        self.check(offset, bytes, align_of::<AtomicU64>());
        let ptr = self.map.as_ptr().wrapping_add(offset).cast::<AtomicU64>();
        // SAFETY: as in `view`: in bounds and aligned (checked above, INV-SHM-3), alive and
        // backed for the lifetime of `&self` (INV-SHM-1), and `AtomicU64` is valid for every
        // bit pattern and accessed only atomically (INV-SHM-2).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    fn check(&self, offset: usize, size: usize, align: usize) {
        let end = offset.checked_add(size).expect("offset overflows");
        assert!(
            end <= self.map.len() && offset % align == 0,
            "view of {size} bytes at offset {offset} (alignment {align}) outside a shared region of {} bytes",
            self.map.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::sync::Ordering;

    #[test]
    fn regions_are_zeroed_sealed_and_shared_between_mappings() {
        let a = SharedMemory::create("concord-test", 4096).unwrap();
        assert_eq!(a.len(), 4096);
        let words = a.words(0, 512);
        // Relaxed: one thread (the second mapping below is read by the same thread too).
        assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        words[7].store(42, Ordering::Relaxed);
        // A second mapping of the same file (as a child process would make) sees the store.
        let b = SharedMemory::from_fd(a.fd().try_clone_to_owned().unwrap()).unwrap();
        assert_eq!(b.words(56, 1)[0].load(Ordering::Relaxed), 42);
        // The size is sealed.
        let file = File::from(a.fd().try_clone_to_owned().unwrap());
        assert!(file.set_len(8192).is_err());
        assert!(file.set_len(100).is_err());
    }

    #[test]
    fn unsealed_files_are_refused() {
        let name = CString::new("concord-unsealed").unwrap();
        let fd = sys::memfd_create(&name, libc::MFD_CLOEXEC).unwrap();
        let file = File::from(fd);
        file.set_len(4096).unwrap();
        assert!(SharedMemory::from_fd(file.into()).is_err());
    }

    #[test]
    #[should_panic(expected = "outside a shared region")]
    fn views_are_bounds_checked() {
        let a = SharedMemory::create("concord-test", 64).unwrap();
        let _ = a.words(64, 1);
    }
}
