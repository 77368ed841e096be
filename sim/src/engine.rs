//! The deterministic discrete-event engine: a virtual clock, an event queue ordered by
//! (time, sequence number), and one seeded random number generator.
//!
//! It knows nothing of hosts or packets. Events that fall at the same instant run in the
//! order they were scheduled, so a run depends only on the scenario and the seed.

use crate::time::{Duration, Instant};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A scheduled event. Ordered by time, then by scheduling order.
struct Entry<E> {
    at: Instant,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Virtual clock plus event queue.
pub struct Engine<E> {
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<Entry<E>>>,
    processed: u64,
}

impl<E> Default for Engine<E> {
    fn default() -> Self {
        Engine::new()
    }
}

impl<E> Engine<E> {
    /// An engine at time zero with nothing scheduled.
    pub fn new() -> Engine<E> {
        Engine {
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            processed: 0,
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// How many events have run.
    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Schedule `event` at `at` (or now, if `at` is in the past).
    pub fn schedule(&mut self, at: Instant, event: E) {
        let at = at.max(self.now);
        self.seq += 1;
        self.queue.push(Reverse(Entry {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// Schedule `event` after `delay`.
    pub fn schedule_in(&mut self, delay: Duration, event: E) {
        self.schedule(self.now + delay, event);
    }

    /// When the next event is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(e)| e.at)
    }

    /// Take the next event due at or before `until`, advancing the clock to it.
    pub fn pop_until(&mut self, until: Instant) -> Option<(Instant, E)> {
        if self.next_at()? > until {
            return None;
        }
        let Reverse(entry) = self.queue.pop()?;
        self.now = entry.at;
        self.processed += 1;
        Some((entry.at, entry.event))
    }

    /// Move the clock forward to `to` (no event may be pending before it).
    pub fn advance_to(&mut self, to: Instant) {
        debug_assert!(self.next_at().is_none_or(|n| n >= to));
        self.now = self.now.max(to);
    }

    /// Events still scheduled.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}

/// The simulator's one source of randomness: SplitMix64, seeded explicitly.
///
/// Small, fast and fully specified, so the same seed gives the same stream on every
/// machine and every build.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed ^ 0x5eed_5eed_5eed_5eed,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (0.0..=1.0).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// A uniform integer in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_at_the_same_instant_run_in_scheduling_order() {
        let mut e = Engine::new();
        e.schedule(Instant(10), "b1");
        e.schedule(Instant(5), "a");
        e.schedule(Instant(10), "b2");
        let order: Vec<_> = std::iter::from_fn(|| e.pop_until(Instant(100)).map(|x| x.1)).collect();
        assert_eq!(order, vec!["a", "b1", "b2"]);
        assert_eq!(e.now(), Instant(10));
    }

    #[test]
    fn pop_until_leaves_later_events_queued() {
        let mut e = Engine::new();
        e.schedule(Instant(50), 1);
        assert!(e.pop_until(Instant(49)).is_none());
        assert_eq!(e.pending(), 1);
    }

    #[test]
    fn rng_is_reproducible_and_seed_dependent() {
        let a: Vec<u64> = (0..4)
            .scan(Rng::new(1), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .scan(Rng::new(1), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..4)
            .scan(Rng::new(2), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut r = Rng::new(3);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
