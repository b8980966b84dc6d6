//! A closed-form memory estimate per GPU, used to prune plans before simulating them.
//!
//! Model states follow the step program's accounting (ZeRO sharding over the DP×CP ranks, fp32 gradients when
//! the plan reduces in fp32, Adam's 12 bytes per parameter, and the fp32 copies of 16-bit gradients the
//! optimizer step makes once the activations are freed); activations use `model`'s Korthikanti et al. 2022
//! per-layer formula times the micro-batch chunks the schedule actually holds in flight on each stage (counted
//! from `schedule::stage_order`, so GPipe's `m`, 1F1B's `p − s` and interleaving's extra warm-up are exact). It
//! leaves out what the simulator adds on top (FSDP's gathered-unit buffers, a recomputed layer's transient set),
//! so it is meant to sit at or slightly below the simulated peak: pruning on it never drops a plan that fits.

use schedule::{ParallelPlan, PipelineSchedule};
use serde::Serialize;

/// Peak memory of the most loaded stage, by term.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryEstimate {
    /// The pipeline stage with the largest total.
    pub stage: u32,
    /// Weights held (after sharding).
    pub weights_bytes: f64,
    /// Gradients held.
    pub grads_bytes: f64,
    /// Optimizer state held.
    pub optimizer_bytes: f64,
    /// Activations held at the schedule's peak.
    pub activations_bytes: f64,
    /// fp32 copies of 16-bit gradients made for the optimizer step (held once the activations are gone).
    pub step_grad_copies_bytes: f64,
    /// Model states plus the larger of the activations and the step's gradient copies.
    pub total_bytes: f64,
}

impl MemoryEstimate {
    /// The largest term, as (name, bytes).
    pub fn dominant(&self) -> (&'static str, f64) {
        [
            ("weights", self.weights_bytes),
            ("gradients", self.grads_bytes),
            ("optimizer state", self.optimizer_bytes),
            ("activations", self.activations_bytes),
            ("optimizer-step gradient copies", self.step_grad_copies_bytes),
        ]
        .into_iter()
        .fold(("weights", f64::MIN), |a, b| if b.1 > a.1 { b } else { a })
    }
}

/// The closed-form estimate of a plan's peak memory per GPU (an even layer split is assumed, as the search
/// enumerates).
pub fn estimate_memory(spec: &model::ModelSpec, plan: &ParallelPlan) -> MemoryEstimate {
    let (tp, ep) = (u64::from(plan.tp), u64::from(plan.ep));
    let (p, v, m) = (plan.pp, plan.vp, plan.micro_batches());
    let ranges = plan.virtual_stage_layers(spec.n_layers);
    let act = plan.activation_config();
    let state = plan.state_bytes();
    let replicas = u64::from(plan.dp * plan.cp);
    let mut best: Option<MemoryEstimate> = None;
    for s in 0..p {
        let chunks: Vec<std::ops::Range<u64>> = (0..v)
            .map(|c| &ranges[(c * p + s) as usize])
            .map(|r| u64::from(r.start)..u64::from(r.end))
            .collect();
        let (mut dense, mut experts, mut act_layers) = (0.0, 0.0, 0.0);
        for layer in chunks.iter().flat_map(|r| r.clone()) {
            let (d, x) = model::layer_params_per_gpu(spec, layer, tp, ep);
            dense += d;
            experts += x;
            act_layers += model::activation_bytes_per_layer(spec, &act, layer);
        }
        let first = chunks.iter().any(|r| r.start == 0);
        let last = chunks.iter().any(|r| r.end == spec.n_layers);
        if first {
            dense += model::params::embedding_params(spec) as f64 / tp as f64;
        }
        if last {
            dense += spec.norm.params(spec.hidden) as f64;
            let head = if spec.tied_embeddings && !first {
                model::params::embedding_params(spec)
            } else {
                model::params::output_head_params(spec)
            };
            dense += head as f64 / tp as f64;
        }
        let (w1, g1, o1) = model::model_state_bytes(dense, state, plan.zero_stage, replicas);
        let (w2, g2, o2) = model::model_state_bytes(experts, state, plan.zero_stage, (replicas / ep).max(1));
        let in_flight_chunks = in_flight_chunks(plan.schedule, s, p, m, v);
        let sample_layer = chunks.first().map_or(0, |r| r.start);
        let extra = model::activations::stage_extra_activation_bytes(
            spec,
            &act,
            first,
            last,
            u64::from(in_flight_chunks.div_ceil(v)),
            sample_layer,
        );
        let activations = f64::from(in_flight_chunks) * act_layers / f64::from(v) + extra;
        let (weights, grads, optimizer) = (w1 + w2, g1 + g2, o1 + o2);
        let copies = step_grad_copies_bytes(plan, dense + experts, replicas);
        let total = weights + grads + optimizer + activations.max(copies);
        let candidate = MemoryEstimate {
            stage: s,
            weights_bytes: weights,
            grads_bytes: grads,
            optimizer_bytes: optimizer,
            activations_bytes: activations,
            step_grad_copies_bytes: copies,
            total_bytes: total,
        };
        if best.is_none_or(|b| candidate.total_bytes > b.total_bytes) {
            best = Some(candidate);
        }
    }
    best.unwrap_or(MemoryEstimate {
        stage: 0,
        weights_bytes: 0.0,
        grads_bytes: 0.0,
        optimizer_bytes: 0.0,
        activations_bytes: 0.0,
        step_grad_copies_bytes: 0.0,
        total_bytes: 0.0,
    })
}

