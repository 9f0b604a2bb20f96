//! A single-producer single-consumer ring of fixed-size messages in shared memory.
//!
//! # Messages
//!
//! A message is `[u64; W]`, `W` fixed per ring (a const parameter, recorded in the ring's
//! header and checked when an end attaches). Fixed-size slots rather than length-prefixed
//! byte frames, because:
//! - a slot is found from a sequence number alone (`seq % capacity`): no wrap-around
//!   padding, no length to read before the payload, and batch operations are a plain loop;
//! - every word of a slot is an `AtomicU64`, so a slot is never read as plain memory that
//!   the other process may be writing (which would be undefined behaviour even if the value
//!   were thrown away): the ring needs no `unsafe` beyond the one place that views the
//!   mapping as atomics ([`SharedMemory`]);
//! - the messages of the runner's protocols (an operation, an account, an amount, a
//!   transaction id, a reply) are small fixed records: 2 to 4 words cover them, and a
//!   variable-length frame would only add a length word and a branch.
//!
//! # Layout
//!
//! A ring occupies [`ring_bytes`]`::<W>(capacity)` bytes of a [`SharedMemory`] region, at an
//! offset that is a multiple of 128:
//!
//! | line (128 B) | fields | written by | read by |
//! |---|---|---|---|
//! | 0 config | `magic`, `capacity`, `words`; `sender_attached`, `receiver_attached`, `sender_closed`, `receiver_closed` | creator once; each end claims and closes its own flag once | both, rarely (the sender checks `receiver_closed` on each send: the line stays shared) |
//! | 1 | `tail`: sequence number of the next message the sender will publish | sender | receiver |
//! | 2 | `head`: sequence number of the next message the receiver will consume | receiver | sender |
//! | 3 | `receiver_sleeping`: futex word, `1` while the receiver is going to sleep or asleep | receiver sets, sender clears | sender after each publish |
//! | 4 | `sender_sleeping`: futex word, same for the sender | sender sets, receiver clears | receiver after each consume |
//! | 5.. | `capacity * W` slot words | sender, for sequence numbers in `[tail, head + capacity)` | receiver, for `[head, tail)` |
//!
//! Lines are 128 bytes, not 64, because x86 prefetches cache lines in pairs (crossbeam's
//! `CachePadded` does the same). `tail` and `head` are 64-bit counters that never wrap. Each
//! end also keeps its own copy of its counter and a cached copy of the other's, so it reads
//! the other end's line only when its cached view says full (sender) or empty (receiver).
//!
//! # Waiting
//!
//! A blocked [`send`](Sender::send) or [`recv`](Receiver::recv) spins for
//! [`WaitPolicy::spin`], yields [`WaitPolicy::yields`] times, and then sleeps on its futex
//! word with the handshake of INV-RING-3 (`benches/DESIGN.md`):
//!
//! - sleeper: swap `1` into my `*_sleeping` word; `fence(SeqCst)`; re-check the condition
//!   (ring not empty / not full, or peer closed); if it holds, store `0` and go on; else
//!   `FUTEX_WAIT(word, 1)`, then start over.
//! - waker, after every publish (`tail`), consume (`head`) or close: `fence(SeqCst)`; load
//!   the peer's `*_sleeping` word; if it is `1`, swap it to `0` and, if the swap saw `1`,
//!   `FUTEX_WAKE(word)`.
//!
//! The two fences order "store flag, load condition" against "store condition, load flag":
//! at least one side sees the other's store, so either the sleeper does not sleep or the
//! waker sees the flag. Clearing the word *before* the wake makes the kernel's check inside
//! `FUTEX_WAIT` fail if the waker got there first, so a wake-up can't fall between the
//! sleeper's re-check and its sleep. The common case costs the waker one fence and one load
//! of a line nobody writes: no system call unless someone sleeps.
//!
//! The futex is the shared one (no `FUTEX_PRIVATE_FLAG`), since the two ends may be in two
//! processes. Under `--cfg loom` the atomics come from loom and the futex is modelled (see
//! `futex.rs`), and the ring lives in ordinary memory: the loom models at the end of this
//! file check the publication and the handshake.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::time::{Duration, Instant};

use crate::ipc::futex::Futex;
#[cfg(not(loom))]
use crate::ipc::shm::{SharedMemory, ShmSafe};
use crate::ipc::sync::{fence, spin_loop, yield_now, Arc, AtomicU32, AtomicU64, Ordering};
use crate::ipc::{
    Disconnected, RecvTimeoutError, Rx, SendTimeoutError, TryRecvError, TrySendError, Tx,
};

/// "CNCDring", little-endian: marks an initialized ring header.
const MAGIC: u64 = u64::from_le_bytes(*b"CNCDring");

/// The alignment of every shared field group and of every ring.
pub const LINE: usize = 128;

/// Futex word values.
const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

/// How often the spin phase reads the clock.
const SPINS_PER_CLOCK_READ: u32 = 64;

/// One 128-byte line of the header.
#[repr(C, align(128))]
struct Line<T>(T);

/// Line 0 of a ring header: set up once, then read-mostly.
#[repr(C)]
struct Config {
    magic: AtomicU64,
    capacity: AtomicU64,
    words: AtomicU64,
    sender_attached: AtomicU32,
    receiver_attached: AtomicU32,
    sender_closed: AtomicU32,
    receiver_closed: AtomicU32,
}

/// The shared header of a ring (the table in the module doc says who touches what).
#[repr(C)]
pub(crate) struct RingHeader {
    config: Line<Config>,
    tail: Line<AtomicU64>,
    head: Line<AtomicU64>,
    receiver_sleeping: Line<AtomicU32>,
    sender_sleeping: Line<AtomicU32>,
}

