//! The server threads of one instance (`[service] server-threads`, see `server_threads.rs`):
//! starting them on the sockets opened with the instance, keeping what they know of the
//! instance's policy current, and summing their counters with the main loop's.

use super::{Instance, ServerCounters};
use crate::server_threads::{add_counters, ServerPool, ThreadPolicy};
use crate::shared::{PublishedState, SnapshotCell};
use std::io;
use std::sync::Arc;

impl Instance {
    /// Number of server threads running for this instance.
    pub fn server_threads(&self) -> usize {
        self.pool.as_ref().map_or(0, ServerPool::threads)
    }

    /// Starts the threads on the sockets opened by `open` (none: nothing to do). Call after
    /// the policy and keys are installed.
    pub fn start_server_threads(
        &mut self,
        state: &Arc<SnapshotCell<PublishedState>>,
    ) -> io::Result<()> {
        if self.thread_sockets.is_empty() || self.pool.is_some() {
            return Ok(());
        }
        let sockets = std::mem::take(&mut self.thread_sockets);
        let label = self
            .name
            .as_ref()
            .map(|n| format!("{n}-"))
            .unwrap_or_default();
        let policy = self.thread_policy(0);
        self.pool = Some(ServerPool::start(&label, sockets, state.clone(), policy)?);
        Ok(())
    }

    fn thread_policy(&self, gate_epoch: u64) -> ThreadPolicy {
        ThreadPolicy {
            policy: self.gate.policy.clone(),
            rate_limit: self.gate.limiter().map(|l| *l.config()),
            keys: self.server_keys.clone(),
            receive_disabled: self.receive_disabled.clone(),
            local_broadcasts: self.local_broadcasts().to_vec(),
            gate_epoch,
        }
    }

    /// Publishes the instance's policy to its threads if it changed; `gate_replaced`: the
    /// access rules or rate limits were replaced (the threads start new rate-limit tables).
    pub fn refresh_thread_policy(&mut self, gate_replaced: bool) {
        let Some(pool) = &self.pool else { return };
        let old = pool.policy();
        let epoch = old.gate_epoch + u64::from(gate_replaced);
        let new = self.thread_policy(epoch);
        let same = !gate_replaced
            && new.policy == old.policy
            && new.rate_limit == old.rate_limit
            && new.keys == old.keys
            && new.receive_disabled == old.receive_disabled
            && new.local_broadcasts == old.local_broadcasts;
        if !same {
            pool.publish_policy(new);
        }
    }

    /// The server-path counters of the main loop and the threads, summed.
    pub fn server_counters(&self) -> ServerCounters {
        let mut sum = self.counters.clone();
        if let Some(pool) = &self.pool {
            add_counters(&mut sum, &pool.counters());
        }
        sum
    }

    /// Entries in the rate-limit tables of the main loop and the threads; `None` when rate
    /// limiting is off.
    pub fn rate_limit_entries(&self) -> Option<usize> {
        let main = self.gate.limiter()?.len();
        Some(main + self.pool.as_ref().map_or(0, ServerPool::rate_entries))
    }
}
