//! Building a stage's program: the passes of the pipeline schedule expanded into per-layer compute and
//! communication ops, plus gradient reduction, FSDP gathers and the optimizer step.

use std::collections::BTreeMap;

use model::{ActivationConfig, Gemm, GemmKind, ModelSpec, Recompute, WorkShape};

use crate::layout::GroupKind;
use crate::pipeline::{Pass, PipeStep, stage_order};
use crate::plan::ParallelPlan;
use crate::program::{
    CollectiveKind, CommPurpose, Op, OpIdx, OpKind, OpTag, StageProgram, StaticMemory, Stream, Work,
};

/// FlashAttention-2's backward runs five `s²` matrix products against the forward's two (it recomputes the
/// scores): 2.5× the forward attention-core FLOPs (Dao 2023, §3.1-3.2).
const FLASH_BACKWARD_FACTOR: f64 = 2.5;
/// The attention core's backward FLOPs as a multiple of its forward: FlashAttention recomputes the scores
/// (2.5×); an unfused core runs two products per forward product (2×), plus one forward again under
/// selective recomputation.
fn attention_backward_factor(plan: &ParallelPlan) -> f64 {
    if plan.flash_attention {
        FLASH_BACKWARD_FACTOR
    } else if plan.recompute == Recompute::Selective {
        3.0
    } else {
        2.0
    }
}

/// Bytes of device memory an Adam step touches per parameter it updates: read fp32 grad, master weight, m, v
/// (16), write master, m, v (12), write the 16-bit copy (2), zero the grad (4). Derived from the update rule.
const ADAM_BYTES_PER_PARAM: f64 = 34.0;
/// Bytes per element of the score matrix moved by an unfused (non-Flash) attention core in the forward:
/// write scores, read+write softmax, read for `P·V` (2-byte elements). The backward moves twice as much.
const UNFUSED_SCORE_BYTES_PER_ELEMENT: f64 = 8.0;

/// Per-stage facts the builder needs, derived once from the model and plan.
struct Ctx<'a> {
    spec: &'a ModelSpec,
    plan: &'a ParallelPlan,
    shape: WorkShape,
    act: ActivationConfig,
    /// Activation bytes one token-slab of the layer's input takes on this rank: `b·s/cp·h·e`.
    act_bytes: u64,
    m: u32,
    v: u32,
    p: u32,
}

struct Builder<'a> {
    ctx: &'a Ctx<'a>,
    stage: u32,
    ops: Vec<Op>,
    works: Vec<Work>,
    work_ids: BTreeMap<(bool, &'static str), u32>,
    /// The op after which each layer's gradient for the last micro-batch is complete.
    grad_ready: BTreeMap<u32, OpIdx>,
    /// Last compute op of each FSDP unit visit, in order, for prefetch dependencies.
    unit_done: Vec<OpIdx>,
}

/// Builds the program of pipeline stage `stage`.
pub(crate) fn build_stage(
    spec: &ModelSpec,
    plan: &ParallelPlan,
    stage: u32,
    stage_layer_ranges: &[std::ops::Range<u32>],
) -> StageProgram {
    let e = plan.element_bytes();
    let shape = WorkShape {
        micro_batch: u64::from(plan.micro_batch),
        seq_len: u64::from(plan.seq_len),
        tp: u64::from(plan.tp),
        cp: u64::from(plan.cp),
        sequence_parallel: plan.sequence_parallel,
        causal: true,
        element_bytes: e,
    };
    let act = plan.activation_config();
    let ctx = Ctx {
        spec,
        plan,
        shape,
        act,
        act_bytes: shape.tokens() * spec.hidden * e,
        m: plan.micro_batches(),
        v: plan.vp,
        p: plan.pp,
    };
    let mut b = Builder {
        ctx: &ctx,
        stage,
        ops: Vec::new(),
        works: Vec::new(),
        work_ids: BTreeMap::new(),
        grad_ready: BTreeMap::new(),
        unit_done: Vec::new(),
    };
    // Chunk c of this rank is virtual stage c·p + stage, holding stage_layer_ranges[that].
    let chunk_layers: Vec<Vec<u32>> =
        (0..ctx.v).map(|c| stage_layer_ranges[(c * ctx.p + stage) as usize].clone().collect()).collect();
    let zero_prologue = b.zero12_param_gather_prologue(&chunk_layers);
    for step in stage_order(plan.schedule, stage, ctx.p, ctx.m, ctx.v) {
        b.pass(step, &chunk_layers[step.chunk as usize], &zero_prologue);
    }
    let (static_memory, params) = static_memory(&ctx, &chunk_layers);
    b.gradient_reduction_and_optimizer(params);
    StageProgram { stage, chunk_layers, ops: b.ops, works: b.works, static_memory, params }
}

