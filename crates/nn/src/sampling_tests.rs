//! Each sampling control, checked on exact sets and on frequencies.

use super::*;

fn kept(mask: &[bool]) -> Vec<usize> {
    mask.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect()
}

#[test]
fn top_k_keeps_exactly_the_k_largest_and_ties() {
    let v = [1.0, 3.0, 2.0, 3.0, 0.5];
    assert_eq!(kept(&top_k_keep(&v, 1)), vec![1, 3], "a tie with the 1st largest is kept");
    assert_eq!(kept(&top_k_keep(&v, 2)), vec![1, 3]);
    assert_eq!(kept(&top_k_keep(&v, 3)), vec![1, 2, 3]);
    assert_eq!(kept(&top_k_keep(&v, 4)), vec![0, 1, 2, 3]);
    assert_eq!(kept(&top_k_keep(&v, 0)), vec![0, 1, 2, 3, 4], "0 is off");
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_p() {
    let p = [0.125, 0.5, 0.125, 0.25];
    assert_eq!(kept(&top_p_keep(&p, 0.1)), vec![1], "the most likely token always stays");
    assert_eq!(kept(&top_p_keep(&p, 0.5)), vec![1]);
    assert_eq!(kept(&top_p_keep(&p, 0.51)), vec![1, 3]);
    assert_eq!(kept(&top_p_keep(&p, 0.75)), vec![1, 3]);
    assert_eq!(kept(&top_p_keep(&p, 0.76)), vec![0, 1, 3], "ties: the lower id comes first");
    assert_eq!(kept(&top_p_keep(&p, 1.0)), vec![0, 1, 2, 3]);
}

#[test]
fn min_p_keeps_tokens_above_the_scaled_threshold() {
    let p = [0.125, 0.5, 0.125, 0.25];
    assert_eq!(kept(&min_p_keep(&p, 0.3)), vec![1, 3]);
    assert_eq!(kept(&min_p_keep(&p, 0.25)), vec![0, 1, 2, 3]);
    assert_eq!(kept(&min_p_keep(&p, 1.0)), vec![1]);
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative_logits_once() {
    let mut logits = [2.0, -1.0, 3.0, 0.5];
    apply_repetition_penalty(&mut logits, &[0, 1, 0, 0], 2.0);
    assert_eq!(logits, [1.0, -2.0, 3.0, 0.5]);
}

#[test]
fn temperature_zero_is_greedy_and_ignores_the_seed() {
    let logits = [0.1, 2.0, 1.9, -1.0];
    for seed in 0..5 {
        let mut s = Sampler::new(SamplingConfig { temperature: 0.0, seed, ..Default::default() }).unwrap();
        assert!((0..20).all(|_| s.sample(&logits, &[]) == 1));
    }
    // With a penalty on token 1, greedy moves to token 2.
    let config = SamplingConfig { temperature: 0.0, repetition_penalty: 1.1, ..Default::default() };
    assert_eq!(Sampler::new(config).unwrap().sample(&logits, &[1]), 2);
}

fn frequencies(config: SamplingConfig, logits: &[f32], n: usize) -> Vec<f64> {
    let mut s = Sampler::new(config).unwrap();
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..n {
        counts[s.sample(logits, &[]) as usize] += 1;
    }
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

#[test]
fn temperature_scales_the_distribution() {
    let logits = [1.0f32, 0.0, -1.0];
    for t in [0.5f32, 1.0, 2.0] {
        let expected = softmax(&logits.map(|l| l / t));
        let freq =
            frequencies(SamplingConfig { temperature: t, seed: 9, ..Default::default() }, &logits, 40_000);
        for (f, e) in freq.iter().zip(&expected) {
            assert!((f - *e as f64).abs() < 0.01, "T={t}: {freq:?} vs {expected:?}");
        }
    }
}

#[test]
fn filters_compose_in_the_documented_order() {
    // probs ∝ [8, 4, 2, 1, 1] / 16
    let logits = [8f32, 4.0, 2.0, 1.0, 1.0].map(f32::ln);
    let config = SamplingConfig { top_k: 3, top_p: 0.7, ..Default::default() };
    // top-k keeps {0, 1, 2} = [8, 4, 2]/14; top-p 0.7 then keeps {0, 1} (8/14 = 0.57 < 0.7, 12/14 ≥ 0.7).
    let d = distribution(&logits, &[], &config);
    assert!((d[0] - 8.0 / 12.0).abs() < 1e-6 && (d[1] - 4.0 / 12.0).abs() < 1e-6, "{d:?}");
    assert_eq!(&d[2..], &[0.0, 0.0, 0.0]);
    // min-p 0.2 keeps p ≥ 0.1: {0, 1, 2}; sampling never leaves that set.
    let freq = frequencies(SamplingConfig { min_p: 0.2, seed: 3, ..Default::default() }, &logits, 20_000);
    assert_eq!(&freq[3..], &[0.0, 0.0]);
    assert!((freq[0] - 8.0 / 14.0).abs() < 0.015, "{freq:?}");
}

#[test]
fn same_seed_same_tokens() {
    let logits = [0.3f32, 0.2, 0.1, 0.0];
    let run = |seed| {
        let mut s = Sampler::new(SamplingConfig { seed, ..Default::default() }).unwrap();
        (0..50).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn bad_controls_are_rejected_with_their_value() {
    let err = SamplingConfig { top_p: 0.0, ..Default::default() }.validate().unwrap_err().to_string();
    assert_eq!(err, "top_p = 0: must be in (0, 1] (1 = off)");
    assert!(SamplingConfig { temperature: -1.0, ..Default::default() }.validate().is_err());
}
