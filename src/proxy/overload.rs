//! When no region a request may use has room: a short wait for a place to
//! free (`overload.queue_timeout`, bounded by `overload.max_queued`), then the
//! request is shed with 503 and `Retry-After`. Which request waits how long is
//! policy (`core::capacity`); this is the waiting and the counting.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::Duration;

use tokio::time::Instant;

use crate::core::capacity::queue_wait_factor;
pub use crate::core::capacity::Shed;
use crate::core::config::Priority;
use crate::core::snapshot::Overload;

/// The process's waiting room: who waits for a place, and a bell rung when
/// one frees. Ringing costs a request one atomic load while nobody waits.
#[derive(Debug, Default)]
pub struct Room {
    waiting: AtomicU32,
    freed: tokio::sync::Notify,
    shed: AtomicU64,
    shedding: AtomicBool,
}

/// A place looked for at most this long between two rings: a `max_rps` cell
/// refills with time, not with a request ending.
const RECHECK: Duration = Duration::from_millis(5);

impl Room {
    /// A request's place at an origin ended: wakes the waiting, if any.
    ///
    /// All of them, and they look again every [`RECHECK`] too: it costs CPU
    /// while requests queue (1.6x HAProxy's per answer shed at 3x,
    /// `loadtest/overload`), but waking only the longest waiting (and looking
    /// every 20 ms) let newcomers take most freed places first: 11-17 % shed at
    /// 3x where this sheds 1 % and HAProxy none (`loadtest/RESULTS.md`). A
    /// place handed straight to the oldest waiter would have both; not built yet.
    pub fn place_freed(&self) {
        if self.waiting.load(Relaxed) > 0 {
            self.freed.notify_waiters();
        }
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Relaxed)
    }

    /// Waits once for a place to free, for a request of `priority` that first
    /// found no room at `since` (set on its first wait). Ok: look again; Err:
    /// shed it.
    pub async fn wait(
        &self,
        overload: &Overload,
        priority: Priority,
        since: &mut Option<Instant>,
    ) -> Result<(), Shed> {
        let factor = queue_wait_factor(priority);
        if factor == 0 {
            return Err(Shed::Sheddable);
        }
        let now = Instant::now();
        let deadline = *since.get_or_insert(now) + overload.queue_timeout * factor;
        if now >= deadline {
            return Err(Shed::QueueTimeout);
        }
        if self.waiting.fetch_add(1, Relaxed) >= overload.max_queued {
            self.waiting.fetch_sub(1, Relaxed);
            return Err(Shed::QueueFull);
        }
        let rung = self.freed.notified();
        let _ = tokio::time::timeout((deadline - now).min(RECHECK), rung).await;
        self.waiting.fetch_sub(1, Relaxed);
        Ok(())
    }

    /// Counts a request shed; true when it starts a spell of shedding (none
    /// since the last [`Room::settle`] found it over).
    pub fn count_shed(&self) -> bool {
        self.shed.fetch_add(1, Relaxed);
        !self.shedding.swap(true, Relaxed)
    }

    /// Looked at now and then (every second): when a spell of shedding saw no
    /// shed request since the last look (`seen`, the count then), it is over;
    /// returns how many it shed in all (counted from `spell_start`).
    pub fn settle(&self, seen: &mut u64, spell_start: &mut u64) -> Option<u64> {
        let now = self.shed.load(Relaxed);
        let was = std::mem::replace(seen, now);
        if !self.shedding.load(Relaxed) {
            *spell_start = now;
            return None;
        }
        if now != was {
            return None;
        }
        self.shedding.store(false, Relaxed);
        Some(now - std::mem::replace(spell_start, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overload(ms: u64, max_queued: u32) -> Overload {
        Overload {
            queue_timeout: Duration::from_millis(ms),
            max_queued,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_its_prioritys_deadline() {
        let room = Room::default();
        let o = overload(50, 10);
        assert_eq!(
            room.wait(&o, Priority::Sheddable, &mut None).await,
            Err(Shed::Sheddable)
        );
        for (priority, waits) in [(Priority::Normal, 10), (Priority::Critical, 20)] {
            let mut since = None;
            let start = Instant::now();
            let mut rounds = 0;
            while room.wait(&o, priority, &mut since).await.is_ok() {
                rounds += 1;
            }
            assert_eq!(rounds, waits, "{priority:?}");
            assert_eq!(start.elapsed(), o.queue_timeout * waits / 10);
        }
        assert_eq!(room.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_place_wakes_the_waiting_and_a_full_room_sheds() {
        let room = std::sync::Arc::new(Room::default());
        let o = overload(1000, 1);
        let waiter = {
            let room = room.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                room.wait(&o, Priority::Normal, &mut None).await.unwrap();
                start.elapsed()
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(room.waiting(), 1);
        assert_eq!(
            room.wait(&o, Priority::Normal, &mut None).await,
            Err(Shed::QueueFull)
        );
        room.place_freed();
        assert!(waiter.await.unwrap() < RECHECK);
    }

    #[test]
    fn a_spell_of_shedding_starts_once_and_ends_after_a_quiet_look() {
        let room = Room::default();
        let (mut seen, mut start) = (0, 0);
        assert_eq!(room.settle(&mut seen, &mut start), None);
        assert!(room.count_shed());
        assert!(!room.count_shed());
        assert_eq!(room.settle(&mut seen, &mut start), None);
        assert_eq!(room.settle(&mut seen, &mut start), Some(2));
        assert!(room.count_shed(), "a new spell");
    }
}