// SAFETY: INV-SHM-2: `RingHeader` is `repr(C)`; its fields are `Line`s (`repr(C, align(128))`)
// of `repr(C)` structs of atomics or of single atomics, so it holds atomics and padding only.
#[cfg(not(loom))]
unsafe impl ShmSafe for RingHeader {}

const HEADER_BYTES: usize = size_of::<RingHeader>();

/// The bytes a ring of `capacity` messages of `W` words takes in a shared region (a multiple
/// of [`LINE`]).
pub const fn ring_bytes<const W: usize>(capacity: usize) -> usize {
    let slots = capacity * W * size_of::<u64>();
    HEADER_BYTES + slots.div_ceil(LINE) * LINE
}

/// When a blocked end goes to sleep.
///
/// A blocked [`Sender::send`] or [`Receiver::recv`] first re-checks the ring in a busy loop
/// for `spin`, then yields the CPU `yields` times (re-checking after each), then sleeps on a
/// futex until the other end wakes it. Waking a sleeping process costs tens of microseconds
/// (30-60 us on the reference VMs), so spinning for about that long before sleeping keeps a
/// busy pair of processes out of the kernel, at the price of burning a core while idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// How long to busy-wait (with a spin-loop hint) before yielding.
    pub spin: Duration,
    /// How many times to yield the CPU before sleeping.
    pub yields: u32,
}

impl WaitPolicy {
    /// Sleep as soon as the ring is empty (or full): no spinning, no yielding. For tests that
    /// want the sleep path, and for ends that are expected to idle.
    pub const SLEEP_AT_ONCE: WaitPolicy = WaitPolicy { spin: Duration::ZERO, yields: 0 };
}

impl Default for WaitPolicy {
    /// Spin for 20 us, yield 4 times, then sleep. (Under loom: yield once, then sleep.)
    fn default() -> WaitPolicy {
        if cfg!(loom) {
            WaitPolicy { spin: Duration::ZERO, yields: 1 }
        } else {
            WaitPolicy { spin: Duration::from_micros(20), yields: 4 }
        }
    }
}

/// Counters of one ring end: how often it slept and how often it woke the other end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// `FUTEX_WAIT` calls made by this end (each is one sleep, or one failed attempt to sleep
    /// when the other end changed the word first).
    pub sleeps: u64,
    /// `FUTEX_WAKE` calls made by this end.
    pub wakes: u64,
}

/// Which end of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Sender,
    Receiver,
}

/// Where a ring's header and slots are, and what keeps them alive.
#[derive(Clone)]
struct RingMem {
    #[cfg(not(loom))]
    shm: Arc<SharedMemory>,
    #[cfg(not(loom))]
    offset: usize,
    #[cfg(loom)]
    model: Arc<ModelRing>,
    /// `capacity * W`, validated when the end attached.
    slot_words: usize,
}

/// A ring in ordinary memory, with one modelled futex per sleeping word (loom only).
#[cfg(loom)]
struct ModelRing {
    header: RingHeader,
    slots: Box<[AtomicU64]>,
    receiver_futex: Futex,
    sender_futex: Futex,
}

impl RingMem {
    #[cfg(not(loom))]
    fn header(&self) -> &RingHeader {
        self.shm.view(self.offset)
    }

    #[cfg(not(loom))]
    fn slots(&self) -> &[AtomicU64] {
        self.shm.words(self.offset + HEADER_BYTES, self.slot_words)
    }

    /// The futex on which `end` sleeps.
    #[cfg(not(loom))]
    fn futex(&self, end: End) -> &Futex {
        let _ = end;
        &Futex::KERNEL
    }

    #[cfg(loom)]
    fn header(&self) -> &RingHeader {
        &self.model.header
    }

    #[cfg(loom)]
    fn slots(&self) -> &[AtomicU64] {
        &self.model.slots[..self.slot_words]
    }

    #[cfg(loom)]
    fn futex(&self, end: End) -> &Futex {
        match end {
            End::Sender => &self.model.sender_futex,
            End::Receiver => &self.model.receiver_futex,
        }
    }
}

/// Writes a fresh header's configuration. The memory must be zero (fresh) and no end may be
/// attached yet.
fn init_header(h: &RingHeader, capacity: usize, words: usize) -> io::Result<()> {
    if !capacity.is_power_of_two() {
        return Err(invalid("ring capacity must be a power of two"));
    }
    let c = &h.config.0;
    // Relaxed: only this thread touches the header until the Release store of `magic`.
    if c.magic.load(Ordering::Relaxed) != 0 || h.tail.0.load(Ordering::Relaxed) != 0 {
        return Err(invalid("ring memory is already in use"));
    }
    // Relaxed: published by the Release store of `magic` below.
    c.capacity.store(capacity as u64, Ordering::Relaxed);
    c.words.store(words as u64, Ordering::Relaxed);
    // Release: pairs with the Acquire load of `magic` in `attach`, which then sees the
    // configuration above.
    c.magic.store(MAGIC, Ordering::Release);
    Ok(())
}

