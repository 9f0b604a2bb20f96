//! Every raw system call of the IPC transport, each behind a safe wrapper (Linux only).
//!
//! Keeping them in one module makes them easy to audit: each `unsafe` block below cites
//! INV-SYS-1 (calls whose arguments are integers and a file descriptor the caller keeps
//! open), INV-SYS-2 (calls that read or write a buffer: pointer and length come from one live
//! Rust slice) or INV-FUTEX-1 (the futex word), all in `benches/DESIGN.md`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

use crate::ipc::sync::AtomicU32;

/// Returns the error of the last failed call if `ret` is -1, else `ret`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `memfd_create(name, flags)`: a new anonymous file in memory.
pub(crate) fn memfd_create(name: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: INV-SYS-2: `name` is a live NUL-terminated string the kernel only reads; the
    // other argument is an integer.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), flags) }.into())?;
    // SAFETY: INV-SYS-1: memfd_create succeeded, so `fd` is a descriptor that was just opened
    // for us and that nothing else in this process owns yet: `OwnedFd` may take it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `fcntl(fd, cmd, arg)` for the commands whose argument is an integer (`F_GETFD`,
/// `F_SETFD`, `F_ADD_SEALS`, `F_GET_SEALS`).
pub(crate) fn fcntl_int(fd: BorrowedFd<'_>, cmd: libc::c_int, arg: libc::c_int) -> io::Result<i32> {
    debug_assert!(matches!(
        cmd,
        libc::F_GETFD | libc::F_SETFD | libc::F_ADD_SEALS | libc::F_GET_SEALS
    ));
    // SAFETY: INV-SYS-1: `fd` is borrowed, so it stays open for the call; `cmd` is one of the
    // integer-argument commands (asserted above), so the kernel reads or writes no memory of
    // ours.
    let ret = check(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg) }.into())?;
    Ok(ret as i32)
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<()> {
    let flags = fcntl_int(fd, libc::F_GETFD, 0)?;
    let flags = if cloexec { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    fcntl_int(fd, libc::F_SETFD, flags).map(drop)
}

/// Clears `FD_CLOEXEC` on `fd`, for use between `fork` and `exec` (in a `pre_exec` hook): it
/// allocates nothing and calls only `fcntl`, which is async-signal-safe.
pub(crate) fn clear_cloexec_after_fork(fd: RawFd) -> io::Result<()> {
    // SAFETY: INV-SYS-1: `fd` is one of the descriptors the parent keeps open until `spawn`
    // returns (INV-SPAWN-1), so in the forked child it is open too; F_GETFD and F_SETFD take
    // integers only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above (INV-SYS-1, INV-SPAWN-1).
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `prctl(PR_SET_PDEATHSIG, signal)`: the kernel sends `signal` to this process when the
/// thread that created it exits.
pub(crate) fn set_parent_death_signal(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: INV-SYS-1: PR_SET_PDEATHSIG takes one integer; the unused arguments are zero.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) };
    check(ret.into()).map(drop)
}

/// `recv(fd, buf, MSG_DONTWAIT)`: reads what is there without blocking.
pub(crate) fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: INV-SYS-2: `buf` is a live exclusive slice, and the kernel writes at most
    // `buf.len()` bytes into it; `fd` is borrowed, so open for the call (INV-SYS-1).
    let ret = unsafe {
        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
    };
    check(ret as libc::c_long).map(|n| n as usize)
}

/// `send(fd, buf, MSG_DONTWAIT | MSG_NOSIGNAL)`: writes what fits without blocking; a closed
/// peer gives `EPIPE` instead of a `SIGPIPE`.
pub(crate) fn send_nonblocking(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: INV-SYS-2: `buf` is a live slice the kernel only reads, `buf.len()` bytes at
    // most; `fd` is borrowed, so open for the call (INV-SYS-1).
    let ret = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    check(ret as libc::c_long).map(|n| n as usize)
}

/// `FUTEX_WAIT` (shared, not `FUTEX_PRIVATE_FLAG`: the word may be in memory mapped by
/// several processes): sleeps while `*word == expected`, until a `FUTEX_WAKE` on the same
/// word, the timeout, a signal or a spurious wake-up. Returns at once if `*word != expected`
/// when the kernel checks it (atomically with queueing this thread).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(ptr::null(), |ts| ts as *const libc::timespec);
    // SAFETY: INV-FUTEX-1: `word` is a live, 4-byte aligned `AtomicU32`, which the kernel
    // only reads (atomically); `ts_ptr` is null or points to `ts`, alive until the call
    // returns; the last two arguments are unused by FUTEX_WAIT.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            ptr::null::<u32>(),
            0u32,
        )
    };
    if let Err(e) = check(ret) {
        // EAGAIN: the word had changed; EINTR: a signal; ETIMEDOUT: the timeout. The caller
        // re-checks its condition in every case. Anything else is a bug in the arguments.
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR | libc::ETIMEDOUT) => {}
            _ => panic!("FUTEX_WAIT failed: {e}"),
        }
    }
}

/// `FUTEX_WAKE` (shared): wakes at most one thread sleeping in `FUTEX_WAIT` on `word`, in any
/// process that maps the same page.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: INV-FUTEX-1: `word` is a live, aligned `AtomicU32`; FUTEX_WAKE does not access
    // it, only uses its address as the key of the wait queue. The last three arguments are
    // unused by FUTEX_WAKE.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1i32,
            ptr::null::<libc::timespec>(),
            ptr::null::<u32>(),
            0u32,
        )
    };
    if let Err(e) = check(ret) {
        panic!("FUTEX_WAKE failed: {e}");
    }
}