fn tag(pass: Option<Pass>, micro_batch: u32, chunk: u32, layer: u32) -> OpTag {
    OpTag { pass, micro_batch, chunk, layer }
}

/// Pseudo-layer ids for the embedding (first stage) and output head (last stage) in gradient and FSDP bookkeeping.
const NO_LAYER: u32 = u32::MAX;
const HEAD: u32 = u32::MAX - 1;

impl Builder<'_> {
    fn push(&mut self, stream: Stream, kind: OpKind, deps: Vec<OpIdx>, tag: OpTag) -> OpIdx {
        self.ops.push(Op { stream, kind, deps, tag, alloc_bytes: 0, free_bytes: 0 });
        (self.ops.len() - 1) as OpIdx
    }

    fn compute(&mut self, work: u32, deps: Vec<OpIdx>, tag: OpTag) -> OpIdx {
        self.push(Stream::Compute, OpKind::Compute { work }, deps, tag)
    }

    #[allow(clippy::too_many_arguments)] // one op record, spelled out at every call site
    fn collective(
        &mut self,
        stream: Stream,
        group: GroupKind,
        op: CollectiveKind,
        bytes: u64,
        purpose: CommPurpose,
        deps: Vec<OpIdx>,
        tag: OpTag,
    ) -> OpIdx {
        self.push(stream, OpKind::Collective { group, op, bytes, purpose }, deps, tag)
    }

    /// The work item for `(moe layer?, label)`, created on first use by `make`.
    fn work(&mut self, moe: bool, label: &'static str, make: impl FnOnce(&Ctx<'_>) -> Work) -> u32 {
        if let Some(&id) = self.work_ids.get(&(moe, label)) {
            return id;
        }
        let mut w = make(self.ctx);
        w.label = label;
        self.works.push(w);
        let id = (self.works.len() - 1) as u32;
        self.work_ids.insert((moe, label), id);
        id
    }

    /// TP activation collectives around a block: with sequence parallelism an all-gather before and a
    /// reduce-scatter after; without, one all-reduce after. Returns (op to wait on before the block, None) or
    /// the all-reduce after.
    fn tp_before(&mut self, deps: Vec<OpIdx>, t: OpTag) -> Vec<OpIdx> {
        let c = self.ctx;
        if c.plan.tp > 1 && c.plan.sequence_parallel {
            let ag = self.collective(
                Stream::Compute,
                GroupKind::Tp,
                CollectiveKind::AllGather,
                c.act_bytes,
                CommPurpose::Tp,
                deps,
                t,
            );
            vec![ag]
        } else {
            deps
        }
    }

    fn tp_after(&mut self, last: OpIdx, t: OpTag) -> OpIdx {
        let c = self.ctx;
        if c.plan.tp == 1 {
            return last;
        }
        let op =
            if c.plan.sequence_parallel { CollectiveKind::ReduceScatter } else { CollectiveKind::AllReduce };
        self.collective(Stream::Compute, GroupKind::Tp, op, c.act_bytes, CommPurpose::Tp, vec![last], t)
    }

    /// One pipeline pass over a chunk: receive, layers, send (or embedding / head at the ends).
    fn pass(&mut self, step: PipeStep, layers: &[u32], zero_prologue: &BTreeMap<u32, OpIdx>) {
        let c = self.ctx;
        let vs = step.chunk * c.p + self.stage;
        let last_vs = c.p * c.v - 1;
        let pp_bytes = c.act_bytes / u64::from(c.plan.tp);
        let t0 = tag(Some(step.pass), step.micro_batch, step.chunk, NO_LAYER);
        let msg = |dir: u64, dst_vs: u32| {
            (dir * u64::from(c.m) + u64::from(step.micro_batch)) << 20 | u64::from(dst_vs)
        };
        let act_chunk = self.chunk_activation_bytes(layers);
        let (send_stream, recv_stream) = if c.plan.overlaps_p2p() {
            (Stream::PpSend, Stream::PpRecv)
        } else {
            (Stream::Compute, Stream::Compute)
        };
        match step.pass {
            Pass::Forward => {
                let mut deps = Vec::new();
                if vs > 0 {
                    let peer = (vs - 1) % c.p;
                    let r = self.push(
                        recv_stream,
                        OpKind::Recv { peer, bytes: pp_bytes, tag: msg(0, vs) },
                        vec![],
                        t0,
                    );
                    deps.push(self.p2p_gather(r, t0));
                }
                let first_op = self.ops.len();
                let mut last = if vs == 0 {
                    let w = self.work(false, "embed.fwd", |c| edge_work(c, false));
                    let e = self.edge_compute(NO_LAYER, w, deps, t0, false);
                    self.tp_after(e, t0)
                } else {
                    // A chunk with no compute before its first layer still needs the receive to finish.
                    match deps.first() {
                        Some(&r) => r,
                        None => OpIdx::MAX,
                    }
                };
                for &layer in layers {
                    let extra = zero_prologue.get(&layer).copied().filter(|_| step.micro_batch == 0);
                    last = self.layer_forward(layer, step, last, extra, false);
                }
                if vs == last_vs {
                    let w = self.work(false, "head.fwd", |c| edge_work(c, true));
                    self.edge_compute(HEAD, w, deps_of(last), t0, false);
                } else {
                    let peer = (vs + 1) % c.p;
                    self.push(
                        send_stream,
                        OpKind::Send { peer, bytes: pp_bytes, tag: msg(0, vs + 1) },
                        deps_of(last),
                        t0,
                    );
                }
                if let Some(op) = self.ops.get_mut(first_op) {
                    op.alloc_bytes += act_chunk;
                }
            }
            Pass::Backward | Pass::BackwardInput => {
                let mut last = if vs == last_vs {
                    let w = self.work(false, "head.bwd", |c| scale_work(&edge_work(c, true), 2.0, 0.0));
                    let h = self.edge_compute(HEAD, w, vec![], t0, true);
                    self.grad_ready.insert(HEAD, h);
                    h
                } else {
                    let peer = (vs + 1) % c.p;
                    let r = self.push(
                        recv_stream,
                        OpKind::Recv { peer, bytes: pp_bytes, tag: msg(1, vs) },
                        vec![],
                        t0,
                    );
                    self.p2p_gather(r, t0)
                };
                for &layer in layers.iter().rev() {
                    last = self.layer_backward(layer, step, last);
                }
                if vs == 0 {
                    let w = self.work(false, "embed.bwd", |c| scale_work(&edge_work(c, false), 2.0, 0.0));
                    last = self.edge_compute(NO_LAYER, w, deps_of(last), t0, true);
                    self.grad_ready.insert(NO_LAYER, last);
                } else {
                    let peer = (vs - 1) % c.p;
                    self.push(
                        send_stream,
                        OpKind::Send { peer, bytes: pp_bytes, tag: msg(1, vs - 1) },
                        deps_of(last),
                        t0,
                    );
                }
                let freed = if step.pass == Pass::Backward { act_chunk } else { act_chunk * 2 / 34 };
                let idx = self.ops.len() - 1;
                self.ops[idx].free_bytes += freed;
            }
            Pass::BackwardWeight => {
                let mut last = OpIdx::MAX;
                for &layer in layers.iter().rev() {
                    let moe = c.spec.is_moe_layer(u64::from(layer));
                    let w = self.work(moe, "wgrad", |c| {
                        let mut w = layer_forward_work(c, u64::from(layer), Part::Whole);
                        w.attention_flops = 0.0;
                        w.memory_bytes = 0.0;
                        w
                    });
                    last = self.compute(
                        w,
                        deps_of(last),
                        tag(Some(step.pass), step.micro_batch, step.chunk, layer),
                    );
                    self.grad_ready.insert(layer, last);
                }
                self.ops[last as usize].free_bytes += act_chunk - act_chunk * 2 / 34;
            }
        }
    }

    /// After a blocking pipeline receive without sequence parallelism: the all-gather over the TP group that
    /// rebuilds the activation each TP rank received a `1/tp` share of (Megatron-LM 2021's
    /// `gather_split_1d_tensor`; Narayanan et al. 2021 §4.1). Returns the op the pass waits for.
    fn p2p_gather(&mut self, recv: OpIdx, t: OpTag) -> OpIdx {
        let c = self.ctx;
        if c.plan.overlaps_p2p() || c.plan.sequence_parallel || c.plan.tp == 1 {
            return recv;
        }
        self.collective(
            Stream::Compute,
            GroupKind::Tp,
            CollectiveKind::AllGather,
            c.act_bytes,
            CommPurpose::Pp,
            vec![recv],
            t,
        )
    }

    /// Forward of one layer (also used to recompute it before its backward under full recomputation).
    fn layer_forward(
        &mut self,
        layer: u32,
        step: PipeStep,
        prev: OpIdx,
        extra_dep: Option<OpIdx>,
        recompute: bool,
    ) -> OpIdx {
        let c = self.ctx;
        let moe = c.spec.is_moe_layer(u64::from(layer));
        let t = tag(Some(step.pass), step.micro_batch, step.chunk, layer);
        let mut deps = deps_of(prev);
        deps.extend(extra_dep);
        if !recompute && c.plan.zero_stage == 3 {
            deps.push(self.fsdp_gather(layer, t));
        }
        let unit_start = self.ops.len();
        let deps = self.tp_before(deps, t);
        let mut last = if c.plan.cp > 1 {
            let pre =
                self.work(moe, "attn.pre.fwd", |c| layer_forward_work(c, u64::from(layer), Part::AttnPre));
            let pre = self.compute(pre, deps, t);
            let kv = self.kv_bytes();
            let ring = self.collective(
                Stream::Cp,
                GroupKind::Cp,
                CollectiveKind::AllGather,
                kv,
                CommPurpose::Cp,
                vec![pre],
                t,
            );
            let core =
                self.work(moe, "attn.core.fwd", |c| layer_forward_work(c, u64::from(layer), Part::AttnCore));
            let core = self.compute(core, vec![], t);
            let post =
                self.work(moe, "attn.post.fwd", |c| layer_forward_work(c, u64::from(layer), Part::AttnPost));
            self.compute(post, vec![ring, core], t)
        } else {
            let w = self.work(moe, "attn.fwd", |c| layer_forward_work(c, u64::from(layer), Part::Attn));
            self.compute(w, deps, t)
        };
        last = self.tp_after(last, t);
        let deps = self.tp_before(vec![last], t);
        last = self.mlp(layer, moe, deps, t, false);
        last = self.tp_after(last, t);
        if recompute {
            // The recomputed layer's full activations live until its backward ends.
            let bytes = self.layer_activation_bytes(layer, Recompute::None);
            self.ops[unit_start].alloc_bytes += bytes;
        } else if c.plan.zero_stage == 3 {
            self.unit_done.push(last);
            self.ops[last as usize].free_bytes += self.fsdp_unit_bytes(layer);
        }
        last
    }

    fn mlp(&mut self, layer: u32, moe: bool, deps: Vec<OpIdx>, t: OpTag, backward: bool) -> OpIdx {
        let c = self.ctx;
        let scale = if backward { 2.0 } else { 1.0 };
        if moe && c.plan.ep > 1 {
            let (router, experts) =
                if backward { ("router.bwd", "experts.bwd") } else { ("router.fwd", "experts.fwd") };
            let r = self.work(true, router, |c| {
                scale_work(&layer_forward_work(c, u64::from(layer), Part::Router), scale, 0.0)
            });
            let r = self.compute(r, deps, t);
            let a2a = self.a2a_bytes(layer);
            let d = self.collective(
                Stream::Compute,
                GroupKind::Ep,
                CollectiveKind::AllToAll,
                a2a,
                CommPurpose::Ep,
                vec![r],
                t,
            );
            let x = self.work(true, experts, |c| {
                scale_work(&layer_forward_work(c, u64::from(layer), Part::Experts), scale, 0.0)
            });
            let x = self.compute(x, vec![d], t);
            self.collective(
                Stream::Compute,
                GroupKind::Ep,
                CollectiveKind::AllToAll,
                a2a,
                CommPurpose::Ep,
                vec![x],
                t,
            )
        } else {
            let label = if backward { "mlp.bwd" } else { "mlp.fwd" };
            let w = self.work(moe, label, |c| {
                scale_work(&layer_forward_work(c, u64::from(layer), Part::Mlp), scale, 0.0)
            });
            self.compute(w, deps, t)
        }
    }

    /// Backward of one layer: MLP then attention, each between its TP collectives. Under zero-bubble
    /// schedules this is the input-gradient half; the weight-gradient half is a separate pass.
    fn layer_backward(&mut self, layer: u32, step: PipeStep, prev: OpIdx) -> OpIdx {
        let c = self.ctx;
        let moe = c.spec.is_moe_layer(u64::from(layer));
        let t = tag(Some(step.pass), step.micro_batch, step.chunk, layer);
        let mut last = prev;
        let mut fsdp_dep = None;
        if c.plan.zero_stage == 3 {
            fsdp_dep = Some(self.fsdp_gather(layer, t));
        }
        if c.plan.recompute == Recompute::Full {
            let mut deps = deps_of(last);
            deps.extend(fsdp_dep.take());
            let first = deps.first().copied().unwrap_or(OpIdx::MAX);
            last = self.layer_forward(layer, step, first, deps.get(1).copied(), true);
        }
        let split = step.pass == Pass::BackwardInput;
        let mut deps = deps_of(last);
        deps.extend(fsdp_dep);
        let deps = self.tp_before(deps, t);
        if split {
            let w = self.work(moe, "mlp.dgrad", |c| {
                scale_work(&layer_forward_work(c, u64::from(layer), Part::Mlp), 1.0, 0.0)
            });
            last = self.compute(w, deps, t);
        } else {
            last = self.mlp(layer, moe, deps, t, true);
        }
        last = self.tp_after(last, t);
        let deps = self.tp_before(vec![last], t);
        let label = if split { "attn.dgrad" } else { "attn.bwd" };
        let gemm_scale = if split { 1.0 } else { 2.0 };
        let w = self.work(moe, label, |c| {
            let fwd = layer_forward_work(c, u64::from(layer), Part::Attn);
            let mut w = scale_work(&fwd, gemm_scale, attention_backward_factor(c.plan));
            if !c.plan.flash_attention && c.plan.recompute == Recompute::Selective {
                // Selective recomputation re-runs the attention core's forward (its score matrix traffic
                // included) before its backward (Korthikanti et al. 2022 §5).
                w.memory_bytes += fwd.memory_bytes;
            }
            w
        });
        if c.plan.cp > 1 {
            let kv = self.kv_bytes();
            let ring = self.collective(
                Stream::Cp,
                GroupKind::Cp,
                CollectiveKind::ReduceScatter,
                kv,
                CommPurpose::Cp,
                deps.clone(),
                t,
            );
            last = self.compute(w, deps, t);
            let join = self.work(moe, "cp.join", |_| empty_work());
            last = self.compute(join, vec![last, ring], t);
        } else {
            last = self.compute(w, deps, t);
        }
        last = self.tp_after(last, t);
        if c.plan.recompute == Recompute::Full {
            let bytes = self.layer_activation_bytes(layer, Recompute::None);
            self.ops[last as usize].free_bytes += bytes;
        }
        if !split {
            self.grad_ready.insert(layer, last);
        }
        if c.plan.zero_stage == 3 {
            self.ops[last as usize].free_bytes += self.fsdp_unit_bytes(layer);
            self.unit_done.push(last);
            let grads = self.layer_grad_elems(layer) * self.grad_bytes();
            self.collective(
                Stream::Dp,
                GroupKind::DpCp,
                CollectiveKind::ReduceScatter,
                grads,
                CommPurpose::Fsdp,
                vec![last],
                t,
            );
        }
        last
    }

    /// The embedding or head compute, wrapped in FSDP's gather (and, after a backward, reduce-scatter).
    fn edge_compute(
        &mut self,
        unit: u32,
        work: u32,
        mut deps: Vec<OpIdx>,
        t: OpTag,
        backward: bool,
    ) -> OpIdx {
        let fsdp = self.ctx.plan.zero_stage == 3;
        if fsdp {
            deps.push(self.fsdp_gather(unit, t));
        }
        let op = self.compute(work, deps, t);
        if fsdp {
            self.ops[op as usize].free_bytes += self.fsdp_unit_bytes(unit);
            self.unit_done.push(op);
            if backward {
                let grads = self.layer_grad_elems(unit) * self.grad_bytes();
                self.collective(
                    Stream::Dp,
                    GroupKind::DpCp,
                    CollectiveKind::ReduceScatter,
                    grads,
                    CommPurpose::Fsdp,
                    vec![op],
                    t,
                );
            }
        }
        op
    }

    /// An FSDP all-gather of one layer's parameters on the DP stream; with prefetch it may run one unit ahead.
    fn fsdp_gather(&mut self, layer: u32, t: OpTag) -> OpIdx {
        let c = self.ctx;
        let lookahead = if c.plan.fsdp_prefetch { 2 } else { 1 };
        let deps = match self.unit_done.len().checked_sub(lookahead - 1) {
            Some(i) if i > 0 => vec![self.unit_done[i - 1]],
            _ => vec![],
        };
        let bytes = self.fsdp_unit_bytes(layer);
        let op = self.collective(
            Stream::Dp,
            GroupKind::DpCp,
            CollectiveKind::AllGather,
            bytes,
            CommPurpose::Fsdp,
            deps,
            t,
        );
        self.ops[op as usize].alloc_bytes += bytes;
        op
    }

    /// ZeRO-1/2 with `overlap_param_gather`: the previous step's parameter all-gather, bucket by bucket,
    /// hidden under this step's forward. Returns the gather op each layer's first forward waits for.
    fn zero12_param_gather_prologue(&mut self, chunk_layers: &[Vec<u32>]) -> BTreeMap<u32, OpIdx> {
        let c = self.ctx;
        let mut out = BTreeMap::new();
        if !(c.plan.zero_stage == 1 || c.plan.zero_stage == 2)
            || !c.plan.overlap_param_gather
            || c.plan.dp * c.plan.cp == 1
        {
            return out;
        }
        let order: Vec<u32> = chunk_layers.iter().flatten().copied().collect();
        for bucket in self.buckets(&order) {
            let elems: u64 = bucket.iter().map(|&l| self.layer_grad_elems(l)).sum();
            let bytes = elems * c.plan.element_bytes();
            let t = tag(None, 0, 0, bucket[0]);
            let op = self.collective(
                Stream::Dp,
                GroupKind::DpCp,
                CollectiveKind::AllGather,
                bytes,
                CommPurpose::Dp,
                vec![],
                t,
            );
            for &l in &bucket {
                out.insert(l, op);
            }
        }
        out
    }

    /// Gradient reduction in buckets (ZeRO 0-2), the optimizer step, and ZeRO-1/2's parameter all-gather.
    fn gradient_reduction_and_optimizer(&mut self, params: f64) {
        let c = self.ctx;
        let plan = c.plan;
        let replicas = plan.dp * plan.cp;
        let mut reduce_ops = Vec::new();
        if plan.zero_stage < 3 && replicas > 1 {
            let last_backward = self.ops.len().saturating_sub(1) as OpIdx;
            // Layers in the order their gradients complete.
            let mut order: Vec<(OpIdx, u32)> = self.grad_ready.iter().map(|(&l, &op)| (op, l)).collect();
            order.sort();
            let layers: Vec<u32> = order.iter().map(|&(_, l)| l).collect();
            let op =
                if plan.zero_stage == 0 { CollectiveKind::AllReduce } else { CollectiveKind::ReduceScatter };
            for bucket in self.buckets(&layers) {
                let elems: u64 = bucket.iter().map(|&l| self.layer_grad_elems(l)).sum();
                let ready = bucket.iter().map(|l| self.grad_ready[l]).max().unwrap_or(last_backward);
                let dep = if plan.overlap_grad_reduce { ready } else { last_backward };
                let t = tag(None, 0, 0, bucket[0]);
                let r = self.collective(
                    Stream::Dp,
                    GroupKind::DpCp,
                    op,
                    elems * self.grad_bytes(),
                    CommPurpose::Dp,
                    vec![dep],
                    t,
                );
                reduce_ops.push(r);
            }
        } else if plan.zero_stage == 3 {
            reduce_ops.extend(self.stream_last(Stream::Dp));
        }
        let mut deps = reduce_ops;
        deps.extend(self.stream_last(Stream::PpSend));
        let shard = if plan.zero_stage >= 1 { params / replicas as f64 } else { params };
        let w = self.work(false, "optimizer", |_| Work {
            label: "",
            gemms: vec![],
            attention_flops: 0.0,
            memory_bytes: shard * ADAM_BYTES_PER_PARAM,
            fp8_eligible: false,
        });
        let opt = self.compute(w, deps, tag(None, 0, 0, NO_LAYER));
        // Gradients kept in 16 bits are copied to fp32 for the step (Megatron's mixed-precision optimizers:
        // `main_param.grad = model_param.main_grad.float()`, of the rank's shard under the distributed
        // optimizer), held while the step runs, when the activations are gone. FSDP keeps its own fp32 shards.
        if plan.zero_stage < 3 && self.grad_bytes() < 4 {
            let copies = (shard * 4.0) as u64;
            self.ops[opt as usize].alloc_bytes += copies;
            self.ops[opt as usize].free_bytes += copies;
        }
        if (plan.zero_stage == 1 || plan.zero_stage == 2) && replicas > 1 && !plan.overlap_param_gather {
            let bytes = (params as u64) * plan.element_bytes();
            self.collective(
                Stream::Dp,
                GroupKind::DpCp,
                CollectiveKind::AllGather,
                bytes,
                CommPurpose::Dp,
                vec![opt],
                tag(None, 0, 0, NO_LAYER),
            );
        }
    }

    fn stream_last(&self, stream: Stream) -> Option<OpIdx> {
        self.ops.iter().rposition(|o| o.stream == stream).map(|i| i as OpIdx)
    }

    /// Splits layers (in gradient-completion order) into buckets of at least the bucket size. Without
    /// overlap there is one bucket: the whole gradient buffer in one call, as Megatron-LM 2021 did.
    fn buckets(&self, layers: &[u32]) -> Vec<Vec<u32>> {
        let plan = self.ctx.plan;
        if !plan.overlap_grad_reduce {
            return if layers.is_empty() { vec![] } else { vec![layers.to_vec()] };
        }
        let limit = plan.bucket_params.unwrap_or_else(|| (40_000_000u64).max(1_000_000 * u64::from(plan.dp)));
        let mut out: Vec<Vec<u32>> = Vec::new();
        let mut size = 0;
        for &l in layers {
            if out.is_empty() || size >= limit {
                out.push(Vec::new());
                size = 0;
            }
            size += self.layer_grad_elems(l);
            if let Some(b) = out.last_mut() {
                b.push(l);
            }
        }
        out
    }

    /// Gradient elements of a layer on this rank (`NO_LAYER` = the embedding / head of this stage).
    fn layer_grad_elems(&self, layer: u32) -> u64 {
        let c = self.ctx;
        if layer == NO_LAYER {
            return model::params::embedding_params(c.spec) / u64::from(c.plan.tp);
        }
        if layer == HEAD {
            // A tied head on its own stage keeps a copy of the embedding; on the embedding's stage it is free.
            let head = if c.spec.tied_embeddings && c.p * c.v > 1 {
                model::params::embedding_params(c.spec)
            } else {
                model::params::output_head_params(c.spec)
            };
            return (head + c.spec.norm.params(c.spec.hidden)) / u64::from(c.plan.tp);
        }
        let (dense, experts) =
            model::layer_params_per_gpu(c.spec, u64::from(layer), u64::from(c.plan.tp), u64::from(c.plan.ep));
        (dense + experts) as u64
    }

    fn grad_bytes(&self) -> u64 {
        if self.ctx.plan.grad_reduce_in_fp32 { 4 } else { self.ctx.plan.element_bytes() }
    }

    /// Bytes of one layer's parameters gathered on every rank under FSDP (the whole layer on this TP rank).
    fn fsdp_unit_bytes(&self, layer: u32) -> u64 {
        self.layer_grad_elems(layer) * self.ctx.plan.element_bytes()
    }

    fn kv_bytes(&self) -> u64 {
        let c = self.ctx;
        let d = c.spec.attn_dims();
        c.shape.micro_batch * c.shape.seq_len * (d.k + d.v) / c.shape.tp * c.shape.element_bytes
    }

    fn a2a_bytes(&self, layer: u32) -> u64 {
        let c = self.ctx;
        let w = model::layer_work(c.spec, &c.shape, u64::from(layer));
        w.routed_tokens * c.spec.hidden * c.shape.element_bytes
    }

    fn layer_activation_bytes(&self, layer: u32, recompute: Recompute) -> u64 {
        let c = self.ctx;
        let cfg = ActivationConfig { recompute, ..c.act };
        model::activation_bytes_per_layer(c.spec, &cfg, u64::from(layer)) as u64
    }

    fn chunk_activation_bytes(&self, layers: &[u32]) -> u64 {
        layers.iter().map(|&l| self.layer_activation_bytes(l, self.ctx.plan.recompute)).sum()
    }
}