/// Validates the header of `mem` for an end of `W`-word messages and claims that end.
/// Returns the capacity.
fn attach<const W: usize>(mem: &mut RingMem, end: End) -> io::Result<u64> {
    assert!(W > 0, "messages must have at least one word");
    let c = &mem.header().config.0;
    // Acquire: pairs with the Release store of `magic` in `init_header`.
    if c.magic.load(Ordering::Acquire) != MAGIC {
        return Err(invalid("no ring at this offset"));
    }
    // Relaxed: ordered by the Acquire load of `magic` above.
    let capacity = c.capacity.load(Ordering::Relaxed);
    let words = c.words.load(Ordering::Relaxed);
    if words != W as u64 {
        return Err(invalid("ring message size differs from this end's"));
    }
    if !capacity.is_power_of_two() {
        return Err(invalid("corrupt ring capacity"));
    }
    let slot_words = usize::try_from(capacity)
        .ok()
        .and_then(|c| c.checked_mul(W))
        .ok_or_else(|| invalid("corrupt ring capacity"))?;
    #[cfg(not(loom))]
    if ring_bytes::<W>(capacity as usize) > mem.shm.len().saturating_sub(mem.offset) {
        return Err(invalid("ring does not fit in its shared region"));
    }
    let claim = match end {
        End::Sender => &c.sender_attached,
        End::Receiver => &c.receiver_attached,
    };
    // Relaxed: the flag only detects a second attachment of the same end; it orders nothing.
    if claim.swap(1, Ordering::Relaxed) != 0 {
        return Err(invalid("this end of the ring is already attached"));
    }
    mem.slot_words = slot_words;
    Ok(capacity)
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Creates a ring of `capacity` messages (a power of two) in a fresh shared region of its
/// own, and returns both ends: hand them to two threads, or keep one and pass the region to a
/// child process (which is what [`Mesh`](crate::ipc::process::Mesh) does, for many rings at
/// once).
///
/// # Errors
///
/// If `capacity` is not a power of two, or the shared region cannot be created.
///
/// # Examples
///
/// ```
/// use concord_benches::ipc::ring;
///
/// let (mut tx, mut rx) = ring::channel::<2>(8)?;
/// let consumer = std::thread::spawn(move || {
///     (0..1000u64).map(|_| rx.recv().unwrap()[0]).sum::<u64>()
/// });
/// for i in 0..1000 {
///     tx.send([i, 0]).unwrap();
/// }
/// assert_eq!(consumer.join().unwrap(), 999 * 1000 / 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(not(loom))]
pub fn channel<const W: usize>(capacity: usize) -> io::Result<(Sender<W>, Receiver<W>)> {
    if !capacity.is_power_of_two() {
        return Err(invalid("ring capacity must be a power of two"));
    }
    let shm = Arc::new(SharedMemory::create("concord-ring", ring_bytes::<W>(capacity))?);
    init::<W>(&shm, 0, capacity)?;
    Ok((Sender::attach(shm.clone(), 0)?, Receiver::attach(shm, 0)?))
}

/// Under loom: a ring in ordinary memory, with modelled futexes (create it inside the model).
#[cfg(loom)]
pub fn channel<const W: usize>(capacity: usize) -> io::Result<(Sender<W>, Receiver<W>)> {
    let line = |v| Line(AtomicU64::new(v));
    let flag = || Line(AtomicU32::new(0));
    let header = RingHeader {
        config: Line(Config {
            magic: AtomicU64::new(0),
            capacity: AtomicU64::new(0),
            words: AtomicU64::new(0),
            sender_attached: AtomicU32::new(0),
            receiver_attached: AtomicU32::new(0),
            sender_closed: AtomicU32::new(0),
            receiver_closed: AtomicU32::new(0),
        }),
        tail: line(0),
        head: line(0),
        receiver_sleeping: flag(),
        sender_sleeping: flag(),
    };
    init_header(&header, capacity, W)?;
    let model = Arc::new(ModelRing {
        header,
        slots: (0..capacity * W).map(|_| AtomicU64::new(0)).collect(),
        receiver_futex: Futex::new(),
        sender_futex: Futex::new(),
    });
    let mut tx_mem = RingMem { model: model.clone(), slot_words: 0 };
    let mut rx_mem = RingMem { model, slot_words: 0 };
    let capacity = attach::<W>(&mut tx_mem, End::Sender)?;
    attach::<W>(&mut rx_mem, End::Receiver)?;
    Ok((Sender::new(tx_mem, capacity), Receiver::new(rx_mem, capacity)))
}

/// Initializes a ring of `capacity` messages of `W` words at byte `offset` of `shm`, which
/// must be a multiple of [`LINE`], with [`ring_bytes`]`::<W>(capacity)` bytes there that are
/// still zero (as the region was created). Do it before any end attaches.
///
/// # Errors
///
/// If `capacity` is not a power of two, the ring does not fit or is not aligned, or the
/// memory there already holds a ring.
#[cfg(not(loom))]
pub fn init<const W: usize>(shm: &SharedMemory, offset: usize, capacity: usize) -> io::Result<()> {
    if offset % LINE != 0 || offset.saturating_add(ring_bytes::<W>(capacity)) > shm.len() {
        return Err(invalid("ring does not fit in its shared region"));
    }
    init_header(shm.view(offset), capacity, W)
}

/// The producing end of a ring: `Send`, not `Clone`, so one thread at a time publishes.
///
/// ```
/// fn is_send<T: Send>() {}
/// is_send::<concord_benches::ipc::ring::Sender<2>>();
/// ```
///
/// ```compile_fail
/// fn is_clone<T: Clone>() {}
/// is_clone::<concord_benches::ipc::ring::Sender<2>>();
/// ```
pub struct Sender<const W: usize> {
    mem: RingMem,
    capacity: u64,
    /// The next sequence number to publish: our own copy of the shared `tail` (only we
    /// write it).
    tail: u64,
    /// The last `head` we read; the true one is at least this.
    head_seen: u64,
    policy: WaitPolicy,
    stats: RingStats,
}

/// The consuming end of a ring: `Send`, not `Clone`, so one thread at a time consumes.
///
/// ```
/// fn is_send<T: Send>() {}
/// is_send::<concord_benches::ipc::ring::Receiver<2>>();
/// ```
///
/// ```compile_fail
/// fn is_clone<T: Clone>() {}
/// is_clone::<concord_benches::ipc::ring::Receiver<2>>();
/// ```
pub struct Receiver<const W: usize> {
    mem: RingMem,
    capacity: u64,
    /// The next sequence number to consume: our own copy of the shared `head`.
    head: u64,
    /// The last `tail` we read; the true one is at least this.
    tail_seen: u64,
    policy: WaitPolicy,
    stats: RingStats,
}

impl<const W: usize> fmt::Debug for Sender<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ring::Sender")
            .field("words", &W)
            .field("capacity", &self.capacity)
            .field("tail", &self.tail)
            .field("policy", &self.policy)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<const W: usize> fmt::Debug for Receiver<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ring::Receiver")
            .field("words", &W)
            .field("capacity", &self.capacity)
            .field("head", &self.head)
            .field("policy", &self.policy)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Waits until `ready()` holds: spins, yields, then sleeps on `word` with the handshake of
/// INV-RING-3. Returns `false` if `deadline` passed first.
fn block_until(
    word: &AtomicU32,
    futex: &Futex,
    policy: WaitPolicy,
    stats: &mut RingStats,
    deadline: Option<Instant>,
    ready: impl Fn() -> bool,
) -> bool {
    if ready() {
        return true;
    }
    if !policy.spin.is_zero() {
        // The clock is first read after one round of spinning: most waits end before that.
        let mut start = None;
        loop {
            for _ in 0..SPINS_PER_CLOCK_READ {
                spin_loop();
                if ready() {
                    return true;
                }
            }
            let now = Instant::now();
            if now.duration_since(*start.get_or_insert(now)) >= policy.spin {
                break;
            }
        }
    }
    for _ in 0..policy.yields {
        yield_now();
        if ready() {
            return true;
        }
    }
    loop {
        // Step 1. Relaxed: the SeqCst fence below orders it before the re-check. A swap, not a
        // store: as a read-modify-write it comes after the other end's last clearing swap in
        // the word's modification order, which loom (whose modification order is only
        // partial for plain stores) needs to see; on x86 it costs one locked instruction, on
        // the sleeping path only.
        word.swap(SLEEPING, Ordering::Relaxed);
        // Step 2. SeqCst fence: pairs with the SeqCst fence in `wake_peer` on the other end
        // (INV-RING-3): either the re-check below sees the other end's publish / consume /
        // close, or the other end's load of `word` sees SLEEPING.
        fence(Ordering::SeqCst);
        // Step 3: re-check.
        if ready() {
            // Relaxed: nobody waits for this value; at worst the other end makes one
            // useless FUTEX_WAKE because it saw SLEEPING first.
            word.store(AWAKE, Ordering::Relaxed);
            return true;
        }
        let timeout = match deadline {
            None => None,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => {
                    // Relaxed: as above.
                    word.store(AWAKE, Ordering::Relaxed);
                    return false;
                }
            },
        };
        // Step 4: sleep while the word is still SLEEPING. The other end clears it before
        // its FUTEX_WAKE, so a wake-up that comes before we are queued makes this return at
        // once (INV-RING-3). Spurious returns just go round the loop.
        stats.sleeps += 1;
        futex.wait(word, SLEEPING, timeout);
    }
}

