//! Expiry: keys with a deadline read as absent once it passes (lazily, on every access,
//! in [`Db::get`](super::store::Db::get)), and this active sweep deletes them.
//!
//! Every 100 ms the sweep looks, in each database, at the index of keys with a deadline
//! (one read-only transaction, reading only that index) and deletes up to 1000 expired
//! keys, each in its own small transaction that re-checks the deadline (so a key given a
//! new deadline meanwhile survives). Reading the index costs O(keys with a deadline) per
//! pass; Redis instead samples 20 keys at random, which a `TMap` cannot do.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use concord_stm::atomically;
use tokio::sync::watch;

use super::server::Shared;
use super::store::{now_ms, DATABASES};

/// How often the sweep runs.
pub const PERIOD: Duration = Duration::from_millis(100);
/// The most keys one pass deletes per database.
const BATCH: usize = 1000;

/// Deletes expired keys every [`PERIOD`] until `stop` turns true.
pub async fn sweep_forever(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let removed = sweep_once(&shared);
        // Relaxed: a statistic.
        shared.expired_keys.fetch_add(removed, Ordering::Relaxed);
    }
}

/// One pass over every database; returns how many keys it deleted.
pub fn sweep_once(shared: &Shared) -> u64 {
    let mut removed = 0;
    for i in 0..DATABASES {
        let db = shared.store.db(i);
        let now = now_ms();
        let expired = atomically(|tx| db.expired(tx, now, BATCH));
        for key in expired {
            if atomically(|tx| db.sweep(tx, &key, now_ms())) {
                removed += 1;
            }
        }
    }
    removed
}
