//! The forward work of one transformer layer, the embedding and the output head, for one micro-batch on one
//! tensor-/context-parallel rank: GEMM shapes, attention-core FLOPs and element-wise bytes.
//!
//! This is what a step simulator costs. Forward only: the backward pass of a GEMM is two GEMMs of the same size
//! (data gradient and weight gradient), and of the attention core twice its forward; applying that is the
//! simulator's business. FLOPs count a multiply-add as 2.

use serde::{Deserialize, Serialize};

use crate::spec::{MlpKind, ModelSpec};

/// The shape of one micro-batch on one rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkShape {
    /// Sequences per micro-batch `b`.
    pub micro_batch: u64,
    /// Tokens per sequence `s` (before context parallelism).
    pub seq_len: u64,
    /// Tensor-parallel size `t`: splits heads, MLP width and vocabulary.
    pub tp: u64,
    /// Context-parallel size: each rank holds `s / cp` tokens of every sequence.
    pub cp: u64,
    /// Sequence parallelism: norms, residuals and dropout run on `1/tp` of the tokens.
    pub sequence_parallel: bool,
    /// Causal attention: the attention core does half the `s²` work (the masked half is skipped).
    pub causal: bool,
    /// Bytes per activation element (2 for bf16/fp16).
    pub element_bytes: u64,
}

impl Default for WorkShape {
    fn default() -> Self {
        WorkShape {
            micro_batch: 1,
            seq_len: 2048,
            tp: 1,
            cp: 1,
            sequence_parallel: false,
            causal: true,
            element_bytes: 2,
        }
    }
}

impl WorkShape {
    /// Tokens this rank processes in a GEMM: `b · s / cp`.
    pub fn tokens(&self) -> u64 {
        self.micro_batch * self.seq_len / self.cp.max(1)
    }

    /// Tokens this rank touches in norms and residual adds: `tokens / tp` with sequence parallelism.
    pub fn norm_tokens(&self) -> u64 {
        if self.sequence_parallel { self.tokens() / self.tp.max(1) } else { self.tokens() }
    }
}

/// Which matrix multiplication a [`Gemm`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GemmKind {
    /// Fused Q, K, V projection (column-parallel).
    Qkv,
    /// MLA query down-projection to the query latent (replicated across TP).
    QDown,
    /// MLA query up-projection from the latent (column-parallel).
    QUp,
    /// MLA key/value down-projection to the cached latent and the rotary key (replicated).
    KvDown,
    /// MLA key/value up-projection (column-parallel).
    KvUp,
    /// Attention output projection (row-parallel).
    AttnOut,
    /// MLP first matrix; for a gated MLP, gate and up fused (`n = 2·ffn/tp`).
    MlpUp,
    /// MLP second matrix (row-parallel).
    MlpDown,
    /// MoE router: token-to-expert scores (replicated).
    Router,
    /// Routed experts' first matrices, a grouped GEMM over the experts.
    ExpertUp,
    /// Routed experts' second matrices, a grouped GEMM over the experts.
    ExpertDown,
    /// Shared experts' first matrices.
    SharedUp,
    /// Shared experts' second matrices.
    SharedDown,
    /// Output head: hidden to vocabulary logits (vocab-parallel).
    Logits,
}

/// One GEMM `[m × k] · [k × n]` on one rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gemm {
    /// Which matrix this is.
    pub kind: GemmKind,
    /// Rows (tokens).
    pub m: u64,
    /// Output features on this rank.
    pub n: u64,
    /// Input features on this rank.
    pub k: u64,
    /// 1 for a plain GEMM; for a grouped GEMM, the number of weight matrices the `m` rows are spread over
    /// (routed experts; balanced routing assumed, so each gets `m / groups` rows on average).
    pub groups: u64,
}

impl Gemm {
    /// Forward FLOPs: `2·m·n·k`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// The attention core (`softmax(QKᵀ)·V`) of one layer on one rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttentionCore {
    /// Sequences `b`.
    pub batch: u64,
    /// Query heads on this rank (`n_heads / tp`).
    pub heads: u64,
    /// Queries per sequence on this rank (`s / cp`).
    pub q_len: u64,
    /// Keys per sequence each query may see (`s`).
    pub kv_len: u64,
    /// Width of a query/key head.
    pub qk_head_dim: u64,
    /// Width of a value head.
    pub v_head_dim: u64,
    /// Whether the causal half is skipped.
    pub causal: bool,
}

impl AttentionCore {
    /// Forward FLOPs of `QKᵀ`: `2·b·heads·q_len·kv_len·d_qk`, halved when causal.
    pub fn qk_flops(&self) -> f64 {
        self.pairs() * 2.0 * self.qk_head_dim as f64
    }