/// The waker's half of INV-RING-3, run after every publish, consume and close: wakes the
/// other end if it is (going to) sleep on `word`.
#[inline]
fn wake_peer(word: &AtomicU32, futex: &Futex, stats: &mut RingStats) {
    // SeqCst fence: pairs with the SeqCst fence of step 2 in `block_until` on the other end:
    // either that end's re-check sees the store we just made, or the load below sees its
    // SLEEPING.
    fence(Ordering::SeqCst);
    // Relaxed (load and swap): ordered after our store by the fence above; the swap clears the
    // word before the wake-up, and the kernel's FUTEX_WAIT check (under its bucket lock)
    // sees the cleared word if it comes after our FUTEX_WAKE. The load first keeps the line
    // shared while nobody sleeps.
    if word.load(Ordering::Relaxed) == SLEEPING && word.swap(AWAKE, Ordering::Relaxed) == SLEEPING {
        stats.wakes += 1;
        futex.wake(word);
    }
}

impl<const W: usize> Sender<W> {
    /// Attaches to the sending end of the ring at byte `offset` of `shm` (initialized by
    /// [`init`], in this process or the one that created the region).
    ///
    /// # Errors
    ///
    /// If there is no ring of `W`-word messages there, or its sending end is already
    /// attached (in any process).
    #[cfg(not(loom))]
    pub fn attach(shm: Arc<SharedMemory>, offset: usize) -> io::Result<Sender<W>> {
        if offset % LINE != 0 || offset.saturating_add(HEADER_BYTES) > shm.len() {
            return Err(invalid("no ring at this offset"));
        }
        let mut mem = RingMem { shm, offset, slot_words: 0 };
        let capacity = attach::<W>(&mut mem, End::Sender)?;
        Ok(Sender::new(mem, capacity))
    }

    fn new(mem: RingMem, capacity: u64) -> Sender<W> {
        let h = mem.header();
        // Relaxed: both are zero in a fresh ring and only we write `tail`; `head` is a
        // lower bound, refreshed with Acquire before any slot is reused.
        let tail = h.tail.0.load(Ordering::Relaxed);
        let head_seen = h.head.0.load(Ordering::Relaxed);
        Sender {
            mem,
            capacity,
            tail,
            head_seen,
            policy: WaitPolicy::default(),
            stats: RingStats::default(),
        }
    }

