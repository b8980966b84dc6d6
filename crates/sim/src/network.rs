//! Collective and point-to-point costs for the groups of a layout placed on a cluster (analytical model).
//!
//! A communicator is built once per (group kind, group shape): every TP group of a regular layout on a
//! homogeneous cluster spans the same number of ranks and nodes, so one NCCL cost table serves them all.
//! Costs are then memoised per (communicator, collective, bytes).

use std::collections::BTreeMap;

use collective::{CollectiveConfig, Communicator, Op};
use schedule::{CollectiveKind, GroupKind, Layout};
use topology::Cluster;

use crate::SimError;

/// A collective to hand to the flow model, once its group is known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowTemplate {
    pub op: Op,
    pub bytes: u64,
    pub algorithm: collective::Algorithm,
    pub config: collective::flow::collectives::FlowConfig,
}

/// The cost oracle the engine asks.
pub(crate) struct Network<'a> {
    cluster: &'a Cluster,
    layout: Layout,
    config: CollectiveConfig,
    /// (ranks, nodes) of a group → its communicator.
    comms: BTreeMap<(usize, usize), Communicator>,
    /// (group kind, leader) → (ranks, nodes).
    shapes: BTreeMap<(GroupKind, u32), (usize, usize)>,
    costs: BTreeMap<((usize, usize), CollectiveKind, u64), f64>,
    p2p: BTreeMap<(bool, u64), f64>,
    /// Every transfer takes zero time.
    pub(crate) free: bool,
}

fn op_of(kind: CollectiveKind) -> Op {
    match kind {
        CollectiveKind::AllReduce => Op::AllReduce,
        CollectiveKind::AllGather => Op::AllGather,
        CollectiveKind::ReduceScatter => Op::ReduceScatter,
        CollectiveKind::AllToAll => Op::AllToAll,
    }
}

impl<'a> Network<'a> {
    pub(crate) fn new(cluster: &'a Cluster, layout: Layout) -> Network<'a> {
        Network {
            cluster,
            layout,
            config: CollectiveConfig::default(),
            comms: BTreeMap::new(),
            shapes: BTreeMap::new(),
            costs: BTreeMap::new(),
            p2p: BTreeMap::new(),
            free: false,
        }
    }

    fn group_shape(&mut self, kind: GroupKind, leader: u32) -> Result<(usize, usize), SimError> {
        if let Some(&s) = self.shapes.get(&(kind, leader)) {
            return Ok(s);
        }
        let (_, members) = self.layout.group_of(leader, kind);
        let mut nodes: Vec<u32> = members.iter().map(|&r| r / self.cluster.gpus_per_node()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let shape = (members.len(), nodes.len());
        if !self.comms.contains_key(&shape) && shape.0 > 1 {
            let cs = collective::placement::comm_shape(self.cluster, &members).map_err(SimError::network)?;
            let comm = Communicator::new(&cs, &self.config).map_err(SimError::network)?;
            self.comms.insert(shape, comm);
        }
        self.shapes.insert((kind, leader), shape);
        Ok(shape)
    }

    /// Seconds a collective takes on the group of `kind` led by `leader`.
    pub(crate) fn collective_s(
        &mut self,
        kind: GroupKind,
        leader: u32,
        op: CollectiveKind,
        bytes: u64,
    ) -> Result<f64, SimError> {
        let shape = self.group_shape(kind, leader)?;
        if shape.0 < 2 || bytes == 0 || self.free {
            return Ok(0.0);
        }
        if let Some(&t) = self.costs.get(&(shape, op, bytes)) {
            return Ok(t);
        }
        let comm = &self.comms[&shape];
        let t = comm.time(op_of(op), bytes).map_err(SimError::network)?.time_s;
        self.costs.insert((shape, op, bytes), t);
        Ok(t)
    }

    /// How the flow model should run this collective when its group spans several nodes: the algorithm and
    /// protocol NCCL's model picks for it, and NCCL-like flow settings. `None` for single-node groups (NVLink
    /// contention is not what the flow model is for) and for empty messages.
    pub(crate) fn flow_template(
        &mut self,
        kind: GroupKind,
        leader: u32,
        op: CollectiveKind,
        bytes: u64,
    ) -> Result<Option<FlowTemplate>, SimError> {
        let shape = self.group_shape(kind, leader)?;
        if shape.0 < 2 || shape.1 < 2 || bytes == 0 || self.free {
            return Ok(None);
        }
        let comm = &self.comms[&shape];
        let cost = comm.time(op_of(op), bytes).map_err(SimError::network)?;
        Ok(Some(FlowTemplate {
            op: op_of(op),
            bytes,
            algorithm: cost.algorithm,
            config: collective::placement::flow_config(comm.shape(), cost.protocol),
        }))
    }

    /// Seconds a pipeline message of `bytes` takes from `src` to `dst`: one-hop latency plus bytes over the
    /// bottleneck of the path (NVLink inside a node, the NIC across nodes).
    pub(crate) fn p2p_s(&mut self, src: u32, dst: u32, bytes: u64) -> Result<f64, SimError> {
        if self.free {
            return Ok(0.0);
        }
        let per_node = self.cluster.gpus_per_node();
        let cross = src / per_node != dst / per_node;
        if let Some(&t) = self.p2p.get(&(cross, bytes)) {
            return Ok(t);
        }
        let group = [src, dst];
        let cs = collective::placement::comm_shape(self.cluster, &group).map_err(SimError::network)?;
        let comm = Communicator::new(&cs, &self.config).map_err(SimError::network)?;
        let t = comm.time(Op::SendRecv, bytes).map_err(SimError::network)?.time_s;
        self.p2p.insert((cross, bytes), t);
        Ok(t)
    }
}