    /// Forward FLOPs of `P·V`: `2·b·heads·q_len·kv_len·d_v`, halved when causal.
    pub fn av_flops(&self) -> f64 {
        self.pairs() * 2.0 * self.v_head_dim as f64
    }

    /// Both products.
    pub fn flops(&self) -> f64 {
        self.qk_flops() + self.av_flops()
    }

    fn pairs(&self) -> f64 {
        let full = self.batch as f64 * self.heads as f64 * self.q_len as f64 * self.kv_len as f64;
        if self.causal { full / 2.0 } else { full }
    }
}

/// A memory-bound element-wise operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElementwiseKind {
    /// Norm before attention.
    InputNorm,
    /// Rotary embedding applied to Q and K.
    Rotary,
    /// Residual add after attention.
    AttnResidual,
    /// Norm before the MLP.
    PostAttnNorm,
    /// MLP activation (GELU, or SiLU-and-multiply when gated), experts included.
    Activation,
    /// MoE token permutation to experts and back.
    Permute,
    /// Residual add after the MLP.
    MlpResidual,
    /// Embedding lookup (plus learned positions).
    Embedding,
    /// Final norm before the output head.
    FinalNorm,
    /// Softmax cross-entropy over the logits.
    Loss,
}

/// Bytes one element-wise operation reads plus writes in device memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elementwise {
    /// Which operation.
    pub kind: ElementwiseKind,
    /// Bytes read + written.
    pub bytes: u64,
}

/// The forward work of one layer for one micro-batch on one rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerWork {
    /// The layer index (0-based).
    pub layer: u64,
    /// Whether the layer's MLP is a mixture of experts.
    pub moe: bool,
    /// The GEMMs in execution order.
    pub gemms: Vec<Gemm>,
    /// The attention core.
    pub attention: AttentionCore,
    /// Memory-bound operations.
    pub elementwise: Vec<Elementwise>,
    /// Token copies sent to routed experts (`tokens · top_k`; what an all-to-all dispatch moves); 0 when dense.
    pub routed_tokens: u64,
}

impl LayerWork {
    /// FLOPs of all GEMMs.
    pub fn gemm_flops(&self) -> f64 {
        self.gemms.iter().map(Gemm::flops).sum()
    }

    /// Forward FLOPs: GEMMs plus attention core.
    pub fn forward_flops(&self) -> f64 {
        self.gemm_flops() + self.attention.flops()
    }

    /// Bytes of all element-wise operations.
    pub fn elementwise_bytes(&self) -> u64 {
        self.elementwise.iter().map(|e| e.bytes).sum()
    }
}

/// The work outside the layers: embedding lookup, final norm, output head and loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeWork {
    /// Embedding lookup bytes (first pipeline stage).
    pub embedding: Elementwise,
    /// Final norm bytes (last stage).
    pub final_norm: Elementwise,
    /// The logits GEMM (last stage).
    pub logits: Gemm,
    /// Softmax cross-entropy bytes (last stage).
    pub loss: Elementwise,
}