    /// The number of messages the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Sets when a blocked send goes to sleep.
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.policy = policy;
    }

    /// This end's sleep and wake counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Free slots as far as we know, after re-reading `head` if fewer than `want` are free.
    #[inline]
    fn room(&mut self, want: u64) -> u64 {
        let mut room = self.capacity - (self.tail - self.head_seen);
        if room < want {
            // Acquire: pairs with the Release store of `head` in `Receiver::consumed`: the
            // receiver's reads of the slots we may now overwrite happen before our writes
            // (INV-RING-2).
            self.head_seen = self.mem.header().head.0.load(Ordering::Acquire);
            room = self.capacity - (self.tail - self.head_seen);
        }
        room
    }

    fn receiver_closed(&self) -> bool {
        // Relaxed: the flag carries no data, and a stale 0 only delays the error.
        self.mem.header().config.0.receiver_closed.load(Ordering::Relaxed) != 0
    }

    /// Writes `msgs` into the slots from `tail` on (the caller checked there is room) and
    /// publishes them with one store of `tail`.
    #[inline]
    fn publish(&mut self, msgs: &[[u64; W]]) {
        let mask = self.capacity - 1;
        let slots = self.mem.slots();
        for (seq, msg) in (self.tail..).zip(msgs) {
            let base = (seq & mask) as usize * W;
            for (slot, &word) in slots[base..base + W].iter().zip(msg) {
                // Relaxed: published by the Release store of `tail` below (INV-RING-2).
                slot.store(word, Ordering::Relaxed);
            }
        }
        self.tail += msgs.len() as u64;
        let h = self.mem.header();
        // Release: pairs with the Acquire loads of `tail` in `Receiver::available` and in
        // the receiver's wait condition: the slot writes above happen before its reads.
        h.tail.0.store(self.tail, Ordering::Release);
        wake_peer(&h.receiver_sleeping.0, self.mem.futex(End::Receiver), &mut self.stats);
    }

    /// Sends `msg` if there is room, without blocking.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the ring is full, [`TrySendError::Disconnected`] if the
    /// receiver was dropped (then `msg` is not sent).
    #[inline]
    pub fn try_send(&mut self, msg: [u64; W]) -> Result<(), TrySendError> {
        if self.receiver_closed() {
            return Err(TrySendError::Disconnected);
        }
        if self.room(1) == 0 {
            return Err(TrySendError::Full);
        }
        self.publish(std::slice::from_ref(&msg));
        Ok(())
    }

    /// Sends `msg`, waiting for room if the ring is full.
    ///
    /// # Errors
    ///
    /// If the receiver was dropped (then `msg` is not sent).
    #[inline]
    pub fn send(&mut self, msg: [u64; W]) -> Result<(), Disconnected> {
        loop {
            match self.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected) => return Err(Disconnected),
                Err(TrySendError::Full) => {
                    self.wait_for_room(None);
                }
            }
        }
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if the ring stayed full, or
    /// [`SendTimeoutError::Disconnected`] if the receiver was dropped.
    pub fn send_timeout(
        &mut self,
        msg: [u64; W],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        // `None` (wait for ever) if the deadline is beyond what `Instant` can represent.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected) => return Err(SendTimeoutError::Disconnected),
                Err(TrySendError::Full) => {
                    if !self.wait_for_room(deadline) {
                        return Err(SendTimeoutError::Timeout);
                    }
                }
            }
        }
    }

    /// Sends every message of `msgs` in order, publishing as many at a time as there is room
    /// for (one store of `tail` and one wake-up check per group), waiting when the ring is
    /// full.
    ///
    /// # Errors
    ///
    /// If the receiver was dropped; a prefix of `msgs` may have been sent.
    pub fn send_batch(&mut self, msgs: &[[u64; W]]) -> Result<(), Disconnected> {
        let mut rest = msgs;
        while !rest.is_empty() {
            if self.receiver_closed() {
                return Err(Disconnected);
            }
            let room = self.room(rest.len() as u64);
            if room == 0 {
                self.wait_for_room(None);
                continue;
            }
            let (now, later) = rest.split_at((room as usize).min(rest.len()));
            self.publish(now);
            rest = later;
        }
        Ok(())
    }

    /// Blocks until the ring has room or the receiver is gone; `false` on timeout.
    fn wait_for_room(&mut self, deadline: Option<Instant>) -> bool {
        let (tail, capacity) = (self.tail, self.capacity);
        let mem = &self.mem;
        let h = mem.header();
        block_until(
            &h.sender_sleeping.0,
            mem.futex(End::Sender),
            self.policy,
            &mut self.stats,
            deadline,
            // Acquire: pairs with the Release store of `head` in `Receiver::consumed`
            // (INV-RING-2). Relaxed for the flag: it carries no data.
            || {
                tail - h.head.0.load(Ordering::Acquire) < capacity
                    || h.config.0.receiver_closed.load(Ordering::Relaxed) != 0
            },
        )
    }
}

impl<const W: usize> Drop for Sender<W> {
    fn drop(&mut self) {
        let h = self.mem.header();
        // Release: pairs with the Acquire load of `sender_closed` in `Receiver::available`:
        // a receiver that sees the flag sees every message we published.
        h.config.0.sender_closed.store(1, Ordering::Release);
        wake_peer(&h.receiver_sleeping.0, self.mem.futex(End::Receiver), &mut self.stats);
    }
}

impl<const W: usize> Receiver<W> {
    /// Attaches to the receiving end of the ring at byte `offset` of `shm` (initialized by
    /// [`init`], in this process or the one that created the region).
    ///
    /// # Errors
    ///
    /// If there is no ring of `W`-word messages there, or its receiving end is already
    /// attached (in any process).
    #[cfg(not(loom))]
    pub fn attach(shm: Arc<SharedMemory>, offset: usize) -> io::Result<Receiver<W>> {
        if offset % LINE != 0 || offset.saturating_add(HEADER_BYTES) > shm.len() {
            return Err(invalid("no ring at this offset"));
        }
        let mut mem = RingMem { shm, offset, slot_words: 0 };
        let capacity = attach::<W>(&mut mem, End::Receiver)?;
        Ok(Receiver::new(mem, capacity))
    }

    fn new(mem: RingMem, capacity: u64) -> Receiver<W> {
        let h = mem.header();
        // Relaxed: only we write `head`; `tail` is a lower bound, refreshed with Acquire
        // before any slot is read.
        let head = h.head.0.load(Ordering::Relaxed);
        let tail_seen = h.tail.0.load(Ordering::Relaxed).max(head);
        Receiver {
            mem,
            capacity,
            head,
            tail_seen,
            policy: WaitPolicy::default(),
            stats: RingStats::default(),
        }
    }

