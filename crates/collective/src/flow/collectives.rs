//! Collectives lowered to phases of point-to-point flows, many at once on one [`FlowNetwork`].
//!
//! Lowerings (each channel is its own set of flows with its own ECMP hash):
//! - **ring** (all-reduce 2(n−1) steps, all-gather / reduce-scatter n−1 steps): every step, every rank sends
//!   S/(n·channels) to its ring successor; a step ends when all its flows are delivered. Ranks are ordered by
//!   node so that a ring crosses each node boundary once, on one rail; where GPUs share a NIC, each channel
//!   crosses through its own NIC. Every step pays the ring's mean hop latency (NCCL's ring latency: each step
//!   the latency of the hop it crosses, intra- or inter-node). On an idle network this is exactly the α-β
//!   ring: 2(n−1)·(α + S/(n·B)).
//! - **chain** (broadcast, reduce): the pipelined ring: every edge of the chain carries S at once, plus
//!   (n−1) step latencies of pipeline fill.
//! - **tree** (all-reduce): NCCL's double binary tree (`ncclGetDtree`: every rank interior in at most one of
//!   the two), each tree carrying S/2 up and S/2 down on every edge at once (the pipelined steady state), plus
//!   2·depth step latencies.
//! - **nvls** (single node): every GPU sends its data up to the switch and receives the result down, at once,
//!   no faster than NCCL's NVLS algorithm bandwidth ([`InSwitchRates`]).
//! - **nvls-tree** (all-reduce over nodes): NCCL runs the in-node NVLS reduction, the inter-node double binary
//!   tree (one per rail: each GPU carries its 1/ppn share through its own NIC) and the NVLS multicast as one
//!   pipeline, so the lowering is their steady state in one phase: every GPU's switch flows (S each way, no
//!   faster than NCCL's NVLS-tree bandwidth) together with, on every rail, the double binary tree over the
//!   nodes carrying S/(2·ppn) per tree on every edge both ways.
//! - **hierarchical**: ring reduce-scatter inside every node, ring all-reduce of 1/ppn of the data on every rail,
//!   ring all-gather inside every node (all-gather / reduce-scatter: the matching two phases), one after the
//!   other (choir's own algorithm, not NCCL's).
//! - **direct** (all-to-all, send/recv): every pair at once.
//!
//! `pat` is lowered as ring.

use crate::error::CollectiveError;
use crate::flow::fabric::{Router, mix};
use crate::flow::lower::{End, Stage, Transfer, dst_key, lower};
use crate::flow::{Delivery, FlowNetwork, FlowSpec};
use crate::op::{Algorithm, Op};

/// How a lowered collective's flows behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowConfig {
    /// Parallel channels (rings or tree pairs); each is its own flows with its own ECMP hash.
    pub channels: u32,
    /// Software/protocol latency of one step over a hop between nodes (or over any hop when the group sits in
    /// one node), added to the flow's path latency, seconds.
    pub step_latency_s: f64,
    /// Software/protocol latency of one step over a hop inside a node when the group spans several nodes,
    /// seconds.
    pub intra_step_latency_s: f64,
    /// Cap on every flow's rate (NIC line rate × protocol efficiency), bytes/s; `f64::INFINITY` for none.
    pub rate_cap_bytes_per_s: f64,
    /// How fast NCCL's in-switch reduction kernels move data (caps the flows through the reducing switch).
    pub in_switch: InSwitchRates,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            channels: 1,
            step_latency_s: 0.0,
            intra_step_latency_s: 0.0,
            rate_cap_bytes_per_s: f64::INFINITY,
            in_switch: InSwitchRates::default(),
        }
    }
}

/// NCCL's algorithm bandwidths (bytes of the nccl-tests buffer per second) of its in-switch reduction
/// algorithms on a group. The NVLS kernels move data through the NVSwitch below the link rate (NCCL's
/// `nvlsEfficiency`, per-channel caps), so the flows through the reducing switch are capped such that a GPU's
/// traffic for a collective of S bytes takes at least S / algbw; links shared with other traffic can slow it
/// further. `f64::INFINITY` = no cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InSwitchRates {
    /// NVLS all-reduce (single node).
    pub nvls_all_reduce_bytes_per_s: f64,
    /// NVLS all-gather (single node).
    pub nvls_all_gather_bytes_per_s: f64,
    /// NVLS reduce-scatter (single node).
    pub nvls_reduce_scatter_bytes_per_s: f64,
    /// NVLS-tree all-reduce (several nodes).
    pub nvls_tree_all_reduce_bytes_per_s: f64,
}

impl Default for InSwitchRates {
    fn default() -> Self {
        InSwitchRates {
            nvls_all_reduce_bytes_per_s: f64::INFINITY,
            nvls_all_gather_bytes_per_s: f64::INFINITY,
            nvls_reduce_scatter_bytes_per_s: f64::INFINITY,
            nvls_tree_all_reduce_bytes_per_s: f64::INFINITY,
        }
    }
}

