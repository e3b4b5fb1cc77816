//! The keys of one limit on one node: a fixed-size, set-associative table of buckets.
//!
//! Keys are 64-bit hashes ([`super::key`]). A key lives in one set of [`WAYS`] slots, chosen by its
//! hash; each set has its own short lock, so two requests contend only when their keys share a set.
//! The table never grows: `max_keys` rounded up to a power of two slots, allocated when the limit
//! first sees a request. When a new key finds its set full, it takes, in this order (docs/config.md):
//! 1. a slot whose bucket is full again (its TAT has passed): forgetting it changes nothing, since
//!    a key seen anew starts with a full bucket too;
//! 2. otherwise the slot whose bucket is closest to full (the earliest TAT), counted as an eviction.
//!
//! A flood of distinct keys therefore evicts keys that are barely limited first, and the keys being
//! limited hardest (furthest ahead) last.

use super::gcra::{self, Decision, Policy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Slots per set.
pub(crate) const WAYS: usize = 8;

/// One set's keys, field by field: a lookup reads the tags (one or two cache lines), then one key's
/// fields.
#[derive(Debug, Clone, Copy, Default)]
struct Ways {
    /// The keys' hashes; 0 = empty.
    tags: [u64; WAYS],
    /// Theoretical arrival times ([`gcra`]).
    tats: [u64; WAYS],
    /// For fleet limits: this node's interval for the key (its share); 0 = the policy's.
    intervals: [u64; WAYS],
    /// Requests seen for the key since the last usage report.
    demand: [u32; WAYS],
}

type Set = Mutex<Ways>;

/// One limit's buckets.
#[derive(Debug)]
pub(crate) struct KeyTable {
    sets: OnceLock<Box<[Set]>>,
    /// Number of sets.
    set_count: usize,
    /// Live keys forgotten to make room.
    evictions: AtomicU64,
}

/// One tracked key, as [`KeyTable::drain_demand`] reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Demand {
    /// The key's hash.
    pub(crate) key: u64,
    /// Requests since the last report.
    pub(crate) requests: u64,
}

impl KeyTable {
    /// A table for at most `max_keys` keys (rounded up to a whole number of sets).
    pub(crate) fn new(max_keys: u64) -> KeyTable {
        let sets = usize::try_from(max_keys.div_ceil(WAYS as u64).clamp(1, u64::from(u32::MAX)))
            .unwrap_or(1);
        KeyTable {
            sets: OnceLock::new(),
            set_count: sets,
            evictions: AtomicU64::new(0),
        }
    }

    /// Keys the table holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.set_count * WAYS
    }

    fn sets(&self) -> &[Set] {
        self.sets.get_or_init(|| {
            (0..self.set_count)
                .map(|_| Mutex::new(Ways::default()))
                .collect()
        })
    }

    fn set(&self, key: u64) -> Option<&Set> {
        self.sets().get(self.index(key))
    }

    /// The set of `key`: its high 32 bits scaled to the number of sets (no division); the whole
    /// hash is the tag.
    fn index(&self, key: u64) -> usize {
        (((key >> 32) * self.set_count as u64) >> 32) as usize
    }

    /// Decides a request of `key` at `now` under `policy`; `fresh_interval` gives the interval a
    /// key not yet tracked starts with (fleet limits: this node's share for new keys; 0 = the
    /// policy's).
    #[inline]
    pub(crate) fn check(
        &self,
        key: u64,
        now: u64,
        policy: Policy,
        fresh_interval: impl FnOnce() -> u64,
    ) -> Decision {
        let key = key.max(1);
        let Some(set) = self.set(key) else {
            return gcra::decide(policy, 0, now).0;
        };
        let mut w = set.lock().unwrap_or_else(|p| p.into_inner());
        let i = match w.tags.iter().position(|&t| t == key) {
            Some(i) => i,
            None => {
                let i = victim(&w, now);
                if w.tags[i] != 0 && w.tats[i] > now {
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                w.tags[i] = key;
                w.tats[i] = 0;
                w.intervals[i] = fresh_interval();
                w.demand[i] = 0;
                i
            }
        };
        let policy = match w.intervals[i] {
            0 => policy,
            own => policy.scaled(own),
        };
        let (decision, tat) = gcra::decide(policy, w.tats[i], now);
        w.tats[i] = tat;
        w.demand[i] = w.demand[i].saturating_add(1);
        decision
    }

    /// The state of `key` at `now`: requests it could send at once, and its interval (0 = the
    /// policy's); `None` when the key is not tracked (its bucket is full).
    pub(crate) fn peek(&self, key: u64, now: u64, policy: Policy) -> Option<(u64, u64)> {
        let key = key.max(1);
        let set = self.sets.get()?.get(self.index(key))?;
        let w = set.lock().unwrap_or_else(|p| p.into_inner());
        let i = w.tags.iter().position(|&t| t == key)?;
        let policy = match w.intervals[i] {
            0 => policy,
            own => policy.scaled(own),
        };
        Some((gcra::available(policy, w.tats[i], now), w.intervals[i]))
    }

    /// Keys whose bucket is not full at `now` (those the table must remember).
    pub(crate) fn active_keys(&self, now: u64) -> u64 {
        let Some(sets) = self.sets.get() else {
            return 0;
        };
        let mut n = 0;
        for set in sets.iter() {
            let w = set.lock().unwrap_or_else(|p| p.into_inner());
            n += (0..WAYS)
                .filter(|&i| w.tags[i] != 0 && w.tats[i] > now)
                .count() as u64;
        }
        n
    }

    /// Live keys forgotten to make room since start.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Every key with requests since the last call, with their count; the counts restart at zero.
    pub(crate) fn drain_demand(&self, out: &mut Vec<Demand>) {
        let Some(sets) = self.sets.get() else {
            return;
        };
        for set in sets.iter() {
            let mut w = set.lock().unwrap_or_else(|p| p.into_inner());
            for i in 0..WAYS {
                if w.tags[i] != 0 && w.demand[i] > 0 {
                    out.push(Demand {
                        key: w.tags[i],
                        requests: u64::from(w.demand[i]),
                    });
                    w.demand[i] = 0;
                }
            }
        }
    }

    /// Sets this node's interval for `key` if the table tracks it (fleet shares).
    pub(crate) fn set_interval(&self, key: u64, interval: u64) {
        let key = key.max(1);
        let Some(set) = self.sets.get().and_then(|s| s.get(self.index(key))) else {
            return;
        };
        let mut w = set.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = w.tags.iter().position(|&t| t == key) {
            w.intervals[i] = interval;
        }
    }
}