fn deps_of(op: OpIdx) -> Vec<OpIdx> {
    if op == OpIdx::MAX { vec![] } else { vec![op] }
}

fn empty_work() -> Work {
    Work { label: "", gemms: vec![], attention_flops: 0.0, memory_bytes: 0.0, fp8_eligible: false }
}

/// Which part of a layer a work item covers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Whole,
    Attn,
    AttnPre,
    AttnCore,
    AttnPost,
    Mlp,
    Router,
    Experts,
}

fn is_attn_gemm(kind: GemmKind) -> bool {
    matches!(
        kind,
        GemmKind::Qkv
            | GemmKind::QDown
            | GemmKind::QUp
            | GemmKind::KvDown
            | GemmKind::KvUp
            | GemmKind::AttnOut
    )
}

/// The forward work of part of a layer on this rank.
fn layer_forward_work(c: &Ctx<'_>, layer: u64, part: Part) -> Work {
    use model::work::ElementwiseKind as E;
    let lw = model::layer_work(c.spec, &c.shape, layer);
    let ep = u64::from(c.plan.ep);
    let gemm_in = |g: &Gemm| -> bool {
        let attn = is_attn_gemm(g.kind);
        match part {
            Part::Whole => true,
            Part::Attn => attn,
            Part::AttnPre => attn && g.kind != GemmKind::AttnOut,
            Part::AttnPost => g.kind == GemmKind::AttnOut,
            Part::AttnCore => false,
            Part::Mlp => !attn,
            Part::Router => g.kind == GemmKind::Router,
            Part::Experts => !attn && g.kind != GemmKind::Router,
        }
    };
    let gemms = lw
        .gemms
        .iter()
        .filter(|g| gemm_in(g))
        .map(|g| {
            // Expert parallelism: each rank holds n_experts/ep experts and receives their tokens.
            let g = if matches!(g.kind, GemmKind::ExpertUp | GemmKind::ExpertDown) && ep > 1 {
                Gemm { groups: (g.groups / ep).max(1), ..*g }
            } else {
                *g
            };
            let share = if matches!(g.kind, GemmKind::ExpertUp | GemmKind::ExpertDown) {
                1.0 / ep as f64
            } else {
                1.0
            };
            (g, share)
        })
        .collect();
    let ew_in = |k: E| match part {
        Part::Whole => false,
        Part::Attn => matches!(k, E::InputNorm | E::Rotary | E::AttnResidual),
        Part::AttnPre => matches!(k, E::InputNorm | E::Rotary),
        Part::AttnPost => k == E::AttnResidual,
        Part::AttnCore => false,
        Part::Mlp => matches!(k, E::PostAttnNorm | E::Activation | E::Permute | E::MlpResidual),
        Part::Router => matches!(k, E::PostAttnNorm | E::Permute),
        Part::Experts => matches!(k, E::Activation | E::MlpResidual),
    };
    let mut memory_bytes: f64 = lw.elementwise.iter().filter(|e| ew_in(e.kind)).map(|e| e.bytes as f64).sum();
    let has_core = matches!(part, Part::Attn | Part::AttnCore);
    let attention_flops = if has_core { lw.attention.flops() } else { 0.0 };
    if has_core && !c.plan.flash_attention {
        let a = &lw.attention;
        let scores = a.batch as f64 * a.heads as f64 * a.q_len as f64 * a.kv_len as f64;
        memory_bytes += scores * UNFUSED_SCORE_BYTES_PER_ELEMENT;
    }
    Work { label: "", gemms, attention_flops, memory_bytes, fp8_eligible: true }
}

