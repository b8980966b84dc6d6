//! A parallel plan: how one training step is split over GPUs, and its validation.

use serde::{Deserialize, Serialize};

use crate::PlanError;

/// The order of pipeline work on each stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineSchedule {
    /// All forwards, then all backwards (Huang et al. 2019).
    Gpipe,
    /// One-forward-one-backward (PipeDream-Flush; Megatron's default without interleaving).
    #[serde(rename = "1f1b")]
    OneFOneB,
    /// Megatron's interleaved 1F1B over `vp` virtual stages per rank (Narayanan et al. 2021 §2.2.2).
    #[serde(rename = "interleaved-1f1b")]
    Interleaved,
    /// Zero Bubble H1 (Qi et al. 2024): backward split into input-gradient B and weight-gradient W, with W
    /// deferred to fill the cool-down bubble; same activation memory as 1F1B.
    #[serde(rename = "zb-h1")]
    ZbH1,
}

impl PipelineSchedule {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            PipelineSchedule::Gpipe => "gpipe",
            PipelineSchedule::OneFOneB => "1f1b",
            PipelineSchedule::Interleaved => "interleaved-1f1b",
            PipelineSchedule::ZbH1 => "zb-h1",
        }
    }

    /// Every schedule, in a stable order.
    pub const ALL: [PipelineSchedule; 4] = [
        PipelineSchedule::Gpipe,
        PipelineSchedule::OneFOneB,
        PipelineSchedule::Interleaved,
        PipelineSchedule::ZbH1,
    ];
}

impl std::str::FromStr for PipelineSchedule {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, PlanError> {
        PipelineSchedule::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| PlanError::Unknown {
            field: "schedule",
            value: s.to_owned(),
            expected: "gpipe, 1f1b, interleaved-1f1b or zb-h1",
        })
    }
}

/// Activation recomputation, as in Korthikanti et al. 2022.
pub use model::Recompute;

/// The kernel implementation a framework uses for the memory-bound and attention parts of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelStack {
    /// Fused kernels (Megatron-LM / Megatron-Core / NeMo / Transformer Engine).
    Fused,
    /// Eager PyTorch modules (PyTorch FSDP recipes such as llm-foundry).
    Eager,
}

impl KernelStack {
    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KernelStack::Fused => "fused",
            KernelStack::Eager => "eager",
        }
    }
}

/// How ranks are numbered: the order in which parallel dimensions vary, fastest first.
///
/// Megatron's default `tp-cp-ep-dp-pp` keeps a TP group on consecutive ranks (so inside a node) and puts pipeline
/// stages furthest apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankOrder {
    /// tp fastest, then cp, dp, pp (Megatron's default).
    TpCpDpPp,
    /// tp fastest, then cp, pp, dp: pipeline neighbours adjacent, DP replicas furthest apart.
    TpCpPpDp,
}

impl RankOrder {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RankOrder::TpCpDpPp => "tp-cp-ep-dp-pp",
            RankOrder::TpCpPpDp => "tp-cp-ep-pp-dp",
        }
    }
}

impl std::str::FromStr for RankOrder {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, PlanError> {
        match s {
            "tp-cp-ep-dp-pp" | "tp-cp-dp-pp" => Ok(RankOrder::TpCpDpPp),
            "tp-cp-ep-pp-dp" | "tp-cp-pp-dp" => Ok(RankOrder::TpCpPpDp),
            _ => Err(PlanError::Unknown {
                field: "rank_order",
                value: s.to_owned(),
                expected: "tp-cp-ep-dp-pp or tp-cp-ep-pp-dp",
            }),
        }
    }
}

