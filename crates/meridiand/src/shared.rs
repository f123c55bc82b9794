//! Read-mostly values the main loop publishes for the server threads: a versioned cell
//! (`SnapshotCell`) whose readers re-clone the value only when its version moved, and the
//! server's advertised state (`PublishedState`), which a thread extrapolates to its own `now`
//! (the root dispersion grows between two publications exactly as `System::server_state` does).

use meridian_proto::server::ServerState;
use meridian_proto::system::System;
use meridian_proto::time::{Mono, NtpDuration};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One value shared between a publisher and many readers. Publishing swaps in a new `Arc`
/// under the lock and then moves the version; a reader holds its own `Arc` and takes the lock
/// only after it saw the version move, so the common read is one atomic load.
#[derive(Debug)]
pub struct SnapshotCell<T> {
    version: AtomicU64,
    value: Mutex<Arc<T>>,
}

impl<T> SnapshotCell<T> {
    pub fn new(value: T) -> Arc<Self> {
        Arc::new(Self {
            version: AtomicU64::new(0),
            value: Mutex::new(Arc::new(value)),
        })
    }

    /// Replaces the value; readers see it at their next [`SnapshotReader::get`].
    pub fn publish(&self, value: T) {
        let mut slot = self.value.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(value);
        // Moved while the lock is held: a reader that sees the new version and then takes the
        // lock gets this value or a newer one, never an older one.
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The current value (takes the lock).
    pub fn load(&self) -> Arc<T> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// A reader's view of a [`SnapshotCell`]: a cached `Arc` and the version it was taken at.
#[derive(Debug)]
pub struct SnapshotReader<T> {
    cell: Arc<SnapshotCell<T>>,
    seen: u64,
    cached: Arc<T>,
}

impl<T> SnapshotReader<T> {
    pub fn new(cell: Arc<SnapshotCell<T>>) -> Self {
        let seen = cell.version();
        let cached = cell.load();
        Self { cell, seen, cached }
    }

    /// The newest published value (a consistent whole: never half of two publications).
    pub fn get(&mut self) -> &Arc<T> {
        let v = self.cell.version();
        if v != self.seen {
            // A publication between the load above and this lock only makes the cached value
            // newer than `seen`, which costs one extra reload later.
            self.cached = self.cell.load();
            self.seen = v;
        }
        &self.cached
    }
}

/// The server state as of `at`, with the rate its root dispersion grows at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PublishedState {
    pub state: ServerState,
    pub at: Mono,
    /// Growth of the root dispersion, in 2^-32 s per second of `Mono` time.
    pub dispersion_rate: i64,
}

impl PublishedState {
    /// Takes the state of `system` at `now`; the growth rate is measured over one second of
    /// the system's own formula, so it is the same PHI (or zero for a local reference).
    pub fn of(system: &System, now: Mono) -> Self {
        let state = system.server_state(now);
        let later = system.server_state(now + Duration::from_secs(1));
        Self {
            state,
            at: now,
            dispersion_rate: later.root_dispersion.to_bits() - state.root_dispersion.to_bits(),
        }
    }

    /// The state to advertise at `now` (not before `at`: a late reader never shrinks it).
    pub fn at(&self, now: Mono) -> ServerState {
        let elapsed = now.saturating_since(self.at).as_nanos() as i128;
        let grown = (self.dispersion_rate as i128 * elapsed / 1_000_000_000) as i64;
        let mut state = self.state;
        state.root_dispersion =
            NtpDuration::from_bits(state.root_dispersion.to_bits().saturating_add(grown));
        state
    }

    /// Whether `newer` says the same as `self` extrapolated to `newer.at` (within 1 µs of
    /// dispersion): then it need not be published.
    pub fn same_as(&self, newer: &PublishedState) -> bool {
        let mine = self.at(newer.at);
        let theirs = newer.state;
        let close = (mine.root_dispersion.to_bits() - theirs.root_dispersion.to_bits()).abs()
            < NtpDuration::from_seconds(1e-6).to_bits();
        let mut a = mine;
        a.root_dispersion = theirs.root_dispersion;
        close && a == theirs && self.dispersion_rate == newer.dispersion_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_proto::time::NtpTimestamp;
    use meridian_proto::wire::{Leap, ReferenceId};

    fn state(stratum: u8, disp: f64) -> ServerState {
        ServerState {
            leap: Leap::None,
            stratum,
            precision: -20,
            poll: 6,
            root_delay: NtpDuration::from_seconds(0.001),
            root_dispersion: NtpDuration::from_seconds(disp),
            reference_id: ReferenceId::from_ip("198.18.0.1".parse().unwrap()),
            reference_ts: NtpTimestamp::from_bits(stratum as u64 * 1000),
        }
    }

    #[test]
    fn reader_sees_a_publication_only_after_it() {
        let cell = SnapshotCell::new(1u32);
        let mut reader = SnapshotReader::new(cell.clone());
        assert_eq!(**reader.get(), 1);
        cell.publish(2);
        assert_eq!(**reader.get(), 2);
        assert_eq!(**reader.get(), 2);
        cell.publish(3);
        cell.publish(4);
        assert_eq!(**reader.get(), 4, "the newest of several publications");
    }

    #[test]
    fn concurrent_readers_never_see_a_torn_value() {
        // Each value is a pair that must stay consistent (b == 2 * a) and never go backwards.
        let cell = SnapshotCell::new((0u64, 0u64));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let mut r = SnapshotReader::new(cell.clone());
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut changes = 0;
                    while last < 20_000 {
                        let &(a, b) = &**r.get();
                        assert_eq!(b, 2 * a, "torn snapshot");
                        assert!(a >= last, "went back from {last} to {a}");
                        if a != last {
                            changes += 1;
                        }
                        last = a;
                    }
                    changes
                })
            })
            .collect();
        for i in 1..=20_000u64 {
            cell.publish((i, 2 * i));
        }
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    }

    #[test]
    fn published_state_grows_dispersion_like_the_system() {
        let t0 = Mono::from_nanos(5_000_000_000);
        let rate = NtpDuration::from_seconds(15e-6).to_bits();
        let p = PublishedState {
            state: state(2, 0.010),
            at: t0,
            dispersion_rate: rate,
        };
        let later = p.at(t0 + Duration::from_secs(10));
        assert!((later.root_dispersion.to_seconds() - 0.010150).abs() < 1e-8);
        assert_eq!(later.stratum, 2);
        // Before the publication time: no shrinking.
        assert_eq!(p.at(Mono::from_nanos(1)), p.state);
        // The same state re-measured later is "the same"; another stratum is not.
        let remeasured = PublishedState {
            state: later,
            at: t0 + Duration::from_secs(10),
            dispersion_rate: rate,
        };
        assert!(p.same_as(&remeasured));
        let mut other = remeasured;
        other.state.stratum = 3;
        assert!(!p.same_as(&other));
        let mut jumped = remeasured;
        jumped.state.root_dispersion = NtpDuration::from_seconds(0.02);
        assert!(!p.same_as(&jumped));
    }

    #[test]
    fn published_state_of_an_unsynchronized_system_does_not_grow() {
        let system = System::new(meridian_proto::system::SystemConfig {
            precision: -20,
            local_reference: None,
            discipline: Default::default(),
            initial_frequency_ppm: 0.0,
            min_survivors: 1,
        });
        let now = Mono::from_nanos(1_000_000_000);
        let p = PublishedState::of(&system, now);
        assert_eq!(p.state.stratum, 16);
        assert_eq!(p.dispersion_rate, 0);
        assert_eq!(p.at(now + Duration::from_secs(100)), p.state);
    }
}
