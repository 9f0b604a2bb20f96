//! The keyspace: 16 databases, each a [`TMap`] from key to a per-key [`TVar`] holding an
//! [`Entry`] (a typed value and an optional deadline), plus an index of keys with a
//! deadline, the queues of blocked poppers and the keys that clients `WATCH`.
//!
//! # Conflicts
//!
//! A command on an existing key reads the key's map bucket and reads or writes only the
//! key's own `TVar`; a write also reads the key's bucket of the watched-keys map (to count
//! the write for `WATCH`, see below), which only `WATCH`, `UNWATCH` and `EXEC` write:
//! commands on different existing keys never conflict. Creating or deleting a key writes
//! its map bucket (a handful of keys share one, see [`TMap`]) and the calling thread's
//! stripe of the map's length; creating a list also reads the key's bucket of the
//! blocked-clients queues. `DBSIZE`, `KEYS`, `SCAN` and `FLUSHDB` read or write the whole
//! map.
//!
//! # `WATCH`
//!
//! As in Redis (`touchWatchedKey`), a watched key is registered in the database
//! ([`Db::watch`]) and every write to it counts as a touch, whether or not it changes the
//! value and even if the key did not exist or is deleted again. `EXEC` fails if the count
//! moved or if a key that was live at `WATCH` is not any more (deleted, expired, flushed):
//! [`Db::watch_changed`]. Removing an expired key (the sweep, `DEL`, `FLUSHDB`) is not a
//! touch, so a key that was already expired at `WATCH` behaves like an absent one, as
//! Redis's `watchedKey.expired` flag makes it.
//!
//! # Values and their cost
//!
//! Published values are immutable, so a write builds a new [`Entry`]:
//! - strings are `Arc<[u8]>`: a read shares them, a write allocates the new string;
//! - collections are persistent (structurally shared) data structures from `imbl`, so a
//!   write clones the published value in O(1) and then copies only the nodes it changes,
//!   O(log n) for n elements (no element bytes are ever copied, only reference counts):
//!   lists are RRB vectors ([`List`]: O(1) amortized at either end, O(log n) to index);
//!   hashes ([`Hash`](struct@Hash)) are a hash trie of fields plus a B-tree of the fields in
//!   insertion order, as Redis lists small hashes; sets ([`Set`]) are a hash trie, with
//!   whether Redis would hold the set as an intset; sorted sets ([`ZSet`]) are a hash
//!   trie of scores plus a B-tree of `(score, member)`.
//!
//! Reads that list a collection (`LRANGE`, `HGETALL`, `SMEMBERS`, `ZRANGE`) cost what they
//! return, plus O(log n) to find an `LRANGE` start; `ZRANGE` by rank and `SPOP` walk
//! the collection from its start (O(rank) and O(n)).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use concord_stm::collections::TMap;
use concord_stm::{Stm, TVar, Transaction};

use super::commands::lists::Blocking;
use super::resp::Reply;

/// Bytes shared between the store and replies.
pub type Bytes = Arc<[u8]>;

/// The number of databases (`SELECT 0` to `SELECT 15`).
pub const DATABASES: usize = 16;

/// Milliseconds since the Unix epoch (expiry deadlines use this clock, as Redis does).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A list: a persistent RRB vector, so a write on a copy (what every write does, the
/// published version being immutable) copies the few chunks of 64 elements it changes and
/// their path from the root: O(1) amortized at either end, O(log n) elsewhere, and
/// `LINDEX` or `LRANGE` find their start in O(log n).
pub type List = imbl::Vector<Bytes>;

/// A hash, whose fields keep their insertion order (Redis's order for small, listpack
/// hashes: `HGETALL` lists them so at every size). Two persistent maps: each field's value
/// and insertion stamp, and the fields by stamp. Reading or overwriting a field touches
/// the first only; adding or removing one touches both: a write copies O(log n).
#[derive(Clone, Debug, Default)]
pub struct Hash {
    /// Each field's insertion stamp and value.
    values: imbl::HashMap<Bytes, (u64, Bytes)>,
    /// The fields by insertion stamp.
    order: imbl::OrdMap<u64, Bytes>,
    /// The stamp of the next new field.
    next: u64,
}

