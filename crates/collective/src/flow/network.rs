//! `FlowNetwork`: a fluid, event-driven network. Flows start, share links max-min fairly, drain, and are
//! delivered one path latency after their last byte leaves.
//!
//! Between events every rate is constant, so the result is exact for the fluid model (simulation.md §3.1).
//! Completion events are rescheduled whenever a flow's rate changes; stale ones are skipped by a per-flow
//! version counter. Events closer together than [`FlowNetwork::TIME_TOLERANCE_S`] are handled as one batch and
//! followed by one re-solve, so symmetric traffic (every flow of a ring step ending together) costs one solve.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::error::CollectiveError;
use crate::flow::solver::MaxMinSolver;

/// A directed link of the flow network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSpec {
    /// Capacity, bytes/s.
    pub capacity_bytes_per_s: f64,
    /// Propagation + switching latency, seconds.
    pub latency_s: f64,
}

/// A point-to-point transfer to start.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSpec {
    /// Links crossed, in order (indices into the network's links).
    pub path: Vec<u32>,
    /// Bytes to move.
    pub bytes: f64,
    /// The most this flow can take whatever the links offer (NIC line rate × protocol efficiency), bytes/s;
    /// `f64::INFINITY` for none.
    pub rate_cap_bytes_per_s: f64,
    /// Latency added to the path's own (software/protocol step overhead), seconds.
    pub extra_latency_s: f64,
    /// The caller's label, returned on delivery.
    pub tag: u64,
}

/// A flow whose last byte has arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delivery {
    /// When it arrived, seconds.
    pub time_s: f64,
    /// The caller's label.
    pub tag: u64,
}

#[derive(Debug, Clone, Default)]
struct FlowState {
    remaining_bytes: f64,
    rate_bytes_per_s: f64,
    updated_s: f64,
    latency_s: f64,
    tag: u64,
    version: u32,
    has_drain: bool,
}

/// A drain: (time bits, sequence, slot, version); non-negative f64 bits order like the numbers.
type Drain = Reverse<(u64, u64, u32, u32)>;
/// A delivery: (time bits, sequence, tag).
type Deliver = Reverse<(u64, u64, u64)>;

/// Links, the flows on them and the pending events.
#[derive(Debug, Clone)]
pub struct FlowNetwork {
    links: Vec<LinkSpec>,
    solver: MaxMinSolver,
    flows: Vec<FlowState>,
    drains: BinaryHeap<Drain>,
    deliveries: BinaryHeap<Deliver>,
    seq: u64,
    now_s: f64,
    changed: Vec<u32>,
    pending_solve: bool,
    /// Flow events handled so far (starts, drains and deliveries).
    n_events: u64,
}

impl FlowNetwork {
    /// Events closer together than this are one batch, seconds.
    pub const TIME_TOLERANCE_S: f64 = 1e-12;

    /// An idle network over these links.
    pub fn new(links: &[LinkSpec]) -> Result<FlowNetwork, CollectiveError> {
        for link in links {
            if !(link.capacity_bytes_per_s.is_finite() && link.capacity_bytes_per_s > 0.0) {
                return Err(CollectiveError::BadFigure {
                    field: "link capacity_bytes_per_s",
                    value: link.capacity_bytes_per_s,
                });
            }
            if !(link.latency_s.is_finite() && link.latency_s >= 0.0) {
                return Err(CollectiveError::BadFigure { field: "link latency_s", value: link.latency_s });
            }
        }
        let capacities: Vec<f64> = links.iter().map(|l| l.capacity_bytes_per_s).collect();
        Ok(FlowNetwork {
            links: links.to_vec(),
            solver: MaxMinSolver::new(&capacities),
            flows: Vec::new(),
            drains: BinaryHeap::new(),
            deliveries: BinaryHeap::new(),
            seq: 0,
            now_s: 0.0,
            changed: Vec::new(),
            pending_solve: false,
            n_events: 0,
        })
    }

    /// Current simulated time, seconds.
    pub fn now_s(&self) -> f64 {
        self.now_s
    }

    /// Flow events handled so far (starts, drains, deliveries).
    pub fn n_events(&self) -> u64 {
        self.n_events
    }

    /// The links.
    pub fn links(&self) -> &[LinkSpec] {
        &self.links
    }

    /// Current rate of the flow in `slot` (as returned by [`FlowNetwork::start`]), bytes/s, after any pending
    /// re-solve.
    pub fn rate(&mut self, slot: u32) -> f64 {
        self.resolve();
        self.solver.rate(slot)
    }