/// The embedding (`head = false`) or final norm + logits + loss (`head = true`) forward work.
fn edge_work(c: &Ctx<'_>, head: bool) -> Work {
    let ew = model::edge_work(c.spec, &c.shape);
    if head {
        Work {
            label: "",
            gemms: vec![(ew.logits, 1.0)],
            attention_flops: 0.0,
            memory_bytes: (ew.final_norm.bytes + ew.loss.bytes) as f64,
            fp8_eligible: false,
        }
    } else {
        Work {
            label: "",
            gemms: vec![],
            attention_flops: 0.0,
            memory_bytes: ew.embedding.bytes as f64,
            fp8_eligible: false,
        }
    }
}

/// A backward version of forward work: GEMMs × `gemm_factor` (data + weight gradients), attention core ×
/// `attention_factor`, memory traffic × 2.
fn scale_work(w: &Work, gemm_factor: f64, attention_factor: f64) -> Work {
    Work {
        label: "",
        gemms: w.gemms.iter().map(|&(g, s)| (g, s * gemm_factor)).collect(),
        attention_flops: w.attention_flops * attention_factor,
        memory_bytes: w.memory_bytes * if gemm_factor > 1.0 { 2.0 } else { 1.0 },
        fp8_eligible: w.fp8_eligible,
    }
}