/// How one optimizer step is split over GPUs. As a file (TOML), every field is optional and defaults to
/// [`ParallelPlan::default`]; unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParallelPlan {
    /// Tensor-parallel size.
    pub tp: u32,
    /// Pipeline-parallel size (stages).
    pub pp: u32,
    /// Data-parallel size (replicas).
    pub dp: u32,
    /// Context-parallel size (the sequence split over ranks; ring attention).
    pub cp: u32,
    /// Expert-parallel size for MoE layers: experts split over this many ranks of the DP×CP group.
    pub ep: u32,
    /// Virtual pipeline stages (model chunks) per rank; more than 1 only with the interleaved schedule.
    pub vp: u32,
    /// Sequences per micro-batch.
    pub micro_batch: u32,
    /// Sequences per optimizer step, over all replicas.
    pub global_batch: u32,
    /// Tokens per sequence.
    pub seq_len: u32,
    /// ZeRO stage: 0 none, 1 optimizer state sharded (Megatron's distributed optimizer), 2 + gradients,
    /// 3 + parameters (FSDP FULL_SHARD).
    pub zero_stage: u8,
    /// Megatron sequence parallelism: norms and dropout split over the TP group, TP all-reduces become
    /// all-gather + reduce-scatter.
    pub sequence_parallel: bool,
    /// Activation recomputation.
    pub recompute: Recompute,
    /// Pipeline schedule.
    pub schedule: PipelineSchedule,
    /// Overlap the gradient reduction with the backward pass in buckets (Megatron-Core `overlap_grad_reduce`,
    /// PyTorch DDP). Megatron-LM 2021 did not: its all-reduce ran after the last backward.
    pub overlap_grad_reduce: bool,
    /// Gradient bucket size in parameters. `None` uses Megatron's `max(40M, 1M·dp)`.
    pub bucket_params: Option<u64>,
    /// FSDP/ZeRO-3: all-gather the next unit's parameters while the current one computes.
    pub fsdp_prefetch: bool,
    /// Precision of weights, activations and GEMMs. FP8 runs the layers' GEMMs at the FP8 peak and keeps
    /// 16-bit weights and activations (Transformer Engine's recipe).
    pub precision: model::Precision,
    /// FlashAttention: fused attention core, no stored score matrix. Off for runs before 2022.
    pub flash_attention: bool,
    /// Reduce gradients in fp32 (Megatron-Core's default with bf16); else in the training precision.
    pub grad_reduce_in_fp32: bool,
    /// ZeRO-1/2: overlap the parameter all-gather with the next forward (Megatron-Core
    /// `overlap_param_gather`); else it runs after the optimizer step.
    pub overlap_param_gather: bool,
    /// Whether pipeline sends and receives run on their own streams, overlapped with compute (Megatron-Core's
    /// `overlap_p2p_comm`). `None` (the default) is the framework's own choice, resolved by
    /// [`ParallelPlan::overlaps_p2p`]: overlapped for the interleaved schedule, blocking for every other.
    /// Megatron-LM's `--no-overlap-p2p-communication` leaves the flag on, and `arguments.py` turns it off
    /// whenever no virtual pipeline is configured ("non-interleaved schedule does not support overlapping p2p
    /// communication"; `forward_backward_pipelining_without_interleaving` raises if it is set), so a
    /// non-interleaved 1F1B exchanges through `batch_isend_irecv` and a device synchronisation.
    ///
    /// When blocking, every send and receive of the schedule runs on the compute stream, in the schedule's order,
    /// and the kernels wait for it: Megatron-LM 2021's `p2p_communication._communicate` posted each exchange as
    /// a batch of NCCL sends and receives, waited for all of them and synchronised the device. Without sequence
    /// parallelism each TP rank then sends its `1/tp` of the activation and the receivers rebuild it with an
    /// all-gather over the TP group (the scatter/gather of Narayanan et al. 2021 §4.1), also on the compute
    /// stream. Sends are eager: a send completes after its transfer whether or not the peer is receiving yet
    /// (NCCL's rendezvous wait is not modelled). `Some(false)` describes Megatron-LM 2021 on every schedule
    /// (it had no overlap at all).
    pub overlap_p2p_comm: Option<bool>,
    /// Layers per pipeline stage when not uniform (length `pp`, summing to the model's layers).
    pub stage_layers: Option<Vec<u32>>,
    /// How the framework runs the small kernels: Megatron's fused kernels, or eager PyTorch modules
    /// (separate norm, activation, residual and dropout kernels; e.g. llm-foundry). The compute model
    /// costs each stack with its own figures (`crates/sim/data/compute.toml`, `[kernels.*]`).
    pub kernels: KernelStack,
    /// Rank numbering.
    pub rank_order: RankOrder,
}

