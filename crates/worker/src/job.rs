//! The job a worker holds: its assignment, its ranks' running state digests, and the data plane it uses.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rpc::types::Assignment;

/// An assigned job.
#[derive(Debug)]
pub struct Job {
    /// What the coordinator sent.
    pub assignment: Assignment,
    /// This worker's advertised address (ranks whose address equals it are local).
    pub self_address: String,
    /// Per hosted rank: the state digest after the last finished step, and that step + 1.
    pub state: Mutex<BTreeMap<u32, (u64, u32)>>,
    /// The worker's activity counters (shared across jobs).
    pub activity: std::sync::Arc<crate::Activity>,
}

impl Job {
    /// A job starting from the assignment's digests.
    pub fn new(
        assignment: Assignment,
        self_address: String,
        activity: std::sync::Arc<crate::Activity>,
    ) -> Job {
        let state = assignment
            .ranks
            .iter()
            .zip(&assignment.digests)
            .map(|(&r, &d)| (r, (d, assignment.first_step)))
            .collect();
        Job { assignment, self_address, state: Mutex::new(state), activity }
    }

    /// Whether a global rank is hosted here.
    pub fn is_local(&self, rank: u32) -> bool {
        self.assignment.rank_addresses.get(rank as usize).is_some_and(|a| *a == self.self_address)
    }

    /// The address of the worker hosting `rank`.
    pub fn address_of(&self, rank: u32) -> Option<&str> {
        self.assignment.rank_addresses.get(rank as usize).map(String::as_str)
    }

    /// Payload bytes standing in for a message of `bytes`.
    pub fn payload_len(&self, bytes: u64) -> usize {
        let a = &self.assignment;
        (bytes / a.payload_scale.max(1)).min(a.max_payload_bytes) as usize
    }
}