/// One collective to run on the flow network.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowCollective {
    /// The GPUs of the group (global ids the router knows).
    pub ranks: Vec<u32>,
    /// What to do.
    pub op: Op,
    /// nccl-tests size (see [`Op`]).
    pub bytes: u64,
    /// How (see the module docs for the lowering of each).
    pub algorithm: Algorithm,
    /// Flow behaviour.
    pub config: FlowConfig,
    /// The caller's label, returned on completion.
    pub tag: u64,
}

/// A finished collective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollectiveDone {
    /// The caller's label.
    pub tag: u64,
    /// When it was submitted, seconds.
    pub start_s: f64,
    /// When its last flow was delivered, seconds.
    pub end_s: f64,
}

#[derive(Debug, Clone)]
struct Run {
    stages: Vec<Stage>,
    stage: usize,
    step: u32,
    outstanding: u64,
    start_s: f64,
    tag: u64,
    config: FlowConfig,
    /// Whether the group spans several nodes (then hops inside a node take `intra_step_latency_s`).
    multi_node: bool,
}

/// Collectives running concurrently over one shared [`FlowNetwork`].
#[derive(Debug)]
pub struct FlowSim<R: Router> {
    router: R,
    net: FlowNetwork,
    runs: Vec<Option<Run>>,
    path: Vec<u32>,
    deliveries: Vec<Delivery>,
}

impl<R: Router> FlowSim<R> {
    /// An idle network over the router's links.
    pub fn new(router: R) -> Result<FlowSim<R>, CollectiveError> {
        let net = FlowNetwork::new(&router.links())?;
        Ok(FlowSim { router, net, runs: Vec::new(), path: Vec::new(), deliveries: Vec::new() })
    }

    /// Current simulated time, seconds.
    pub fn now_s(&self) -> f64 {
        self.net.now_s()
    }

    /// Flow events handled so far.
    pub fn n_flow_events(&self) -> u64 {
        self.net.n_events()
    }

    /// The router.
    pub fn router(&self) -> &R {
        &self.router
    }

    /// Starts a collective now.
    pub fn submit(&mut self, collective: &FlowCollective) -> Result<(), CollectiveError> {
        let stages = lower(&self.router, collective)?;
        let run_idx = self.runs.len();
        let first_node = self.router.node_of(collective.ranks[0]);
        let multi_node = collective.ranks.iter().any(|g| self.router.node_of(*g) != first_node);
        self.runs.push(Some(Run {
            stages,
            stage: 0,
            step: 0,
            outstanding: 0,
            start_s: self.net.now_s(),
            tag: collective.tag,
            config: collective.config,
            multi_node,
        }));
        let mut done = Vec::new();
        self.start_phase(run_idx, &mut done)?;
        debug_assert!(done.is_empty() || self.runs[run_idx].is_none());
        Ok(())
    }

    /// Handles the next batch of network events; appends collectives that finished to `done`. Returns `false`
    /// once nothing is left to happen.
    pub fn advance(&mut self, done: &mut Vec<CollectiveDone>) -> Result<bool, CollectiveError> {
        let mut deliveries = std::mem::take(&mut self.deliveries);
        deliveries.clear();
        if !self.net.advance(&mut deliveries) {
            self.deliveries = deliveries;
            return Ok(false);
        }
        for delivery in &deliveries {
            let run_idx = (delivery.tag >> 32) as usize;
            let Some(run) = self.runs[run_idx].as_mut() else { continue };
            run.outstanding -= 1;
            if run.outstanding == 0 {
                self.next_phase(run_idx, done)?;
            }
        }
        self.deliveries = deliveries;
        Ok(true)
    }

    /// Time of the next network event, if anything is in flight.
    pub fn next_event_s(&mut self) -> Option<f64> {
        self.net.next_event_s()
    }

    /// Handles every network event due at or before `t_s`, appending finished collectives to `done`, then moves
    /// the clock to `t_s`, so that a collective submitted next starts then.
    pub fn advance_to(&mut self, t_s: f64, done: &mut Vec<CollectiveDone>) -> Result<(), CollectiveError> {
        while self.net.next_event_s().is_some_and(|t| t <= t_s) {
            self.advance(done)?;
        }
        self.net.advance_idle_to(t_s);
        Ok(())
    }

    /// Runs until every submitted collective has finished; returns them in completion order.
    pub fn run_to_idle(&mut self) -> Result<Vec<CollectiveDone>, CollectiveError> {
        let mut done = Vec::new();
        while self.advance(&mut done)? {}
        Ok(done)
    }

    fn next_phase(&mut self, run_idx: usize, done: &mut Vec<CollectiveDone>) -> Result<(), CollectiveError> {
        let run = self.runs[run_idx].as_mut().expect("run is live");
        run.step += 1;
        if let Stage::Rings { steps, .. } = run.stages[run.stage]
            && run.step < steps
        {
            return self.start_phase(run_idx, done);
        }
        run.stage += 1;
        run.step = 0;
        self.start_phase(run_idx, done)
    }