impl Default for ParallelPlan {
    fn default() -> ParallelPlan {
        ParallelPlan {
            tp: 1,
            pp: 1,
            dp: 1,
            cp: 1,
            ep: 1,
            vp: 1,
            micro_batch: 1,
            global_batch: 1,
            seq_len: 2048,
            zero_stage: 0,
            sequence_parallel: false,
            recompute: Recompute::None,
            schedule: PipelineSchedule::OneFOneB,
            overlap_grad_reduce: true,
            bucket_params: None,
            fsdp_prefetch: true,
            stage_layers: None,
            precision: model::Precision::Bf16,
            flash_attention: true,
            grad_reduce_in_fp32: true,
            overlap_param_gather: false,
            overlap_p2p_comm: None,
            kernels: KernelStack::Fused,
            rank_order: RankOrder::TpCpDpPp,
        }
    }
}

impl ParallelPlan {
    /// GPUs the plan occupies: tp·cp·dp·pp (expert parallelism reuses the DP×CP ranks).
    pub fn gpus(&self) -> u64 {
        u64::from(self.tp) * u64::from(self.cp) * u64::from(self.dp) * u64::from(self.pp)
    }

    /// Micro-batches per replica per step: global_batch / (micro_batch · dp).
    pub fn micro_batches(&self) -> u32 {
        self.global_batch / (self.micro_batch * self.dp).max(1)
    }

    /// Whether pipeline communication overlaps compute: `overlap_p2p_comm` when given, else the framework
    /// default (overlapped only for the interleaved schedule, as Megatron-LM resolves it).
    pub fn overlaps_p2p(&self) -> bool {
        self.overlap_p2p_comm.unwrap_or(self.schedule == PipelineSchedule::Interleaved)
    }

    /// Tokens per optimizer step.
    pub fn tokens_per_step(&self) -> u64 {
        u64::from(self.global_batch) * u64::from(self.seq_len)
    }

    /// Layers on each pipeline stage (uneven layouts from `stage_layers`, else an even split).
    pub fn layers_per_stage(&self, n_layers: u64) -> Vec<u32> {
        match &self.stage_layers {
            Some(v) => v.clone(),
            None => vec![(n_layers / u64::from(self.pp.max(1))) as u32; self.pp.max(1) as usize],
        }
    }

    /// Bytes per activation element: the training precision, at least 16-bit (FP8 runs keep 16-bit activations).
    pub fn element_bytes(&self) -> u64 {
        self.precision.bytes().max(2)
    }

    /// What sets one micro-batch's activation memory on one rank under this plan.
    pub fn activation_config(&self) -> model::ActivationConfig {
        model::ActivationConfig {
            micro_batch: u64::from(self.micro_batch),
            seq_len: u64::from(self.seq_len),
            tp: u64::from(self.tp),
            cp: u64::from(self.cp),
            sequence_parallel: self.sequence_parallel,
            recompute: self.recompute,
            flash_attention: self.flash_attention,
            dropout: false,
            element_bytes: self.element_bytes(),
        }
    }

    /// Bytes per parameter of weights, gradients (fp32 when reduced in fp32) and Adam state.
    pub fn state_bytes(&self) -> model::StateBytes {
        let grads = if self.grad_reduce_in_fp32 { model::Precision::Fp32 } else { self.precision };
        model::state_bytes(self.precision, grads, model::Optimizer::Adam)
    }

    /// Layer ranges of every virtual stage (`pp · vp` of them, in virtual-stage order). Virtual stage `c·p + s`
    /// holds the `c`-th `1/vp` of stage `s`'s layers, counted along the model: layers run through stage 0
    /// chunk 0, stage 1 chunk 0, ..., stage p−1 chunk 0, stage 0 chunk 1, ...
    pub fn virtual_stage_layers(&self, n_layers: u64) -> Vec<std::ops::Range<u32>> {
        let per_stage = self.layers_per_stage(n_layers);
        let v = self.vp.max(1);
        let mut out = Vec::with_capacity((self.pp * v) as usize);
        let mut next = 0;
        for _chunk in 0..v {
            for &layers in &per_stage {
                out.push(next..next + layers / v);
                next += layers / v;
            }
        }
        out
    }