    /// The number of messages the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Sets when a blocked receive goes to sleep.
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.policy = policy;
    }

    /// This end's sleep and wake counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// How many messages are ready, re-reading `tail` if fewer than `want` are known;
    /// `Err` if none are and the sender is gone.
    #[inline]
    fn available(&mut self, want: u64) -> Result<u64, TryRecvError> {
        if self.tail_seen - self.head >= want {
            return Ok(self.tail_seen - self.head);
        }
        let h = self.mem.header();
        // Acquire: pairs with the Release store of `tail` in `Sender::publish`: the slot
        // writes happen before our reads (INV-RING-2).
        self.tail_seen = h.tail.0.load(Ordering::Acquire);
        if self.tail_seen != self.head {
            return Ok(self.tail_seen - self.head);
        }
        // Acquire: pairs with the Release store of `sender_closed` in `Sender::drop`, which
        // comes after its last publish: if we see the flag, the load below sees the final
        // `tail`.
        if h.config.0.sender_closed.load(Ordering::Acquire) == 0 {
            return Err(TryRecvError::Empty);
        }
        // Acquire: as above (pairs with the Release store of `tail` in `Sender::publish`).
        self.tail_seen = h.tail.0.load(Ordering::Acquire);
        if self.tail_seen != self.head {
            Ok(self.tail_seen - self.head)
        } else {
            Err(TryRecvError::Disconnected)
        }
    }

    /// Reads the message with sequence number `seq` (which `available` showed is published).
    #[inline]
    fn read(&self, seq: u64) -> [u64; W] {
        let base = (seq & (self.capacity - 1)) as usize * W;
        let slots = &self.mem.slots()[base..base + W];
        // Relaxed: ordered after the publishing Release store of `tail` by the Acquire load
        // in `available` (INV-RING-2).
        std::array::from_fn(|i| slots[i].load(Ordering::Relaxed))
    }

    /// Frees the slots up to `head` for the sender.
    #[inline]
    fn consumed(&mut self, head: u64) {
        self.head = head;
        let h = self.mem.header();
        // Release: pairs with the Acquire loads of `head` in `Sender::room` and in the
        // sender's wait condition: our reads of the freed slots happen before the sender
        // overwrites them (INV-RING-2).
        h.head.0.store(head, Ordering::Release);
        wake_peer(&h.sender_sleeping.0, self.mem.futex(End::Sender), &mut self.stats);
    }

    /// Takes the next message if there is one, without blocking.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if there is none yet, [`TryRecvError::Disconnected`] if there
    /// is none and the sender was dropped.
    #[inline]
    pub fn try_recv(&mut self) -> Result<[u64; W], TryRecvError> {
        self.available(1)?;
        let msg = self.read(self.head);
        self.consumed(self.head + 1);
        Ok(msg)
    }

    /// Takes the next message, waiting for one if the ring is empty.
    ///
    /// # Errors
    ///
    /// If the ring is empty and the sender was dropped.
    #[inline]
    pub fn recv(&mut self) -> Result<[u64; W], Disconnected> {
        loop {
            match self.try_recv() {
                Ok(msg) => return Ok(msg),
                Err(TryRecvError::Disconnected) => return Err(Disconnected),
                Err(TryRecvError::Empty) => {
                    self.wait_for_data(None);
                }
            }
        }
    }

    /// Takes the next message, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came, [`RecvTimeoutError::Disconnected`] if
    /// the ring is empty and the sender was dropped.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<[u64; W], RecvTimeoutError> {
        // `None` (wait for ever) if the deadline is beyond what `Instant` can represent.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.try_recv() {
                Ok(msg) => return Ok(msg),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {
                    if !self.wait_for_data(deadline) {
                        return Err(RecvTimeoutError::Timeout);
                    }
                }
            }
        }
    }

    /// Passes up to `max` ready messages to `f`, in order, then frees their slots with one
    /// store of `head` (and one wake-up check). Does not block. Returns how many it passed.
    ///
    /// If `f` panics, the batch is not consumed: the next receive sees it again.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), when no message is ready.
    pub fn try_recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut([u64; W]),
    ) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        let n = self.available(max as u64)?.min(max as u64);
        for seq in self.head..self.head + n {
            f(self.read(seq));
        }
        self.consumed(self.head + n);
        Ok(n as usize)
    }

    /// Like [`try_recv_batch`](Self::try_recv_batch), but waits until at least one message
    /// is ready.
    ///
    /// # Errors
    ///
    /// If the ring is empty and the sender was dropped.
    pub fn recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut([u64; W]),
    ) -> Result<usize, Disconnected> {
        loop {
            match self.try_recv_batch(max, &mut f) {
                Ok(n) => return Ok(n),
                Err(TryRecvError::Disconnected) => return Err(Disconnected),
                Err(TryRecvError::Empty) => {
                    self.wait_for_data(None);
                }
            }
        }
    }

    /// Blocks until a message is ready or the sender is gone; `false` on timeout.
    fn wait_for_data(&mut self, deadline: Option<Instant>) -> bool {
        let head = self.head;
        let mem = &self.mem;
        let h = mem.header();
        block_until(
            &h.receiver_sleeping.0,
            mem.futex(End::Receiver),
            self.policy,
            &mut self.stats,
            deadline,
            // Acquire: pairs with the Release store of `tail` in `Sender::publish`, and with
            // the Release store of `sender_closed` in `Sender::drop`.
            || {
                h.tail.0.load(Ordering::Acquire) != head
                    || h.config.0.sender_closed.load(Ordering::Acquire) != 0
            },
        )
    }
}