/// Forward work of layer `layer` for one micro-batch of `shape` on one tensor-/context-parallel rank.
///
/// Tensor parallelism splits heads and MLP width (column-parallel first matrices, row-parallel second ones);
/// MLA's down-projections and the router are replicated. Expert parallelism is left to the caller: divide
/// a grouped GEMM's `groups` (and its rows) by `ep`.
pub fn layer_work(spec: &ModelSpec, shape: &WorkShape, layer: u64) -> LayerWork {
    let t = shape.tp.max(1);
    let m = shape.tokens();
    let e = shape.element_bytes;
    let h = spec.hidden;
    let d = spec.attn_dims();
    let gemm = |kind, n, k| Gemm { kind, m, n, k, groups: 1 };
    let mut gemms = Vec::new();
    match &spec.mla {
        None => gemms.push(gemm(GemmKind::Qkv, (d.q + d.k + d.v) / t, h)),
        Some(mla) => {
            if mla.q_lora_rank > 0 {
                gemms.push(gemm(GemmKind::QDown, mla.q_lora_rank, h));
                gemms.push(gemm(GemmKind::QUp, d.q / t, mla.q_lora_rank));
            } else {
                gemms.push(gemm(GemmKind::QUp, d.q / t, h));
            }
            gemms.push(gemm(GemmKind::KvDown, mla.kv_lora_rank + mla.qk_rope_head_dim, h));
            let kv_up = spec.n_heads * (mla.qk_nope_head_dim + mla.v_head_dim);
            gemms.push(gemm(GemmKind::KvUp, kv_up / t, mla.kv_lora_rank));
        }
    }
    gemms.push(gemm(GemmKind::AttnOut, h, d.o / t));

    let up_width = |ffn: u64| match spec.mlp {
        MlpKind::Plain => ffn,
        MlpKind::Gated => 2 * ffn,
    };
    let act_bytes = |rows: u64, ffn: u64| match spec.mlp {
        MlpKind::Plain => 2 * rows * ffn / t * e,
        MlpKind::Gated => 3 * rows * ffn / t * e,
    };
    let moe = spec.is_moe_layer(layer);
    let mut routed_tokens = 0;
    let mut activation = 0;
    let mut permute = 0;
    match (moe, &spec.moe) {
        (true, Some(cfg)) => {
            routed_tokens = m * cfg.top_k;
            gemms.push(gemm(GemmKind::Router, cfg.n_experts, h));
            if cfg.n_shared_experts > 0 {
                let ffn = cfg.n_shared_experts * cfg.shared_ffn_hidden;
                gemms.push(gemm(GemmKind::SharedUp, up_width(ffn) / t, h));
                gemms.push(gemm(GemmKind::SharedDown, h, ffn / t));
                activation += act_bytes(m, ffn);
            }
            let f = cfg.expert_ffn_hidden;
            let grouped = |kind, n, k| Gemm { kind, m: routed_tokens, n, k, groups: cfg.n_experts };
            gemms.push(grouped(GemmKind::ExpertUp, up_width(f) / t, h));
            gemms.push(grouped(GemmKind::ExpertDown, h, f / t));
            activation += act_bytes(routed_tokens, f);
            // Gather to expert order and scatter back, each reading and writing every routed row.
            permute = 2 * 2 * routed_tokens * h * e;
        }
        _ => {
            gemms.push(gemm(GemmKind::MlpUp, up_width(spec.ffn_hidden) / t, h));
            gemms.push(gemm(GemmKind::MlpDown, h, spec.ffn_hidden / t));
            activation = act_bytes(m, spec.ffn_hidden);
        }
    }

    let n = shape.norm_tokens();
    let mut elementwise = vec![
        Elementwise { kind: ElementwiseKind::InputNorm, bytes: 2 * n * h * e },
        Elementwise { kind: ElementwiseKind::Rotary, bytes: rotary_bytes(spec, m, t, e) },
        Elementwise { kind: ElementwiseKind::AttnResidual, bytes: 3 * n * h * e },
        Elementwise { kind: ElementwiseKind::PostAttnNorm, bytes: 2 * n * h * e },
        Elementwise { kind: ElementwiseKind::Activation, bytes: activation },
    ];
    if permute > 0 {
        elementwise.push(Elementwise { kind: ElementwiseKind::Permute, bytes: permute });
    }
    elementwise.push(Elementwise { kind: ElementwiseKind::MlpResidual, bytes: 3 * n * h * e });
    elementwise.retain(|op| op.bytes > 0);

    let attention = AttentionCore {
        batch: shape.micro_batch,
        heads: spec.n_heads / t,
        q_len: shape.seq_len / shape.cp.max(1),
        kv_len: shape.seq_len,
        qk_head_dim: d.qk_head_dim,
        v_head_dim: d.v_head_dim,
        causal: shape.causal,
    };
    LayerWork { layer, moe, gemms, attention, elementwise, routed_tokens }
}

/// Forward work outside the layers for one micro-batch of `shape` on one rank.
pub fn edge_work(spec: &ModelSpec, shape: &WorkShape) -> EdgeWork {
    let t = shape.tp.max(1);
    let m = shape.tokens();
    let e = shape.element_bytes;
    let h = spec.hidden;
    let n = shape.norm_tokens();
    let lookups = match spec.positions {
        crate::spec::Positions::Learned => 2,
        crate::spec::Positions::Rotary => 1,
    };
    EdgeWork {
        // Read the looked-up rows (and position rows), write the sum.
        embedding: Elementwise { kind: ElementwiseKind::Embedding, bytes: (lookups + 1) * n * h * e },
        final_norm: Elementwise { kind: ElementwiseKind::FinalNorm, bytes: 2 * n * h * e },
        logits: Gemm { kind: GemmKind::Logits, m, n: spec.vocab / t, k: h, groups: 1 },
        // Read the logits, write the softmax (kept for the backward pass).
        loss: Elementwise { kind: ElementwiseKind::Loss, bytes: 2 * m * (spec.vocab / t) * e },
    }
}

/// Rotary on Q and K: read and write both (MLA rotates only its rotary slice).
fn rotary_bytes(spec: &ModelSpec, m: u64, t: u64, e: u64) -> u64 {
    if spec.positions != crate::spec::Positions::Rotary {
        return 0;
    }
    let width = match &spec.mla {
        Some(mla) => (spec.n_heads / t + 1) * mla.qk_rope_head_dim,
        None => {
            let d = spec.attn_dims();
            (d.q + d.k) / t
        }
    };
    2 * m * width * e
}

#[cfg(test)]
#[path = "work_tests.rs"]
mod tests;
