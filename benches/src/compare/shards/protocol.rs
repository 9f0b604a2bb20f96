//! The messages: four `u64` words each, the ring's fixed slot size.
//!
//! Word 0 holds the [`Kind`] in its low byte and a per-kind flag byte above it; words 1-3
//! are the arguments `a`, `b`, `c`. The sender is never in the message: every channel of the
//! mesh connects one ordered pair of processes, so the receiver knows who sent what it reads
//! (and a transaction is named by its client, which has one operation in flight at a time).
//!
//! | kind | from → to | flags | a, b, c |
//! |---|---|---|---|
//! | `Start`, `Stop`, `Report` | coordinator → worker | | |
//! | `Ready` | worker → coordinator | | |
//! | `Stopped` | worker → coordinator | | operations done, CPU µs since `Start`, resident bytes |
//! | `Bucket` | worker → coordinator | | latency value (ns), count |
//! | `Check` | worker → coordinator | tag (per workload) | check data |
//! | `ReportEnd` | worker → coordinator | | |
//! | `LockX` | client → shard | `ONE_SHOT`, accounts (1-2) << 1 | account, account, deltas (two `i32`) |
//! | `LockS` | client → shard | `ONE_SHOT` | |
//! | `Unlock` | client → shard | | |
//! | `Increment`, `Get` | client → owner | | key |
//! | `Push` | producer → queue owner | | item |
//! | `Pop` | consumer → queue owner | | |
//! | `ProducerDone` | producer → queue owner | | |
//! | `Granted` | shard → client | | shard sum (shared lock) or 0 |
//! | `Done` | owner → client | | value after the operation |
//! | `Value` | owner → client | `PRESENT` | value |
//! | `Item` | queue owner → consumer | | item |
//!
//! Kinds from 64 up are replies: the answer to the one request the receiving worker has in
//! flight. Anything that does not decode (an unknown kind, bits set beyond the flag byte) is
//! an error, reported by the worker that read it: a peer that misbehaves can fail the run,
//! never corrupt it silently.

use std::fmt;

/// One message as it travels: the slot of a ring, the frame of a socket.
pub(crate) type Words = [u64; WORDS];

/// Words per message.
pub(crate) const WORDS: usize = 4;

/// `LockX` / `LockS`: apply and release at once (the last lock of a transaction).
pub(crate) const ONE_SHOT: u8 = 1;
/// `Value`: the key exists.
pub(crate) const PRESENT: u8 = 1;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Coordinator: start running operations.
    Start = 1,
    /// Coordinator: finish the operation in flight, then report `Stopped`.
    Stop = 2,
    /// Coordinator: send the meter and the check data.
    Report = 3,
    /// Worker: set up, waiting for `Start`.
    Ready = 16,
    /// Worker: no operation in flight any more; `a` operations done, `b` microseconds of
    /// CPU time since `Start`, `c` bytes resident.
    Stopped = 17,
    /// Worker: one latency histogram bucket.
    Bucket = 18,
    /// Worker: one record of check data.
    Check = 19,
    /// Worker: the report is complete.
    ReportEnd = 20,
    /// Client: lock accounts exclusively and apply the deltas.
    LockX = 32,
    /// Client: lock the whole shard, shared, and return its sum.
    LockS = 33,
    /// Client: release this client's lock on the shard.
    Unlock = 34,
    /// Client: increment key `a` (the counter: `a` is 0).
    Increment = 35,
    /// Client: read key `a`.
    Get = 36,
    /// Producer: push item `a`, answered when it is in the queue.
    Push = 37,
    /// Consumer: pop an item, answered when there is one.
    Pop = 38,
    /// Producer: this producer pushes nothing more.
    ProducerDone = 39,
    /// Shard: the lock is granted (and applied).
    Granted = 64,
    /// Owner: done; `a` is the value after the operation.
    Done = 65,
    /// Owner: the value of the key read.
    Value = 66,
    /// Queue owner: the item popped.
    Item = 67,
}