/// Weights, gradients and optimizer state per rank of a stage, and its parameters before ZeRO sharding.
fn static_memory(c: &Ctx<'_>, chunk_layers: &[Vec<u32>]) -> (StaticMemory, f64) {
    let plan = c.plan;
    let (tp, ep) = (u64::from(plan.tp), u64::from(plan.ep));
    let (mut dense, mut experts) = (0.0, 0.0);
    for &l in chunk_layers.iter().flatten() {
        let (d, e) = model::layer_params_per_gpu(c.spec, u64::from(l), tp, ep);
        dense += d;
        experts += e;
    }
    let n_layers = c.spec.n_layers as u32;
    let first = chunk_layers.iter().flatten().any(|&l| l == 0);
    let last = chunk_layers.iter().flatten().any(|&l| l + 1 == n_layers);
    if first {
        dense += model::params::embedding_params(c.spec) as f64 / tp as f64;
    }
    if last {
        dense += c.spec.norm.params(c.spec.hidden) as f64;
        let head = if c.spec.tied_embeddings && !first {
            model::params::embedding_params(c.spec)
        } else {
            model::params::output_head_params(c.spec)
        };
        dense += head as f64 / tp as f64;
    }
    let state = plan.state_bytes();
    let replicas = u64::from(plan.dp * plan.cp);
    let (w1, g1, o1) = model::model_state_bytes(dense, state, plan.zero_stage, replicas);
    let (w2, g2, o2) = model::model_state_bytes(experts, state, plan.zero_stage, (replicas / ep).max(1));
    (StaticMemory { weights_bytes: w1 + w2, grads_bytes: g1 + g2, optimizer_bytes: o1 + o2 }, dense + experts)
}

/// Work of a whole pipeline stage's forward, for tests and quick estimates.
#[cfg(test)]
pub(crate) fn forward_flops_of(program: &StageProgram) -> f64 {
    program
        .ops
        .iter()
        .filter(|o| o.tag.pass == Some(Pass::Forward))
        .filter_map(|o| match o.kind {
            OpKind::Compute { work } => Some(program.works[work as usize].flops()),
            _ => None,
        })
        .sum()
}