    /// Starts a flow now. Rates are re-solved lazily, once for all flows started at the same time.
    /// Returns the flow's slot, valid until its delivery.
    pub fn start(&mut self, spec: &FlowSpec) -> Result<u32, CollectiveError> {
        let n_links = self.links.len();
        if let Some(&bad) = spec.path.iter().find(|l| **l as usize >= n_links) {
            return Err(CollectiveError::BadId { what: "link", id: bad as usize, len: n_links });
        }
        if !(spec.bytes.is_finite() && spec.bytes >= 0.0) {
            return Err(CollectiveError::BadFigure { field: "flow bytes", value: spec.bytes });
        }
        if spec.rate_cap_bytes_per_s.is_nan() || spec.rate_cap_bytes_per_s <= 0.0 {
            return Err(CollectiveError::BadFigure {
                field: "rate_cap_bytes_per_s",
                value: spec.rate_cap_bytes_per_s,
            });
        }
        let latency_s: f64 = spec.path.iter().map(|l| self.links[*l as usize].latency_s).sum::<f64>()
            + spec.extra_latency_s.max(0.0);
        self.n_events += 1;
        let slot = self.solver.add(&spec.path, spec.rate_cap_bytes_per_s);
        let state = FlowState {
            remaining_bytes: spec.bytes,
            rate_bytes_per_s: 0.0,
            updated_s: self.now_s,
            latency_s,
            tag: spec.tag,
            version: 0,
            has_drain: false,
        };
        if slot as usize == self.flows.len() {
            self.flows.push(state);
        } else {
            let version = self.flows[slot as usize].version.wrapping_add(1);
            self.flows[slot as usize] = FlowState { version, ..state };
        }
        self.pending_solve = true;
        Ok(slot)
    }

    /// Moves the clock forward to `t_s` when nothing happens before it (flows keep their rates; their progress is
    /// accounted lazily). Returns `false`, leaving the clock alone, if an event is due before `t_s`.
    pub fn advance_idle_to(&mut self, t_s: f64) -> bool {
        match self.next_event_s() {
            Some(next) if next < t_s => false,
            _ => {
                self.now_s = self.now_s.max(t_s);
                true
            }
        }
    }

    /// Time of the next event, if any flow is still in the network.
    pub fn next_event_s(&mut self) -> Option<f64> {
        self.resolve();
        self.skip_stale();
        let drain = self.drains.peek().map(|Reverse((bits, ..))| f64::from_bits(*bits));
        let deliver = self.deliveries.peek().map(|Reverse((bits, ..))| f64::from_bits(*bits));
        match (drain, deliver) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles the next batch of events and appends the deliveries among them to `out`. Returns `false` when the
    /// network is idle (nothing left to happen).
    pub fn advance(&mut self, out: &mut Vec<Delivery>) -> bool {
        let Some(t) = self.next_event_s() else { return false };
        self.now_s = self.now_s.max(t);
        let horizon = t + Self::TIME_TOLERANCE_S.max(t * 1e-12);
        // Drains first: they free bandwidth and schedule deliveries, possibly inside this batch.
        while let Some(&Reverse((bits, _, slot, version))) = self.drains.peek() {
            if f64::from_bits(bits) > horizon {
                break;
            }
            self.drains.pop();
            let flow = &mut self.flows[slot as usize];
            if flow.version != version {
                continue;
            }
            self.n_events += 1;
            flow.version = flow.version.wrapping_add(1);
            flow.remaining_bytes = 0.0;
            flow.rate_bytes_per_s = 0.0;
            flow.has_drain = false;
            let (at, tag) = (self.now_s + flow.latency_s, flow.tag);
            self.solver.remove(slot);
            self.pending_solve = true;
            self.seq += 1;
            self.deliveries.push(Reverse((at.to_bits(), self.seq, tag)));
        }
        while let Some(&Reverse((bits, _, tag))) = self.deliveries.peek() {
            if f64::from_bits(bits) > horizon {
                break;
            }
            self.deliveries.pop();
            self.n_events += 1;
            out.push(Delivery { time_s: f64::from_bits(bits).max(self.now_s), tag });
        }
        true
    }

    /// Runs until idle, returning every delivery in time order.
    pub fn run_to_idle(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        while self.advance(&mut out) {}
        out
    }

    fn skip_stale(&mut self) {
        while let Some(&Reverse((_, _, slot, version))) = self.drains.peek() {
            if self.flows[slot as usize].version == version {
                break;
            }
            self.drains.pop();
        }
    }

    /// Re-solves rates if flows started or ended, and reschedules the drains of flows whose rate changed.
    fn resolve(&mut self) {
        if !self.pending_solve {
            return;
        }
        self.pending_solve = false;
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        self.solver.solve(&mut changed);
        let now = self.now_s;
        for &slot in &changed {
            let new_rate = self.solver.rate(slot);
            let flow = &mut self.flows[slot as usize];
            let elapsed = now - flow.updated_s;
            flow.remaining_bytes = (flow.remaining_bytes - flow.rate_bytes_per_s * elapsed).max(0.0);
            flow.updated_s = now;
            if new_rate == flow.rate_bytes_per_s && flow.has_drain {
                continue; // its scheduled drain is still right
            }
            flow.rate_bytes_per_s = new_rate;
            flow.version = flow.version.wrapping_add(1);
            let drain_s = if flow.remaining_bytes <= 0.0 {
                now
            } else if new_rate > 0.0 {
                now + flow.remaining_bytes / new_rate
            } else {
                flow.has_drain = false;
                continue; // starved until another flow ends
            };
            flow.has_drain = true;
            self.seq += 1;
            self.drains.push(Reverse((drain_s.to_bits(), self.seq, slot, flow.version)));
        }
        self.changed = changed;
    }
}