impl Hash {
    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.values.get(field).map(|(_, v)| v)
    }

    /// Sets `field` to `value` (a new field goes last, an existing one keeps its place);
    /// returns whether the field is new.
    pub fn insert(&mut self, field: &[u8], value: Bytes) -> bool {
        if let Some((_, v)) = self.values.get_mut(field) {
            *v = value;
            return false;
        }
        let field: Bytes = Arc::from(field);
        let stamp = self.next;
        self.next += 1;
        self.values.insert(field.clone(), (stamp, value));
        self.order.insert(stamp, field);
        true
    }

    /// Removes `field`; returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.values.remove(field) {
            Some((stamp, _)) => {
                self.order.remove(&stamp);
                true
            }
            None => false,
        }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the hash is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The fields and their values, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> + '_ {
        self.order.values().map(|f| (f, &self.values.get(f).expect("every field has a value").1))
    }
}

/// An `f64` score with a total order (scores are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A sorted set: members by score (then by member bytes, as Redis orders ties), and
/// each member's score, in two persistent maps (a hash trie and a B-tree): a write copies
/// O(log n).
#[derive(Clone, Debug, Default)]
pub struct ZSet {
    /// Each member's score.
    pub scores: imbl::HashMap<Bytes, f64>,
    /// `(score, member)` in Redis's order.
    pub order: imbl::OrdSet<(Score, Bytes)>,
}

impl ZSet {
    /// Sets `member`'s score; returns whether the member is new.
    pub fn insert(&mut self, member: Bytes, score: f64) -> bool {
        // -0.0 and 0.0 are the same score to Redis.
        let score = if score == 0.0 { 0.0 } else { score };
        let added = match self.scores.insert(member.clone(), score) {
            Some(old) => {
                self.order.remove(&(Score(old), member.clone()));
                false
            }
            None => true,
        };
        self.order.insert((Score(score), member));
        added
    }

    /// Removes `member`; returns whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove_with_key(member) {
            Some((m, s)) => {
                self.order.remove(&(Score(s), m));
                true
            }
            None => false,
        }
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

/// The most members Redis keeps in an intset (`set-max-intset-entries`).
pub const INTSET_MAX: usize = 512;

/// A set, and whether Redis would hold it as an intset: a set created with an integer
/// (in `string2ll`'s canonical form) that has held only integers, at most
/// [`INTSET_MAX`] of them, since. Redis lists an intset's members in numeric order, so
/// `SMEMBERS` does too; Redis's other sets are hash tables with a per-process random
/// seed, whose order nobody can reproduce (and `SMEMBERS` here lists them in the
/// trie's order). Like Redis, a set that stops being an intset never becomes one
/// again, whatever members it loses. The members are a persistent hash trie: a write
/// copies O(log n).
#[derive(Clone, Debug, Default)]
pub struct Set {
    /// The members.
    pub members: imbl::HashSet<Bytes>,
    /// Whether Redis's encoding would be an intset.
    pub intset: bool,
}

/// A typed value.
#[derive(Clone, Debug)]
pub enum Value {
    /// A string (also what `INCR` works on).
    Str(Bytes),
    /// A list.
    List(List),
    /// A hash (fields in insertion order).
    Hash(Hash),
    /// A set.
    Set(Set),
    /// A sorted set.
    ZSet(ZSet),
}

impl Value {
    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Whether this is an empty collection (Redis deletes a key whose collection empties).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.members.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

/// What a key's `TVar` holds: the value and its deadline (ms since the epoch), if any.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// When the key expires.
    pub expires_at: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at.map_or(true, |d| d > now)
    }
}

