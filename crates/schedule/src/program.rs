//! The task graph of one step, as programs: one op list per pipeline stage, instantiated for every rank.
//!
//! Every rank of a stage runs the same program (TP, CP and DP peers are symmetric); its communication ops name
//! a group *kind* and the rank's [`Layout`](crate::Layout) says who the peers are. This keeps a 16,384-GPU
//! step at a few thousand ops per stage instead of millions, and is exactly what a live worker needs: its
//! stage's program plus its coordinate.

use serde::Serialize;

use crate::layout::GroupKind;
use crate::pipeline::Pass;

/// Index of an op within its stage's program.
pub type OpIdx = u32;

/// The execution stream an op runs on. Ops on one stream run one at a time, in program order; ops on
/// different streams of a rank overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Kernels, and the TP/EP collectives that block them (Megatron runs those synchronously).
    Compute,
    /// Context-parallel ring exchange of K/V, overlapped with the attention core.
    Cp,
    /// Pipeline sends.
    PpSend,
    /// Pipeline receives.
    PpRecv,
    /// Data-parallel gradient reduction and FSDP/ZeRO parameter gathers.
    Dp,
}

impl Stream {
    /// Every stream, in a stable order.
    pub const ALL: [Stream; 5] = [Stream::Compute, Stream::Cp, Stream::PpSend, Stream::PpRecv, Stream::Dp];

    /// Position in [`Stream::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short label for traces.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Compute => "compute",
            Stream::Cp => "cp",
            Stream::PpSend => "pp-send",
            Stream::PpRecv => "pp-recv",
            Stream::Dp => "dp",
        }
    }
}

/// What a communication op is for; the report breaks exposed communication down by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommPurpose {
    /// Tensor-parallel activations.
    Tp,
    /// Context-parallel K/V exchange.
    Cp,
    /// Expert-parallel token dispatch and combine.
    Ep,
    /// Pipeline activations and gradients.
    Pp,
    /// Data-parallel gradient reduction (and ZeRO-1/2 parameter gathers).
    Dp,
    /// FSDP / ZeRO-3 parameter gathers and gradient reduce-scatters.
    Fsdp,
}

impl CommPurpose {
    /// Every purpose, in a stable order.
    pub const ALL: [CommPurpose; 6] = [
        CommPurpose::Tp,
        CommPurpose::Cp,
        CommPurpose::Ep,
        CommPurpose::Pp,
        CommPurpose::Dp,
        CommPurpose::Fsdp,
    ];

    /// A short label.
    pub fn name(self) -> &'static str {
        match self {
            CommPurpose::Tp => "tp",
            CommPurpose::Cp => "cp",
            CommPurpose::Ep => "ep",
            CommPurpose::Pp => "pp",
            CommPurpose::Dp => "dp",
            CommPurpose::Fsdp => "fsdp",
        }
    }
}

/// A collective operation. Sizes follow nccl-tests: the buffer for all-reduce and all-to-all, the whole
/// gathered buffer for all-gather and reduce-scatter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CollectiveKind {
    /// All-reduce.
    AllReduce,
    /// All-gather.
    AllGather,
    /// Reduce-scatter.
    ReduceScatter,
    /// All-to-all.
    AllToAll,
}

/// A unit of compute work; ops point at one by index so that identical layers are costed once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Work {
    /// A label for traces, e.g. `attn.fwd`.
    pub label: &'static str,
    /// Matrix multiplications, with the multiplier the pass applies (backward = 2 GEMMs per forward GEMM).
    pub gemms: Vec<(model::work::Gemm, f64)>,
    /// Attention-core FLOPs (FlashAttention-style fused kernel).
    pub attention_flops: f64,
    /// Memory-bound bytes (norms, activations, residuals, optimizer updates).
    pub memory_bytes: f64,
    /// Runs in FP8 where the plan's precision is FP8 (GEMMs only).
    pub fp8_eligible: bool,
}

impl Work {
    /// Total FLOPs of the work.
    pub fn flops(&self) -> f64 {
        self.gemms.iter().map(|(g, mult)| g.flops() * mult).sum::<f64>() + self.attention_flops
    }
}

/// What an op does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpKind {
    /// Run a [`Work`] item of the stage's work table.
    Compute {
        /// Index into [`StageProgram::works`].
        work: u32,
    },
    /// A collective over the rank's group of `group` kind. Members meet: it starts when all have arrived.
    Collective {
        /// Which group.
        group: GroupKind,
        /// Which collective.
        op: CollectiveKind,
        /// Size (nccl-tests convention).
        bytes: u64,
        /// What it is for.
        purpose: CommPurpose,
    },
    /// Send to the same-coordinate rank on pipeline stage `peer`.
    Send {
        /// Destination stage.
        peer: u32,
        /// Bytes.
        bytes: u64,
        /// Matches the receiver's [`OpKind::Recv`] tag.
        tag: u64,
    },
    /// Receive from the same-coordinate rank on pipeline stage `peer`; done when the message has arrived.
    Recv {
        /// Source stage.
        peer: u32,
        /// Bytes.
        bytes: u64,
        /// Matches the sender's tag.
        tag: u64,
    },
}

/// One op of a stage's program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// The stream it runs on.
    pub stream: Stream,
    /// What it does.
    pub kind: OpKind,
    /// Ops (of this program, on other streams) that must finish before it starts. Ops on the same stream
    /// are ordered by the program already.
    pub deps: Vec<OpIdx>,
    /// Pass, micro-batch, chunk and layer, for traces and reports.
    pub tag: OpTag,
    /// Bytes of device memory allocated when the op starts (activations kept for backward, gathered weights).
    pub alloc_bytes: u64,
    /// Bytes freed when the op ends.
    pub free_bytes: u64,
}

/// Where an op sits in the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpTag {
    /// The pipeline pass, or `None` for the optimizer and gradient reduction.
    pub pass: Option<Pass>,
    /// Micro-batch.
    pub micro_batch: u32,
    /// Model chunk on this rank.
    pub chunk: u32,
    /// Global layer index, or `u32::MAX` for work outside the layers.
    pub layer: u32,
}

/// Per-rank memory that does not change during the step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct StaticMemory {
    /// Weights held (after sharding).
    pub weights_bytes: f64,
    /// Gradients held.
    pub grads_bytes: f64,
    /// Optimizer state held.
    pub optimizer_bytes: f64,
}

impl StaticMemory {
    /// The sum.
    pub fn total_bytes(&self) -> f64 {
        self.weights_bytes + self.grads_bytes + self.optimizer_bytes
    }
}

/// The program every rank of one pipeline stage runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageProgram {
    /// Pipeline stage.
    pub stage: u32,
    /// Global layer indices held, per chunk.
    pub chunk_layers: Vec<Vec<u32>>,
    /// The ops, in program order.
    pub ops: Vec<Op>,
    /// Compute work items the ops refer to.
    pub works: Vec<Work>,
    /// Weights, gradients and optimizer state per rank.
    pub static_memory: StaticMemory,
    /// Parameters held per rank before ZeRO sharding.
    pub params: f64,
}

impl StageProgram {
    /// The ops of one stream, as indices in program order.
    pub fn stream_ops(&self, stream: Stream) -> Vec<OpIdx> {
        (0..self.ops.len() as OpIdx).filter(|&i| self.ops[i as usize].stream == stream).collect()
    }
}