/// The slot a new key takes: an empty one, else one whose bucket is full again, else the one
/// closest to full.
fn victim(w: &Ways, now: u64) -> usize {
    let mut best = 0;
    for i in 0..WAYS {
        if w.tags[i] == 0 || w.tats[i] <= now {
            return i;
        }
        if w.tats[i] < w.tats[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn keys_are_limited_apart() {
        let t = KeyTable::new(64);
        let p = Policy::new(100 * MS, 2);
        let now = 1_000 * MS;
        assert!(t.check(7, now, p, || 0).allowed);
        assert!(t.check(7, now, p, || 0).allowed);
        assert!(!t.check(7, now, p, || 0).allowed);
        assert!(
            t.check(8, now, p, || 0).allowed,
            "another key has its own bucket"
        );
        assert_eq!(t.peek(7, now, p), Some((0, 0)));
        assert_eq!(t.peek(9, now, p), None);
        assert_eq!(t.active_keys(now), 2);
        assert_eq!(t.active_keys(now + 1_000 * MS), 0);
    }

    #[test]
    fn a_flood_of_keys_stays_within_the_cap_and_spares_the_hardest_limited() {
        let t = KeyTable::new(1_000);
        assert_eq!(t.capacity(), 1_000);
        let p = Policy::new(100 * MS, 5);
        let now = 1_000 * MS;
        // The hot key uses its whole burst: its TAT is furthest ahead.
        for _ in 0..5 {
            t.check(42, now, p, || 0);
        }
        assert!(!t.check(42, now, p, || 0).allowed);
        for k in 1_000..1_000_000u64 {
            t.check(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), now, p, || 0);
        }
        assert!(t.active_keys(now) <= 1_000);
        assert!(t.evictions() > 0);
        assert!(
            !t.check(42, now, p, || 0).allowed,
            "the hot key was kept and is still limited"
        );
    }

    #[test]
    fn a_full_bucket_is_forgotten_for_free() {
        let t = KeyTable::new(8);
        let p = Policy::new(MS, 1);
        for k in 1..=8 {
            t.check(k, 0, p, || 0);
        }
        // Every bucket has refilled: a new key takes a slot without an eviction.
        t.check(100, 10 * MS, p, || 0);
        assert_eq!(t.evictions(), 0);
    }

    #[test]
    fn demand_is_counted_and_drained() {
        let t = KeyTable::new(64);
        let p = Policy::new(MS, 100);
        for _ in 0..3 {
            t.check(5, 0, p, || 0);
        }
        t.check(6, 0, p, || 0);
        let mut out = Vec::new();
        t.drain_demand(&mut out);
        out.sort_by_key(|d| d.key);
        assert_eq!(
            out,
            vec![
                Demand {
                    key: 5,
                    requests: 3
                },
                Demand {
                    key: 6,
                    requests: 1
                }
            ]
        );
        out.clear();
        t.drain_demand(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_fleet_share_slows_a_key() {
        let t = KeyTable::new(64);
        let p = Policy::new(MS, 1);
        t.check(5, 0, p, || 0);
        t.set_interval(5, 4 * MS);
        assert!(t.check(5, MS, p, || 0).allowed);
        // Now one request per 4 ms.
        assert!(!t.check(5, 2 * MS, p, || 0).allowed);
        assert!(t.check(5, 5 * MS, p, || 0).allowed);
        // A new key starts with the interval it is given.
        assert!(t.check(6, 0, p, || 10 * MS).allowed);
        assert!(!t.check(6, 5 * MS, p, || 10 * MS).allowed);
    }
}