impl Kind {
    const ALL: [Kind; 20] = [
        Kind::Start,
        Kind::Stop,
        Kind::Report,
        Kind::Ready,
        Kind::Stopped,
        Kind::Bucket,
        Kind::Check,
        Kind::ReportEnd,
        Kind::LockX,
        Kind::LockS,
        Kind::Unlock,
        Kind::Increment,
        Kind::Get,
        Kind::Push,
        Kind::Pop,
        Kind::ProducerDone,
        Kind::Granted,
        Kind::Done,
        Kind::Value,
        Kind::Item,
    ];

    /// Whether this is the reply to a request.
    pub(crate) fn is_reply(self) -> bool {
        self as u8 >= 64
    }
}

/// A decoded message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Msg {
    pub(crate) kind: Kind,
    pub(crate) flags: u8,
    pub(crate) a: u64,
    pub(crate) b: u64,
    pub(crate) c: u64,
}

/// A message that does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadMessage(pub(crate) Words);

impl fmt::Display for BadMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a message that does not decode: {:x?}", self.0)
    }
}

impl Msg {
    /// A message of `kind` with no flags and no arguments.
    pub(crate) fn new(kind: Kind) -> Msg {
        Msg { kind, flags: 0, a: 0, b: 0, c: 0 }
    }

    /// A message of `kind` with argument `a`.
    pub(crate) fn with(kind: Kind, a: u64) -> Msg {
        Msg { a, ..Msg::new(kind) }
    }

    /// The words on the wire.
    pub(crate) fn encode(self) -> Words {
        [self.kind as u64 | u64::from(self.flags) << 8, self.a, self.b, self.c]
    }

    /// The message these words carry.
    pub(crate) fn decode(words: Words) -> Result<Msg, BadMessage> {
        let head = words[0];
        let kind = Kind::ALL.into_iter().find(|&k| k as u64 == head & 0xFF);
        match kind {
            Some(kind) if head >> 16 == 0 => {
                Ok(Msg { kind, flags: (head >> 8) as u8, a: words[1], b: words[2], c: words[3] })
            }
            _ => Err(BadMessage(words)),
        }
    }
}

/// Two `i32` deltas in one word (`LockX`'s `c`).
pub(crate) fn pack_deltas(d: [i32; 2]) -> u64 {
    u64::from(d[0] as u32) | u64::from(d[1] as u32) << 32
}

/// The deltas of [`pack_deltas`].
pub(crate) fn unpack_deltas(w: u64) -> [i32; 2] {
    [w as u32 as i32, (w >> 32) as u32 as i32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_with_its_flags_and_arguments() {
        for kind in Kind::ALL {
            let msg = Msg { kind, flags: 0xA5, a: u64::MAX, b: 7, c: 1 << 63 };
            assert_eq!(Msg::decode(msg.encode()), Ok(msg));
        }
        let mut codes: Vec<u8> = Kind::ALL.iter().map(|&k| k as u8).collect();
        codes.dedup();
        assert_eq!(codes.len(), Kind::ALL.len(), "kinds are distinct and sorted");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Msg::decode([0, 1, 2, 3]).is_err(), "kind 0 is no kind");
        assert!(Msg::decode([200, 0, 0, 0]).is_err());
        assert!(Msg::decode([Kind::Stop as u64 | 1 << 16, 0, 0, 0]).is_err(), "high bits set");
        assert!(Msg::decode([Kind::Stop as u64 | 0xFF << 8, 0, 0, 0]).is_ok(), "any flag byte");
    }

    #[test]
    fn replies_are_told_from_requests() {
        assert!(Kind::Granted.is_reply() && Kind::Item.is_reply());
        assert!(!Kind::LockX.is_reply() && !Kind::Stop.is_reply() && !Kind::Check.is_reply());
    }

    #[test]
    fn deltas_keep_their_sign() {
        for d in [[-1, 1], [1, -1], [i32::MIN, i32::MAX], [0, -7]] {
            assert_eq!(unpack_deltas(pack_deltas(d)), d);
        }
    }
}