impl<const W: usize> Drop for Receiver<W> {
    fn drop(&mut self) {
        let h = self.mem.header();
        // Relaxed: the flag carries no data; `wake_peer`'s fence orders it before the check
        // of the sender's sleeping word (INV-RING-3).
        h.config.0.receiver_closed.store(1, Ordering::Relaxed);
        wake_peer(&h.sender_sleeping.0, self.mem.futex(End::Sender), &mut self.stats);
    }
}

impl<const W: usize> Tx<W> for Sender<W> {
    fn send(&mut self, msg: [u64; W]) -> Result<(), Disconnected> {
        Sender::send(self, msg)
    }

    fn try_send(&mut self, msg: [u64; W]) -> Result<(), TrySendError> {
        Sender::try_send(self, msg)
    }

    fn send_timeout(&mut self, msg: [u64; W], timeout: Duration) -> Result<(), SendTimeoutError> {
        Sender::send_timeout(self, msg, timeout)
    }

    fn send_batch(&mut self, msgs: &[[u64; W]]) -> Result<(), Disconnected> {
        Sender::send_batch(self, msgs)
    }
}

impl<const W: usize> Rx<W> for Receiver<W> {
    fn recv(&mut self) -> Result<[u64; W], Disconnected> {
        Receiver::recv(self)
    }

    fn try_recv(&mut self) -> Result<[u64; W], TryRecvError> {
        Receiver::try_recv(self)
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<[u64; W], RecvTimeoutError> {
        Receiver::recv_timeout(self, timeout)
    }

    fn recv_batch<F: FnMut([u64; W])>(&mut self, max: usize, f: F) -> Result<usize, Disconnected> {
        Receiver::recv_batch(self, max, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::thread;

    /// 1M sequence-numbered messages through a ring of 8, both ends sleeping at once when
    /// blocked, so both sleep often: every message arrives, once, in order, untorn.
    #[test]
    fn million_messages_in_order_through_a_tiny_ring() {
        const N: u64 = if cfg!(miri) { 1_000 } else { 1_000_000 };
        let (mut tx, mut rx) = channel::<2>(8).unwrap();
        tx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
        rx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
        let producer = thread::spawn(move || {
            for i in 0..N {
                tx.send([i, !i]).unwrap();
            }
            tx.stats()
        });
        for i in 0..N {
            let msg = rx.recv().unwrap();
            assert_eq!(msg, [i, !i], "message {i}");
        }
        assert_eq!(rx.recv(), Err(Disconnected), "the sender is gone after N messages");
        let tx_stats = producer.join().unwrap();
        let rx_stats = rx.stats();
        eprintln!("sender {tx_stats:?}, receiver {rx_stats:?}");
        // The sleep path really ran (with SLEEP_AT_ONCE, any empty or full ring sleeps), and
        // wake-ups were issued; otherwise this test would not be testing the handshake.
        assert!(rx_stats.sleeps + tx_stats.sleeps > 0);
        assert!(rx_stats.wakes + tx_stats.wakes > 0);
    }

    /// The same with the batch operations and the default wait policy.
    #[test]
    fn batches_in_order() {
        const N: u64 = 200_000;
        let (mut tx, mut rx) = channel::<3>(16).unwrap();
        let producer = thread::spawn(move || {
            let mut next = 0;
            while next < N {
                let k = (next % 37 + 1).min(N - next);
                let batch: Vec<[u64; 3]> = (next..next + k).map(|i| [i, i * 3, !i]).collect();
                tx.send_batch(&batch).unwrap();
                next += k;
            }
        });
        let mut expected = 0;
        let mut check = |m: [u64; 3]| {
            assert_eq!(m, [expected, expected * 3, !expected]);
            expected += 1;
        };
        while let Ok(n) = rx.recv_batch(5, &mut check) {
            assert!((1..=5).contains(&n));
        }
        assert_eq!(expected, N);
        producer.join().unwrap();
    }

    #[test]
    fn try_operations_report_full_empty_and_disconnected() {
        let (mut tx, mut rx) = channel::<1>(4).unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        for i in 0..4 {
            tx.try_send([i]).unwrap();
        }
        assert_eq!(tx.try_send([4]), Err(TrySendError::Full));
        assert_eq!(tx.send_timeout([4], Duration::from_millis(20)), Err(SendTimeoutError::Timeout));
        assert_eq!(rx.try_recv(), Ok([0]));
        tx.try_send([4]).unwrap();
        let mut got = Vec::new();
        assert_eq!(rx.try_recv_batch(10, |m| got.push(m[0])), Ok(4));
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(rx.recv_timeout(Duration::from_millis(20)), Err(RecvTimeoutError::Timeout));
        tx.send([5]).unwrap();
        drop(tx);
        // Messages sent before the drop are still delivered, then the end is reported.
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok([5]), "a deadline past `Instant`'s range");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Err(RecvTimeoutError::Disconnected));

        let (mut tx, rx) = channel::<1>(2).unwrap();
        drop(rx);
        assert_eq!(tx.try_send([0]), Err(TrySendError::Disconnected));
        assert_eq!(tx.send([0]), Err(Disconnected));
    }

    /// A blocked sender and a blocked receiver are woken by the other end's drop.
    #[test]
    fn drops_wake_sleepers() {
        let (mut tx, rx) = channel::<1>(1).unwrap();
        tx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
        tx.send([1]).unwrap();
        let blocked = thread::spawn(move || tx.send([2]));
        thread::sleep(Duration::from_millis(50));
        drop(rx);
        assert_eq!(blocked.join().unwrap(), Err(Disconnected));

        let (tx, mut rx) = channel::<1>(1).unwrap();
        rx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
        let blocked = thread::spawn(move || rx.recv());
        thread::sleep(Duration::from_millis(50));
        drop(tx);
        assert_eq!(blocked.join().unwrap(), Err(Disconnected));
    }

    #[test]
    fn attach_checks_the_header() {
        let shm = Arc::new(SharedMemory::create("concord-test", 2 * ring_bytes::<2>(4)).unwrap());
        assert!(init::<2>(&shm, 0, 3).is_err(), "capacity must be a power of two");
        assert!(init::<2>(&shm, 64, 4).is_err(), "offset must be line-aligned");
        assert!(init::<2>(&shm, ring_bytes::<2>(4), 64).is_err(), "must fit");
        assert!(Sender::<2>::attach(shm.clone(), 0).is_err(), "not initialized yet");
        init::<2>(&shm, 0, 4).unwrap();
        assert!(init::<2>(&shm, 0, 4).is_err(), "initialized twice");
        assert!(Sender::<3>::attach(shm.clone(), 0).is_err(), "wrong message size");
        let _tx = Sender::<2>::attach(shm.clone(), 0).unwrap();
        assert!(Sender::<2>::attach(shm.clone(), 0).is_err(), "second sender");
        let _rx = Receiver::<2>::attach(shm.clone(), 0).unwrap();
        assert!(Receiver::<2>::attach(shm, 0).is_err(), "second receiver");
    }

    /// The ring's layout: five 128-byte lines of header, nothing shared between them.
    #[test]
    fn layout() {
        assert_eq!(HEADER_BYTES, 5 * LINE);
        assert_eq!(std::mem::align_of::<RingHeader>(), LINE);
        assert_eq!(ring_bytes::<2>(8), 5 * LINE + LINE);
        assert_eq!(ring_bytes::<2>(1024), 5 * LINE + 16 * 1024);
    }
}

/// Loom models of the ring: publication (INV-RING-2) and the sleep handshake (INV-RING-3).
///
/// Run with `RUSTFLAGS="--cfg loom" cargo test -p concord-benches --lib --release -- ipc`.
/// The ring is the real code with loom's atomics; only the futex is modelled (`futex.rs`):
/// a lost wake-up shows as a deadlock, which loom reports.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::thread;