/// What `WATCH` keeps for a key while at least one client watches it: how many watches
/// hold the key (one per client and key), and how many writes have touched the key since
/// the first of them (Redis's `touchWatchedKey`).
#[derive(Clone, Copy, Debug)]
struct WatchCount {
    watches: u64,
    touches: u64,
}

/// What `WATCH` remembers of a key, for `EXEC` to compare with ([`Db::watch_changed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchToken {
    /// The key's touch count when it was watched.
    touches: u64,
    /// Whether the key was live (present and not expired) when it was watched.
    live: bool,
}

/// A client blocked in `BLPOP`, `BRPOP` or `BLMOVE`, as queued on each of its keys. A
/// transaction that makes one of the keys a non-empty list serves it: it pops for the
/// client, writes the reply into `reply` and takes `ticket` out of every queue.
#[derive(Debug)]
pub struct Blocked {
    /// Unique among blocked clients.
    pub ticket: u64,
    /// The pop the client waits for.
    pub req: Blocking,
    /// The reply, once served (the blocked client waits for this `TVar`).
    pub reply: TVar<Option<Reply>>,
}

/// One database.
#[derive(Debug, Default)]
pub struct Db {
    keys: TMap<Bytes, TVar<Entry>>,
    /// The deadline of every key that has one (the sweeper's index).
    expires: TMap<Bytes, u64>,
    /// The clients blocked on each key, oldest first.
    waiters: TMap<Bytes, VecDeque<Arc<Blocked>>>,
    /// The keys some client watches.
    watched: TMap<Bytes, WatchCount>,
}