    /// Starts the current phase of a run, skipping empty ones; finishes the run when none is left.
    fn start_phase(&mut self, run_idx: usize, done: &mut Vec<CollectiveDone>) -> Result<(), CollectiveError> {
        loop {
            let run = self.runs[run_idx].as_ref().expect("run is live");
            if run.stage >= run.stages.len() {
                let run = self.runs[run_idx].take().expect("run is live");
                done.push(CollectiveDone { tag: run.tag, start_s: run.start_s, end_s: self.net.now_s() });
                return Ok(());
            }
            let config = run.config;
            let multi_node = run.multi_node;
            let mut started = 0u64;
            let stage = &run.stages[run.stage];
            let step = run.step;
            let mut transfers: Vec<Transfer> = Vec::new();
            let mut empty_rings = false;
            let is_rings = matches!(stage, Stage::Rings { .. });
            match stage {
                Stage::Rings { rings, steps, bytes_per_flow } => {
                    empty_rings = *steps == 0;
                    for ring in rings {
                        if ring.len() < 2 {
                            continue;
                        }
                        // Steps here are synchronous, but NCCL's are not: a chunk goes round the ring crossing
                        // every hop once, paying each hop's latency (NCCL's ring latency sums intra- and
                        // inter-node step latencies). So every step pays the ring's mean hop latency.
                        let hops = (0..ring.len()).map(|i| (ring[i], ring[(i + 1) % ring.len()]));
                        let total: f64 =
                            hops.map(|(a, b)| self.hop_step_latency_s(a, b, &config, multi_node)).sum();
                        let mean = total / ring.len() as f64;
                        for (i, &src) in ring.iter().enumerate() {
                            let dst = ring[(i + 1) % ring.len()];
                            transfers.push(Transfer {
                                step_latency_s: Some(mean),
                                ..Transfer::new(src, End::Gpu(dst), *bytes_per_flow, 0.0)
                            });
                        }
                    }
                }
                Stage::Once(list) => transfers.extend_from_slice(list),
            }
            if !empty_rings {
                // Ring stages already hold one ring per channel; one-shot transfers are split over channels.
                let split = if is_rings { 1 } else { config.channels.max(1) };
                for (i, t) in transfers.iter().enumerate() {
                    for channel in 0..split {
                        let key = if is_rings { (i as u32).wrapping_add(step << 20) } else { channel };
                        self.start_flow(run_idx, t, key, split, &config, multi_node)?;
                        started += 1;
                    }
                }
            }
            let run = self.runs[run_idx].as_mut().expect("run is live");
            if started > 0 {
                run.outstanding = started;
                return Ok(());
            }
            run.stage += 1;
            run.step = 0;
        }
    }

    /// Step latency of a hop: between nodes, or inside a node of a group that spans nodes.
    fn hop_step_latency_s(&self, src: u32, dst: u32, config: &FlowConfig, multi_node: bool) -> f64 {
        if multi_node && self.router.node_of(src) == self.router.node_of(dst) {
            config.intra_step_latency_s
        } else {
            config.step_latency_s
        }
    }

    fn start_flow(
        &mut self,
        run_idx: usize,
        t: &Transfer,
        channel: u32,
        split: u32,
        config: &FlowConfig,
        multi_node: bool,
    ) -> Result<(), CollectiveError> {
        self.path.clear();
        let hash =
            mix((run_idx as u64) << 40 ^ (channel as u64) << 32 ^ (t.src as u64) << 16 ^ dst_key(t.dst));
        match t.dst {
            End::Gpu(dst) => self.router.path(t.src, dst, hash, &mut self.path)?,
            End::ReduceUp | End::ReduceDown => {
                let (up, down) =
                    self.router.reduction_ports(t.src).ok_or_else(|| CollectiveError::Unsupported {
                        algorithm: "nvls".into(),
                        op: "in-switch reduction".into(),
                        reason: format!("GPU {} has no reducing switch", t.src),
                    })?;
                self.path.push(if t.dst == End::ReduceUp { up } else { down });
            }
        }
        let step_latency_s = t.step_latency_s.unwrap_or_else(|| match t.dst {
            End::Gpu(dst) => self.hop_step_latency_s(t.src, dst, config, multi_node),
            End::ReduceUp | End::ReduceDown => self.hop_step_latency_s(t.src, t.src, config, multi_node),
        });
        let spec = FlowSpec {
            path: std::mem::take(&mut self.path),
            bytes: t.bytes / split as f64,
            rate_cap_bytes_per_s: config.rate_cap_bytes_per_s.min(t.rate_cap_bytes_per_s / split as f64),
            extra_latency_s: step_latency_s * (1.0 + t.extra_steps),
            tag: (run_idx as u64) << 32,
        };
        self.net.start(&spec)?;
        self.path = spec.path;
        Ok(())
    }
}