    std::thread_local! {
        static EXECUTIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Checks `f` under loom, with at most `preemptions` preemptions per execution (`None`:
    /// every execution) unless `LOOM_MAX_PREEMPTIONS` says otherwise, and prints how many
    /// executions it explored.
    fn model(preemptions: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = preemptions;
        }
        EXECUTIONS.with(|n| n.set(0));
        // Loom runs every execution on this OS thread, so a thread-local counts them all.
        builder.check(move || {
            EXECUTIONS.with(|n| n.set(n.get() + 1));
            f();
        });
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("?");
        eprintln!("{name}: {} executions", EXECUTIONS.with(|n| n.get()));
    }

    /// (a) The producer sends 3 messages through a ring of 2, the consumer receives them in
    /// order and untorn (each is `[i, !i]`, so a stale or half-written slot would show),
    /// then sees the disconnect. Both ends sleep at once when blocked, so the ring wraps and
    /// either end may sleep (and must be woken). Preemption bound 3: 44,550 executions, a
    /// few seconds (bound 4: 407,111 executions, about 30 s; both pass).
    #[test]
    fn ipc_publish_consume_in_order() {
        model(Some(3), || {
            let (mut tx, mut rx) = channel::<2>(2).unwrap();
            tx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
            rx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
            let producer = thread::spawn(move || {
                for i in 0..3u64 {
                    tx.send([i, !i]).unwrap();
                }
            });
            for i in 0..3u64 {
                assert_eq!(rx.recv().unwrap(), [i, !i]);
            }
            assert!(rx.recv().is_err());
            producer.join().unwrap();
        });
    }

    /// (b1) A consumer that sleeps on an empty ring is woken by a send: `recv` must return
    /// the message (a lost wake-up would leave it asleep: loom reports a deadlock).
    /// Exhaustive (no preemption bound), as are the models below.
    #[test]
    fn ipc_empty_ring_sleeper_is_woken_by_send() {
        model(None, || {
            let (mut tx, mut rx) = channel::<1>(1).unwrap();
            rx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
            let consumer = thread::spawn(move || {
                let msg = rx.recv().unwrap();
                (msg, rx)
            });
            tx.send([7]).unwrap();
            let (msg, _rx) = consumer.join().unwrap();
            assert_eq!(msg, [7]);
            drop(tx);
        });
    }

    /// (b2) A producer that sleeps on a full ring is woken by a receive: the second `send`
    /// into a ring of 1 must complete once the consumer takes the first message.
    #[test]
    fn ipc_full_ring_sleeper_is_woken_by_recv() {
        model(None, || {
            let (mut tx, mut rx) = channel::<1>(1).unwrap();
            tx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
            tx.send([1]).unwrap();
            let producer = thread::spawn(move || {
                tx.send([2]).unwrap();
                tx
            });
            assert_eq!(rx.recv().unwrap(), [1]);
            let _tx = producer.join().unwrap();
            assert_eq!(rx.try_recv(), Ok([2]));
        });
    }

    /// (c) Closing wakes: a consumer asleep on an empty ring returns `Disconnected` when the
    /// sender is dropped, and a producer asleep on a full ring when the receiver is.
    #[test]
    fn ipc_drop_wakes_the_sleeper() {
        model(None, || {
            let (tx, mut rx) = channel::<1>(1).unwrap();
            rx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
            let consumer = thread::spawn(move || rx.recv());
            drop(tx);
            assert!(consumer.join().unwrap().is_err());
        });
        model(None, || {
            let (mut tx, rx) = channel::<1>(1).unwrap();
            tx.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
            tx.send([1]).unwrap();
            let producer = thread::spawn(move || tx.send([2]));
            drop(rx);
            assert!(producer.join().unwrap().is_err());
        });
    }
}
