//! Speculative decoding keeps the target's distribution: chi-square tests on a toy vocabulary (seeded, so they
//! are deterministic), and greedy equality with plain decoding.

use candle_core::{DType, Device, Tensor};

use super::*;
use crate::generate::{GenerateConfig, generate};
use crate::gpt_tests::tiny_config;
use crate::params::init_params;
use crate::sampling::softmax;

/// Pearson's chi-square statistic of `counts` against probabilities `expected`.
fn chi_square(counts: &[usize], expected: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    counts
        .iter()
        .zip(expected)
        .filter(|(_, e)| **e > 0.0)
        .map(|(&c, &e)| (c as f64 - n as f64 * e).powi(2) / (n as f64 * e))
        .sum()
}

#[test]
fn verify_emits_tokens_distributed_as_the_target() {
    let p = vec![0.5f32, 0.2, 0.2, 0.1];
    let q = vec![0.1f32, 0.1, 0.4, 0.4];
    let mut drafter = Sampler::new(SamplingConfig { seed: 1, ..Default::default() }).unwrap();
    let mut verifier = Sampler::new(SamplingConfig { seed: 2, ..Default::default() }).unwrap();
    let gamma = 3;
    let mut counts = [0usize; 4];
    let (mut accepted, mut rejected) = (0, 0);
    let rounds = 20_000;
    for _ in 0..rounds {
        let drafted: Vec<u32> = (0..gamma).map(|_| drafter.draw(&q)).collect();
        let emitted = verify(&vec![p.clone(); gamma + 1], &vec![q.clone(); gamma], &drafted, &mut verifier);
        accepted += emitted.len() - 1;
        rejected += usize::from(emitted.len() <= gamma);
        for t in emitted {
            counts[t as usize] += 1;
        }
    }
    let expected: Vec<f64> = p.iter().map(|&x| x as f64).collect();
    // df = 3: the 0.1% critical value is 16.27.
    let chi2 = chi_square(&counts, &expected);
    assert!(chi2 < 16.27, "chi-square {chi2} for counts {counts:?}");
    // β = Σ min(p, q) = 0.1 + 0.1 + 0.2 + 0.1 = 0.5 per evaluated draft.
    let alpha = accepted as f64 / (accepted + rejected) as f64;
    assert!((alpha - 0.5).abs() < 0.05, "acceptance {alpha}");
}

/// A tiny GPT with a scaled-up output head, so that its next-token distributions are far from uniform.
fn peaked_model(seed: u64, n_layers: usize) -> Gpt {
    let mut config = tiny_config(5);
    config.n_layers = n_layers;
    config.tied_embeddings = false;
    let mut tensors = init_params(&config, seed, DType::F32, &Device::Cpu).unwrap();
    let head = (&tensors["lm_head.weight"] * 40.0).unwrap();
    tensors.insert("lm_head.weight".into(), head);
    Gpt::new(&config, &tensors).unwrap()
}

fn next_probs(model: &Gpt, seq: &[u32]) -> Vec<f64> {
    let x = Tensor::from_slice(seq, (1, seq.len()), &Device::Cpu).unwrap();
    let logits = model.forward(&x, None).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    softmax(logits.last().unwrap()).into_iter().map(f64::from).collect()
}

#[test]
fn speculative_generation_preserves_the_target_joint_distribution() {
    let target = peaked_model(1, 2);
    let draft = peaked_model(2, 1);
    let prompt = [3u32, 1];
    // Exact P(x1, x2) from the target.
    let p1 = next_probs(&target, &prompt);
    let mut expected = Vec::new();
    for (x1, &px1) in p1.iter().enumerate() {
        let p2 = next_probs(&target, &[3, 1, x1 as u32]);
        expected.extend(p2.iter().map(|&px2| px1 * px2));
    }
    let mut counts = vec![0usize; 25];
    let mut stats_total = SpeculativeStats::default();
    let n = 3000;
    for seed in 0..n {
        let sampling = SamplingConfig { seed, ..Default::default() };
        let config = SpeculativeConfig { max_new_tokens: 2, draft_tokens: 2, sampling };
        let (tokens, stats) = generate_speculative(&target, &draft, &prompt, &config).unwrap();
        counts[tokens[0] as usize * 5 + tokens[1] as usize] += 1;
        stats_total.rejected += stats.rejected;
        stats_total.accepted += stats.accepted;
    }
    // Pool cells expected below 5 draws into one, as Pearson's test requires.
    let (mut pooled_counts, mut pooled_expected, mut rare) = (Vec::new(), Vec::new(), (0usize, 0.0f64));
    for (c, e) in counts.iter().zip(&expected) {
        if e * n as f64 >= 5.0 {
            pooled_counts.push(*c);
            pooled_expected.push(*e);
        } else {
            rare = (rare.0 + c, rare.1 + e);
        }
    }
    pooled_counts.push(rare.0);
    pooled_expected.push(rare.1);
    let df = pooled_counts.len() - 1;
    let chi2 = chi_square(&pooled_counts, &pooled_expected);
    // 0.1% critical values of chi-square for df = 1..24.
    const CRIT: [f64; 24] = [
        10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12,
        37.70, 39.25, 40.79, 42.31, 43.82, 45.31, 46.80, 48.27, 49.73, 51.18,
    ];
    assert!(chi2 < CRIT[df - 1], "chi-square {chi2} (df {df}): {counts:?} vs {expected:?}");
    // The draft differs from the target, so some drafts are rejected, and some are accepted.
    let alpha = stats_total.acceptance_rate();
    assert!(alpha > 0.05 && alpha < 0.95, "acceptance {alpha}");
}

#[test]
fn greedy_speculative_equals_greedy_decoding() {
    let target = peaked_model(1, 2);
    let draft = peaked_model(2, 1);
    let sampling = SamplingConfig { temperature: 0.0, ..Default::default() };
    let plain =
        generate(&target, &[0, 4], &GenerateConfig { max_new_tokens: 20, use_kv_cache: true, sampling })
            .unwrap()
            .tokens;
    for gamma in [1, 3, 6] {
        let config = SpeculativeConfig { max_new_tokens: 20, draft_tokens: gamma, sampling };
        let (tokens, stats) = generate_speculative(&target, &draft, &[0, 4], &config).unwrap();
        assert_eq!(tokens, plain, "gamma {gamma}");
        assert!(stats.target_calls < 20 || stats.acceptance_rate() == 0.0);
    }
    // Past the 16-token context the target continues alone, and still agrees.
    let sampling = SamplingConfig { temperature: 0.0, ..Default::default() };
    let long =
        generate(&target, &[0, 4], &GenerateConfig { max_new_tokens: 30, use_kv_cache: false, sampling })
            .unwrap()
            .tokens;
    let config = SpeculativeConfig { max_new_tokens: 30, draft_tokens: 4, sampling };
    assert_eq!(generate_speculative(&target, &draft, &[0, 4], &config).unwrap().0, long);
}

#[test]
fn expected_speedup_matches_the_paper_limits() {
    assert!((expected_tokens_per_call(0.0, 4) - 1.0).abs() < 1e-12);
    assert!((expected_tokens_per_call(1.0, 4) - 5.0).abs() < 1e-12);
    // α = 0.8, γ = 5, c = 0.05 (a point on Leviathan et al. Figure 3): ≈ 2.95.
    assert!((expected_speedup(0.8, 5, 0.05) - 2.95).abs() < 0.01);
}