impl Db {
    /// The live entry of `key` (an expired key reads as absent).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn get<'a>(
        &'a self,
        tx: &'a Transaction<'_>,
        key: &[u8],
        now: u64,
    ) -> Stm<Option<&'a Entry>> {
        let Some(var) = self.keys.read(tx, key)? else { return Ok(None) };
        let entry = tx.read(var)?;
        Ok(entry.live(now).then_some(entry))
    }

    /// `WATCH key`: registers the watch and returns what `EXEC` compares. Every watch must
    /// be ended by [`unwatch`](Self::unwatch).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn watch(&self, tx: &mut Transaction<'_>, key: &[u8], now: u64) -> Stm<WatchToken> {
        let live = self.get(tx, key, now)?.is_some();
        let touches = self.watched.read(tx, key)?.map_or(0, |w| w.touches);
        self.watched.update(tx, Arc::from(key), |w| {
            Some(w.map_or(WatchCount { watches: 1, touches: 0 }, |w| WatchCount {
                watches: w.watches + 1,
                ..*w
            }))
        })?;
        Ok(WatchToken { touches, live })
    }

    /// Ends one watch of `key` registered by [`watch`](Self::watch).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn unwatch(&self, tx: &mut Transaction<'_>, key: &[u8]) -> Stm<()> {
        self.watched.update(tx, Arc::from(key), |w| {
            w.filter(|w| w.watches > 1).map(|w| WatchCount { watches: w.watches - 1, ..*w })
        })
    }

    /// Whether `EXEC` must fail for a key watched with `token` (Redis's rules): the key was
    /// written since (even if it was then deleted or expired), or it was live and is not
    /// any more (deleted, expired, flushed). A key that was absent or expired at `WATCH`
    /// and was only swept or flushed since has not changed.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn watch_changed(
        &self,
        tx: &Transaction<'_>,
        key: &[u8],
        token: WatchToken,
        now: u64,
    ) -> Stm<bool> {
        let touches = self.watched.read(tx, key)?.map_or(0, |w| w.touches);
        Ok(touches != token.touches || (token.live && self.get(tx, key, now)?.is_none()))
    }

    /// Counts a write of `key` for the clients that watch it.
    fn touch(&self, tx: &mut Transaction<'_>, key: &[u8]) -> Stm<()> {
        if self.watched.read(tx, key)?.is_none() {
            return Ok(());
        }
        self.watched
            .update(tx, Arc::from(key), |w| w.map(|w| WatchCount { touches: w.touches + 1, ..*w }))
    }

    /// Stores `value` under `key` with the deadline `expires_at`, replacing what was there
    /// (a write: it touches the key for `WATCH`).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn put(
        &self,
        tx: &mut Transaction<'_>,
        key: &[u8],
        value: Value,
        expires_at: Option<u64>,
    ) -> Stm<()> {
        self.touch(tx, key)?;
        let existing = self.keys.read(tx, key)?.cloned();
        let entry = Entry { value, expires_at };
        match existing {
            Some(var) => {
                let old = tx.read(&var)?.expires_at;
                tx.write(&var, entry)?;
                if old != expires_at {
                    self.index_expiry(tx, key, expires_at)?;
                }
            }
            None => {
                self.keys.insert(tx, Arc::from(key), TVar::new(entry))?;
                if expires_at.is_some() {
                    self.index_expiry(tx, key, expires_at)?;
                }
            }
        }
        Ok(())
    }

    /// Stores `value` under `key`, or deletes the key if `value` is an empty collection
    /// (for a key that is live: either way, a write).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn put_or_delete(
        &self,
        tx: &mut Transaction<'_>,
        key: &[u8],
        value: Value,
        expires_at: Option<u64>,
    ) -> Stm<()> {
        if value.is_empty_collection() {
            self.unlink(tx, key)?;
            Ok(())
        } else {
            self.put(tx, key, value, expires_at)
        }
    }

    fn index_expiry(
        &self,
        tx: &mut Transaction<'_>,
        key: &[u8],
        expires_at: Option<u64>,
    ) -> Stm<()> {
        match expires_at {
            Some(d) => self.expires.insert(tx, Arc::from(key), d).map(drop),
            None => self.expires.remove(tx, key).map(drop),
        }
    }

    /// Removes a live `key` (a write: it touches the key for `WATCH`); returns whether the
    /// map held it.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn unlink(&self, tx: &mut Transaction<'_>, key: &[u8]) -> Stm<bool> {
        self.remove_entry(tx, key, true)
    }

    /// Removes `key` whether or not it has expired, touching it for `WATCH` if `touch`
    /// (removing an expired key is no change to a watcher, as in Redis); returns whether
    /// the map held it.
    fn remove_entry(&self, tx: &mut Transaction<'_>, key: &[u8], touch: bool) -> Stm<bool> {
        let had_deadline = match self.keys.read(tx, key)? {
            None => return Ok(false),
            Some(var) => tx.read(var)?.expires_at.is_some(),
        };
        if touch {
            self.touch(tx, key)?;
        }
        self.keys.remove(tx, key)?;
        if had_deadline {
            self.expires.remove(tx, key)?;
        }
        Ok(true)
    }

    /// Deletes `key`; returns whether it was live.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn delete(&self, tx: &mut Transaction<'_>, key: &[u8], now: u64) -> Stm<bool> {
        let live = self.get(tx, key, now)?.is_some();
        self.remove_entry(tx, key, live)?;
        Ok(live)
    }

    /// The number of keys, counting expired keys not yet swept (as Redis's `DBSIZE` does).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn len(&self, tx: &Transaction<'_>) -> Stm<usize> {
        self.keys.len(tx)
    }

    /// The number of keys with a deadline.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn expires_len(&self, tx: &Transaction<'_>) -> Stm<usize> {
        self.expires.len(tx)
    }

    /// Every live key, in no particular order.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn keys(&self, tx: &Transaction<'_>, now: u64) -> Stm<Vec<Bytes>> {
        let mut out = Vec::new();
        for item in self.keys.iter(tx) {
            let (k, var) = item?;
            if tx.read(var)?.live(now) {
                out.push(k.clone());
            }
        }
        Ok(out)
    }

    /// Removes every key (blocked clients stay blocked). Watchers of a live key see it
    /// gone at `EXEC`; watchers of an absent or expired key see no change, as in Redis.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn clear(&self, tx: &mut Transaction<'_>) -> Stm<()> {
        self.keys.clear(tx)?;
        self.expires.clear(tx)
    }

    /// Up to `limit` keys whose deadline has passed (for the active sweep).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn expired(&self, tx: &Transaction<'_>, now: u64, limit: usize) -> Stm<Vec<Bytes>> {
        let mut out = Vec::new();
        for item in self.expires.iter(tx) {
            let (k, &d) = item?;
            if d <= now {
                out.push(k.clone());
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Removes `key` if its deadline has passed; returns whether it did.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn sweep(&self, tx: &mut Transaction<'_>, key: &[u8], now: u64) -> Stm<bool> {
        let expired = match self.keys.read(tx, key)? {
            Some(var) => !tx.read(var)?.live(now),
            None => {
                // A stale index entry (cannot happen, but costs nothing to repair).
                self.expires.remove(tx, key)?;
                return Ok(false);
            }
        };
        if expired {
            self.remove_entry(tx, key, false)?;
        }
        Ok(expired)
    }

    /// The clients blocked on `key`, oldest first.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn waiters<'a>(
        &'a self,
        tx: &'a Transaction<'_>,
        key: &[u8],
    ) -> Stm<Option<&'a VecDeque<Arc<Blocked>>>> {
        self.waiters.read(tx, key)
    }

    /// Queues `waiter` behind the clients already blocked on `key`.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn enqueue_waiter(
        &self,
        tx: &mut Transaction<'_>,
        key: &[u8],
        waiter: &Arc<Blocked>,
    ) -> Stm<()> {
        self.waiters.update(tx, Arc::from(key), |q| {
            let mut q = q.cloned().unwrap_or_default();
            q.push_back(waiter.clone());
            Some(q)
        })
    }

    /// Takes `ticket` out of `key`'s queue.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate.
    pub fn dequeue_waiter(&self, tx: &mut Transaction<'_>, key: &[u8], ticket: u64) -> Stm<()> {
        if !self.waiters.read(tx, key)?.is_some_and(|q| q.iter().any(|w| w.ticket == ticket)) {
            return Ok(());
        }
        self.waiters.update(tx, Arc::from(key), |q| {
            let mut q = q.cloned().unwrap_or_default();
            q.retain(|w| w.ticket != ticket);
            (!q.is_empty()).then_some(q)
        })
    }
}