    /// Checks the plan against the model and the GPU count. The error names the constraint and the values.
    pub fn validate(&self, spec: &model::ModelSpec, gpus: Option<u64>) -> Result<(), PlanError> {
        let positive = [
            ("tp", self.tp),
            ("pp", self.pp),
            ("dp", self.dp),
            ("cp", self.cp),
            ("ep", self.ep),
            ("vp", self.vp),
            ("micro_batch", self.micro_batch),
            ("global_batch", self.global_batch),
            ("seq_len", self.seq_len),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(PlanError::Constraint(format!(
                    "{field} = 0: every parallel size must be at least 1"
                )));
            }
        }
        let c = |msg: String| Err(PlanError::Constraint(msg));
        if self.zero_stage > 3 {
            return c(format!("zero_stage = {}: expected 0, 1, 2 or 3", self.zero_stage));
        }
        if let Some(g) = gpus
            && self.gpus() != g
        {
            return c(format!(
                "tp·cp·dp·pp = {}·{}·{}·{} = {} but the run has {g} GPUs",
                self.tp,
                self.cp,
                self.dp,
                self.pp,
                self.gpus()
            ));
        }
        let heads = spec.n_heads;
        if !heads.is_multiple_of(u64::from(self.tp)) {
            return c(format!("attention heads ({heads}) are not divisible by tp = {}", self.tp));
        }
        if spec.mla.is_none()
            && !spec.n_kv_heads.is_multiple_of(u64::from(self.tp))
            && u64::from(self.tp) % spec.n_kv_heads != 0
        {
            return c(format!(
                "kv heads ({}) and tp = {} do not divide one another: K/V heads cannot be split or replicated evenly",
                spec.n_kv_heads, self.tp
            ));
        }
        if self.vp > 1 && self.schedule != PipelineSchedule::Interleaved {
            return c(format!(
                "vp = {} needs the interleaved-1f1b schedule, not {}",
                self.vp,
                self.schedule.name()
            ));
        }
        if self.schedule == PipelineSchedule::Interleaved && self.pp < 2 {
            return c("the interleaved-1f1b schedule needs pp ≥ 2".to_owned());
        }
        match &self.stage_layers {
            Some(layers) => {
                if layers.len() != self.pp as usize {
                    return c(format!("stage_layers lists {} stages but pp = {}", layers.len(), self.pp));
                }
                let total: u64 = layers.iter().map(|&l| u64::from(l)).sum();
                if total != spec.n_layers {
                    return c(format!(
                        "stage_layers sum to {total} but the model has {} layers",
                        spec.n_layers
                    ));
                }
                if let Some(l) = layers.iter().find(|&&l| l % self.vp != 0) {
                    return c(format!("a stage of {l} layers cannot be split into vp = {} chunks", self.vp));
                }
            }
            None => {
                let per = u64::from(self.pp) * u64::from(self.vp);
                if !spec.n_layers.is_multiple_of(per) {
                    return c(format!(
                        "layers ({}) are not divisible by pp·vp = {}·{} = {per}; give stage_layers for an uneven split",
                        spec.n_layers, self.pp, self.vp
                    ));
                }
            }
        }
        let per_step = self.micro_batch * self.dp;
        if !self.global_batch.is_multiple_of(per_step) {
            return c(format!(
                "global batch ({}) is not divisible by micro_batch·dp = {}·{} = {per_step}",
                self.global_batch, self.micro_batch, self.dp
            ));
        }
        let m = self.micro_batches();
        if self.schedule == PipelineSchedule::Interleaved && !m.is_multiple_of(self.pp) {
            return c(format!(
                "interleaved-1f1b needs micro-batches ({m}) to be a multiple of pp ({}), as Megatron requires",
                self.pp
            ));
        }
        if !self.seq_len.is_multiple_of(self.cp) {
            return c(format!("sequence length ({}) is not divisible by cp = {}", self.seq_len, self.cp));
        }
        if self.sequence_parallel && self.tp == 1 {
            return c("sequence_parallel needs tp > 1".to_owned());
        }
        if self.sequence_parallel && u64::from(self.seq_len / self.cp) % u64::from(self.tp) != 0 {
            return c(format!(
                "sequence parallelism splits the sequence ({}) over tp = {}: not divisible",
                self.seq_len / self.cp,
                self.tp
            ));
        }
        if let Some(moe) = &spec.moe {
            let dp_cp = self.dp * self.cp;
            if !dp_cp.is_multiple_of(self.ep) {
                return c(format!("ep = {} must divide dp·cp = {dp_cp}", self.ep));
            }
            if moe.n_experts % u64::from(self.ep) != 0 {
                return c(format!("experts ({}) are not divisible by ep = {}", moe.n_experts, self.ep));
            }
        } else if self.ep != 1 {
            return c(format!("ep = {} but the model has no experts", self.ep));
        }
        Ok(())
    }
}