/// The fp32 gradient copies the optimizer step makes when gradients are kept in 16 bits (the step program's
/// optimizer op): 4 bytes per parameter the rank updates (its `1/replicas` shard under ZeRO-1/2); none under
/// FSDP.
fn step_grad_copies_bytes(plan: &ParallelPlan, params: f64, replicas: u64) -> f64 {
    if plan.zero_stage >= 3 || plan.grad_reduce_in_fp32 || plan.element_bytes() >= 4 {
        return 0.0;
    }
    let shard = if plan.zero_stage >= 1 { params / replicas.max(1) as f64 } else { params };
    4.0 * shard
}

/// Micro-batch chunks stage `s` holds at its peak under `schedule`.
fn in_flight_chunks(schedule: PipelineSchedule, s: u32, p: u32, m: u32, v: u32) -> u32 {
    match schedule {
        // Closed forms of `schedule::peak_in_flight` for the orders without a chunk table.
        PipelineSchedule::Gpipe => m,
        PipelineSchedule::OneFOneB | PipelineSchedule::ZbH1 => (p - s).min(m),
        PipelineSchedule::Interleaved => {
            schedule::peak_in_flight(&schedule::stage_order(schedule, s, p, m, v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schedule::Recompute;

    fn plan(tp: u32, pp: u32, dp: u32, zero: u8, recompute: Recompute) -> ParallelPlan {
        ParallelPlan {
            tp,
            pp,
            dp,
            micro_batch: 1,
            global_batch: 8 * dp,
            seq_len: 4096,
            zero_stage: zero,
            sequence_parallel: tp > 1,
            recompute,
            grad_reduce_in_fp32: false,
            ..ParallelPlan::default()
        }
    }

    #[test]
    fn matches_models_closed_form_for_1f1b() {
        let spec = model::preset("llama3-8b").unwrap();
        for (tp, pp, dp, zero, rc) in
            [(1, 1, 8, 0, Recompute::None), (2, 4, 4, 1, Recompute::Selective), (8, 2, 2, 1, Recompute::Full)]
        {
            let p = plan(tp, pp, dp, zero, rc);
            let ours = estimate_memory(&spec, &p);
            let mp = model::MemoryPlan {
                tp: u64::from(tp),
                pp: u64::from(pp),
                dp: u64::from(dp),
                zero_stage: zero,
                micro_batch: 1,
                seq_len: 4096,
                n_micro_batches: u64::from(p.micro_batches()),
                sequence_parallel: tp > 1,
                recompute: rc,
                ..model::MemoryPlan::default()
            };
            let theirs = model::memory_per_gpu(&spec, &mp).unwrap();
            // `model`'s closed form has no optimizer-step term: compare the states plus activations.
            let states_and_activations =
                ours.weights_bytes + ours.grads_bytes + ours.optimizer_bytes + ours.activations_bytes;
            let rel = (states_and_activations - theirs.total_bytes).abs() / theirs.total_bytes;
            assert!(rel < 1e-9, "tp{tp} pp{pp}: {} vs {}", ours.total_bytes, theirs.total_bytes);
        }
    }

    #[test]
    fn sixteen_bit_gradients_are_copied_to_fp32_for_the_step() {
        let spec = model::preset("llama3-8b").unwrap();
        // Full recomputation keeps few activations, so the step's copies (4 bytes per parameter) set the peak.
        let p = plan(1, 1, 8, 0, Recompute::Full);
        let e = estimate_memory(&spec, &p);
        let params = e.weights_bytes / 2.0;
        assert!((e.step_grad_copies_bytes - 4.0 * params).abs() < 1.0);
        assert!(e.step_grad_copies_bytes > e.activations_bytes);
        let states = e.weights_bytes + e.grads_bytes + e.optimizer_bytes;
        assert!((e.total_bytes - states - e.step_grad_copies_bytes).abs() < 1.0);
        // ZeRO-1 copies only the rank's shard; fp32 gradient buffers need no copy.
        let z1 = estimate_memory(&spec, &plan(1, 1, 8, 1, Recompute::Full));
        assert!((z1.step_grad_copies_bytes - e.step_grad_copies_bytes / 8.0).abs() < 1.0);
        let fp32 = ParallelPlan { grad_reduce_in_fp32: true, ..p };
        assert_eq!(estimate_memory(&spec, &fp32).step_grad_copies_bytes, 0.0);
    }

    #[test]
    fn gpipe_holds_more_than_1f1b_and_recompute_holds_less() {
        let spec = model::preset("llama3-8b").unwrap();
        let one = plan(1, 4, 2, 1, Recompute::None);
        let gpipe = ParallelPlan { schedule: PipelineSchedule::Gpipe, ..one.clone() };
        let full = ParallelPlan { recompute: Recompute::Full, ..one.clone() };
        let a = estimate_memory(&spec, &one);
        assert!(estimate_memory(&spec, &gpipe).activations_bytes > a.activations_bytes);
        assert!(estimate_memory(&spec, &full).activations_bytes < a.activations_bytes);
        assert_eq!(a.dominant().0, "activations");
    }
}