/// Every database, and the ticket counter of blocked clients.
#[derive(Debug)]
pub struct Store {
    dbs: Vec<Db>,
    tickets: AtomicU64,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store with [`DATABASES`] databases.
    pub fn new() -> Self {
        Store { dbs: (0..DATABASES).map(|_| Db::default()).collect(), tickets: AtomicU64::new(1) }
    }

    /// Database `i`.
    ///
    /// # Panics
    ///
    /// If `i >= DATABASES` (`SELECT` checks the index).
    pub fn db(&self, i: usize) -> &Db {
        &self.dbs[i]
    }

    /// A fresh ticket for a blocked client: it names the client in the queues of its keys.
    pub fn ticket(&self) -> u64 {
        // Relaxed: only uniqueness matters; the order among waiters is the order of the
        // transactions that queue the tickets.
        self.tickets.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_stm::atomically;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn string(s: &str) -> Value {
        Value::Str(Arc::from(s.as_bytes()))
    }

    /// Redis's `WATCH` rules, one case each: `setup` runs before `WATCH k`, `then` after
    /// it, and the result is whether `EXEC` must fail (at time 1000).
    fn watch_case(
        setup: impl Fn(&Db, &mut Transaction<'_>) -> Stm<()>,
        then: impl Fn(&Db, &mut Transaction<'_>) -> Stm<()>,
    ) -> bool {
        let db = Db::default();
        atomically(|tx| setup(&db, tx));
        let token = atomically(|tx| db.watch(tx, b"k", 1000));
        atomically(|tx| then(&db, tx));
        let changed = atomically(|tx| db.watch_changed(tx, b"k", token, 1000));
        atomically(|tx| db.unwatch(tx, b"k"));
        assert!(atomically(|tx| db.watched.is_empty(tx)), "a watch was left registered");
        changed
    }

    #[test]
    fn watch_follows_redis_rules() {
        let none = |_: &Db, _: &mut Transaction<'_>| Ok(());
        let live = |db: &Db, tx: &mut Transaction<'_>| db.put(tx, b"k", string("1"), None);
        // Deadline 500: expired at time 1000, but still in the map (not swept).
        let expired = |db: &Db, tx: &mut Transaction<'_>| db.put(tx, b"k", string("1"), Some(500));
        let set = |db: &Db, tx: &mut Transaction<'_>| db.put(tx, b"k", string("2"), None);
        let set_then_delete = |db: &Db, tx: &mut Transaction<'_>| {
            db.put(tx, b"k", string("2"), None)?;
            db.unlink(tx, b"k").map(drop)
        };
        let delete = |db: &Db, tx: &mut Transaction<'_>| db.delete(tx, b"k", 1000).map(drop);
        let sweep = |db: &Db, tx: &mut Transaction<'_>| db.sweep(tx, b"k", 1000).map(drop);
        let flush = |db: &Db, tx: &mut Transaction<'_>| db.clear(tx);
        let other_key = |db: &Db, tx: &mut Transaction<'_>| db.put(tx, b"j", string("2"), None);

        assert!(!watch_case(none, none), "absent, untouched");
        assert!(!watch_case(none, other_key), "absent, another key written");
        assert!(watch_case(none, set), "absent, created");
        assert!(watch_case(none, set_then_delete), "absent, created and deleted again");
        assert!(!watch_case(none, delete), "absent, DEL of nothing");
        assert!(!watch_case(none, flush), "absent, FLUSHDB");
        assert!(!watch_case(live, none), "live, untouched");
        assert!(watch_case(live, live), "live, set to the same value");
        assert!(watch_case(live, delete), "live, deleted");
        assert!(watch_case(live, set_then_delete), "live, set and deleted");
        assert!(watch_case(live, flush), "live, FLUSHDB");
        assert!(!watch_case(expired, none), "expired, untouched");
        assert!(!watch_case(expired, delete), "expired, DEL");
        assert!(!watch_case(expired, sweep), "expired, swept");
        assert!(!watch_case(expired, flush), "expired, FLUSHDB");
        assert!(watch_case(expired, set), "expired, set again");
    }

    /// Random pushes and pops at both ends, each on a clone of the last version (as the
    /// store does), against a `VecDeque`; old versions must stay unchanged.
    #[test]
    fn list_matches_a_deque_and_versions_are_independent() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut list = List::default();
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut n = 0_u32;
        for step in 0..60_000 {
            let before: Vec<Bytes> =
                if step % 997 == 0 { list.iter().cloned().collect() } else { vec![] };
            let old = list.clone();
            let mut next = list.clone();
            // Long runs in one direction cross the middle both ways.
            let phase = (step / 5000) % 4;
            let push = match phase {
                0 | 2 => rng.gen_bool(0.8),
                _ => rng.gen_bool(0.2),
            };
            let left = rng.gen_bool(if phase < 2 { 0.7 } else { 0.3 });
            if push {
                n += 1;
                let v: Bytes = Arc::from(n.to_be_bytes().as_slice());
                if left {
                    next.push_front(v);
                    model.push_front(n);
                } else {
                    next.push_back(v);
                    model.push_back(n);
                }
            } else {
                let got = if left { next.pop_front() } else { next.pop_back() };
                let want = if left { model.pop_front() } else { model.pop_back() };
                assert_eq!(got.map(|b| u32::from_be_bytes(b[..].try_into().unwrap())), want);
            }
            assert_eq!(next.len(), model.len());
            if step % 997 == 0 {
                assert_eq!(old.iter().cloned().collect::<Vec<_>>(), before);
                let all: Vec<u32> =
                    next.iter().map(|b| u32::from_be_bytes(b[..].try_into().unwrap())).collect();
                assert_eq!(all, model.iter().copied().collect::<Vec<_>>());
                if !model.is_empty() {
                    let i = rng.gen_range(0..model.len());
                    assert_eq!(
                        next.get(i).map(|b| u32::from_be_bytes(b[..].try_into().unwrap())),
                        Some(model[i])
                    );
                }
            }
            list = next;
        }
    }

    /// Random sets and removals, each on a clone of the last version (as the store does),
    /// against a `Vec` of pairs in insertion order; old versions must stay unchanged.
    #[test]
    fn hash_keeps_insertion_order_and_versions_are_independent() {
        let mut rng = SmallRng::seed_from_u64(11);
        let mut hash = Hash::default();
        let mut model: Vec<(Bytes, Bytes)> = Vec::new();
        let pairs = |h: &Hash| -> Vec<(Bytes, Bytes)> {
            h.iter().map(|(f, v)| (f.clone(), v.clone())).collect()
        };
        for step in 0..20_000_u32 {
            let old = hash.clone();
            let before = if step % 499 == 0 { pairs(&old) } else { vec![] };
            let mut next = hash.clone();
            let field: Bytes = Arc::from(rng.gen_range(0..2_000_u32).to_string().as_bytes());
            let pos = model.iter().position(|(f, _)| *f == field);
            if rng.gen_bool(0.7) {
                let value: Bytes = Arc::from(step.to_string().as_bytes());
                assert_eq!(next.insert(&field, value.clone()), pos.is_none());
                match pos {
                    Some(i) => model[i].1 = value,
                    None => model.push((field.clone(), value)),
                }
            } else {
                assert_eq!(next.remove(&field), pos.is_some());
                if let Some(i) = pos {
                    model.remove(i);
                }
            }
            assert_eq!(next.len(), model.len());
            assert_eq!(next.get(&field), model.iter().find(|(f, _)| *f == field).map(|(_, v)| v));
            if step % 499 == 0 {
                assert_eq!(pairs(&old), before);
                assert_eq!(pairs(&next), model);
            }
            hash = next;
        }
    }

    /// The same for sorted sets, against a `BTreeMap` of `(score, member)` and a map of
    /// scores.
    #[test]
    fn zset_matches_models_and_versions_are_independent() {
        use std::collections::{BTreeSet, HashMap};
        let mut rng = SmallRng::seed_from_u64(13);
        let mut zset = ZSet::default();
        let mut order: BTreeSet<(Score, Bytes)> = BTreeSet::new();
        let mut scores: HashMap<Bytes, f64> = HashMap::new();
        let listed = |z: &ZSet| -> Vec<(Score, Bytes)> { z.order.iter().cloned().collect() };
        for step in 0..20_000 {
            let old = zset.clone();
            let before = if step % 499 == 0 { listed(&old) } else { vec![] };
            let mut next = zset.clone();
            let member: Bytes = Arc::from(rng.gen_range(0..2_000_u32).to_string().as_bytes());
            if rng.gen_bool(0.7) {
                let score = f64::from(rng.gen_range(-50..50_i32));
                assert_eq!(next.insert(member.clone(), score), !scores.contains_key(&member));
                if let Some(s) = scores.insert(member.clone(), score) {
                    order.remove(&(Score(s), member.clone()));
                }
                order.insert((Score(score), member.clone()));
            } else {
                assert_eq!(next.remove(&member), scores.contains_key(&member));
                if let Some(s) = scores.remove(&member) {
                    order.remove(&(Score(s), member.clone()));
                }
            }
            assert_eq!(next.len(), scores.len());
            assert_eq!(next.scores.get(&member), scores.get(&member));
            if step % 499 == 0 {
                assert_eq!(listed(&old), before);
                assert_eq!(listed(&next), order.iter().cloned().collect::<Vec<_>>());
            }
            zset = next;
        }
    }
}
