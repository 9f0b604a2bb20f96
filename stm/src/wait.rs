//! Blocking on `retry`: the wait table and the register-then-revalidate handshake.
//!
//! A transaction that retries registers one [`Waiter`] under the address of every TVar it
//! read, in a process-wide table of lock-striped shards (as parking_lot's parking lot does:
//! TVars carry no waiter list, just one bit in their lock word). Then it sets each TVar's
//! `WAITERS` bit and revalidates its reads: if any changed, it does not sleep.
//! A commit that unlocks a TVar whose old word had `WAITERS` set wakes every waiter
//! registered under that address.
//!
//! No wakeup is lost (INV-WAKE): a waiter sets `WAITERS` only with a CAS on an *unlocked*
//! word, and a committer reads the word with the CAS that locks it. Both are read-modify-
//! writes of the same word, so one comes first. If the waiter's CAS comes first, the
//! committer's locking CAS returns the bit (locking keeps it), and the registration (made
//! before the CAS, under the shard lock) is visible to the committer, who wakes us after
//! unlocking. If the locking CAS comes first, the waiter's CAS cannot succeed until the
//! committer unlocks with a new version, so our revalidation (after the CAS) sees it and we
//! do not sleep. Because no bit can appear while a TVar is locked, the committer unlocks
//! with a plain store.
//!
//! The table is keyed by address only: a waiter never dereferences a TVar after it stops
//! waiting, so a TVar may be dropped while waiters are registered under it. A stale entry
//! (its TVar freed, the address reused) can only cause a spurious wakeup.

use std::task::Waker;

use crossbeam_utils::CachePadded;

use crate::lock_word::{is_locked, WAITERS};
use crate::sync::{global, spin_hint, Arc, AtomicBool, AtomicU64, Mutex, Ordering, Thread};
use crate::tvar::Header;

const SHARDS: usize = 64;

type Shard = CachePadded<Mutex<Vec<(usize, Arc<Waiter>)>>>;

struct WaitTable {
    shards: [Shard; SHARDS],
}

impl WaitTable {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self { shards: [const { CachePadded::new(Mutex::new(Vec::new())) }; SHARDS] }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Self { shards: std::array::from_fn(|_| CachePadded::new(Mutex::new(Vec::new()))) }
    }

    fn shard(&self, addr: usize) -> &Shard {
        // TVar cores are at least 8-byte aligned; mix the higher bits in.
        let h = (addr >> 4) ^ (addr >> 12);
        &self.shards[h % SHARDS]
    }
}

global! {
    static TABLE: WaitTable = WaitTable::new();
}

/// Who to wake.
#[derive(Debug)]
enum Target {
    Thread(Thread),
    Task(Waker),
}

/// One blocked transaction: a flag and the thread or task to wake.
#[derive(Debug)]
pub(crate) struct Waiter {
    notified: AtomicBool,
    target: Target,
}

impl Waiter {
    fn notify(&self) {
        // AcqRel swap: Release pairs with the Acquire load in `Registration::is_notified`
        // (the waiter sees everything the committer published), and only the first notifier
        // wakes the target.
        if !self.notified.swap(true, Ordering::AcqRel) {
            match &self.target {
                Target::Thread(t) => t.unpark(),
                Target::Task(w) => w.wake_by_ref(),
            }
        }
    }
}

/// A waiter registered under a set of TVar addresses. Dropping it unregisters it (this is
/// how a cancelled async wait frees its entries).
#[derive(Debug)]
pub(crate) struct Registration {
    waiter: Arc<Waiter>,
    addrs: Vec<usize>,
}

impl Registration {
    /// Registers the current thread (`target = None`) or a task's waker under every header
    /// in `headers` and sets their waiter bits. The caller must revalidate its reads after
    /// this returns and sleep only if they are all unchanged (INV-WAKE).
    pub(crate) fn register(
        headers: impl Iterator<Item = *const Header>,
        waker: Option<&Waker>,
    ) -> Self {
        let target = match waker {
            Some(w) => Target::Task(w.clone()),
            None => Target::Thread(crate::sync::current_thread()),
        };
        let waiter = Arc::new(Waiter { notified: AtomicBool::new(false), target });
        let mut addrs: Vec<usize> = Vec::new();
        for header in headers {
            let addr = header as usize;
            if addrs.contains(&addr) {
                continue;
            }
            addrs.push(addr);
            TABLE.shard(addr).lock().push((addr, waiter.clone()));
            // SAFETY: the caller pinned before reading `header`'s TVar and is still pinned,
            // so the core is alive (INV-RECLAIM); we touch only its atomic lock word.
            let lock = unsafe { &(*header).lock };
            set_waiters_bit(lock);
        }
        Self { waiter, addrs }
    }

    /// A registration that is already notified: the reads changed before we could sleep.
    pub(crate) fn already_woken() -> Self {
        let waiter = Arc::new(Waiter {
            notified: AtomicBool::new(true),
            target: Target::Thread(crate::sync::current_thread()),
        });
        Self { waiter, addrs: Vec::new() }
    }

    /// Whether notifying this registration wakes `waker` (else the future must re-register).
    pub(crate) fn wakes(&self, waker: &Waker) -> bool {
        matches!(&self.waiter.target, Target::Task(w) if w.will_wake(waker))
    }

    /// Whether a commit has woken us.
    pub(crate) fn is_notified(&self) -> bool {
        // Acquire pairs with the AcqRel swap in `Waiter::notify`.
        self.waiter.notified.load(Ordering::Acquire)
    }

    /// Parks the calling thread until notified (spurious unparks loop).
    pub(crate) fn park(&self) {
        while !self.is_notified() {
            crate::sync::park();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        for &addr in &self.addrs {
            let mut shard = TABLE.shard(addr).lock();
            shard.retain(|(a, w)| !(*a == addr && Arc::ptr_eq(w, &self.waiter)));
        }
    }
}

/// Sets `WAITERS` on an unlocked word, waiting while a commit holds the lock (INV-WAKE).
fn set_waiters_bit(lock: &AtomicU64) {
    let mut spins = 0_u32;
    loop {
        // Relaxed: the CAS below re-reads and orders.
        let word = lock.load(Ordering::Relaxed);
        if !is_locked(word) {
            // Release pairs with the Acquire of the CAS that next locks this word in
            // `commit::lock_writes`: a committer that sees the bit sees our entry pushed before
            // (INV-WAKE). Acquire: our revalidation then reads no older word than this one.
            // The CAS is made even if the bit is already set, so that it is our write the
            // committer reads.
            if lock
                .compare_exchange_weak(word, word | WAITERS, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            continue;
        }
        spins += 1;
        if spins < 64 {
            spin_hint();
        } else {
            crate::sync::yield_now();
        }
    }
}

/// Wakes every waiter registered under `header`. Called by a committer whose locking CAS
/// returned a word with `WAITERS` set, after it unlocked.
pub(crate) fn wake_all(header: *const Header) -> usize {
    let addr = header as usize;
    let woken: Vec<Arc<Waiter>> = {
        let mut shard = TABLE.shard(addr).lock();
        let mut woken = Vec::new();
        shard.retain(|(a, w)| {
            if *a == addr {
                woken.push(w.clone());
                false
            } else {
                true
            }
        });
        woken
    };
    // Wake outside the shard lock: an unparked thread's first act is often to relock it.
    for w in &woken {
        w.notify();
    }
    woken.len()
}
