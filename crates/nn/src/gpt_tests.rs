//! Whole-model checks: gradients against finite differences, the KV cache against a full forward pass, and a
//! short training run whose loss goes down.

use candle_core::{DType, Device, Tensor};
use model::{Biases, MlpKind, NormKind};

use crate::attention::KvCache;
use crate::config::{GptConfig, MoeConfig};
use crate::data::split;
use crate::gpt::Gpt;
use crate::params::{init_params, to_vars, var_tensors};
use crate::train::{TrainConfig, start, train};
use crate::vocab::CharVocab;

pub(crate) fn tiny_config(vocab_size: usize) -> GptConfig {
    GptConfig {
        vocab_size,
        context: 16,
        n_layers: 2,
        d_model: 16,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 4,
        ffn_hidden: 32,
        mlp: MlpKind::Plain,
        norm: NormKind::LayerNorm,
        biases: Biases::ALL,
        tied_embeddings: true,
        moe: None,
    }
}

fn tokens(values: &[u32], rows: usize) -> Tensor {
    Tensor::from_vec(values.to_vec(), (rows, values.len() / rows), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Central finite differences on a sample of entries of every parameter tensor, in f64, against autograd.
fn gradient_check(config: &GptConfig) {
    let tensors = init_params(config, 11, DType::F64, &Device::Cpu).unwrap();
    let vars = to_vars(&tensors).unwrap();
    let model = Gpt::new(config, &var_tensors(&vars)).unwrap();
    let x = tokens(&[1, 5, 2, 7, 3, 0, 4, 4, 6, 2, 1, 3], 2);
    let y = tokens(&[5, 2, 7, 3, 0, 4, 4, 6, 2, 1, 3, 7], 2);
    let loss_of = |m: &Gpt| {
        let (ce, bal) = m.loss(&x, &y).unwrap();
        (ce + (bal * 0.01).unwrap()).unwrap()
    };
    let grads = loss_of(&model).backward().unwrap();
    let eps = 1e-6;
    let mut checked = 0;
    for (name, var) in &vars {
        let g = grads.get(var).unwrap_or_else(|| panic!("no gradient for {name}"));
        let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let base = var.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for idx in [0, base.len() / 2, base.len() - 1] {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[idx] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
                loss_of(&model).to_scalar::<f64>().unwrap()
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
            // Relative error, with an absolute floor for tiny gradients (rounding in f64 is ~1e-10 here).
            let err = (numeric - g[idx]).abs() / (numeric.abs() + g[idx].abs()).max(1e-5);
            assert!(err < 1e-4, "{name}[{idx}]: finite difference {numeric:e} vs autograd {:e}", g[idx]);
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * vars.len());
}

#[test]
fn gradients_match_finite_differences() {
    gradient_check(&tiny_config(8));
}

#[test]
fn gradients_match_finite_differences_gated_rms_untied() {
    let mut config = tiny_config(8);
    (config.mlp, config.norm, config.tied_embeddings) = (MlpKind::Gated, NormKind::RmsNorm, false);
    gradient_check(&config);
}

#[test]
fn gradients_match_finite_differences_moe() {
    let mut config = tiny_config(8);
    config.moe = Some(MoeConfig {
        n_experts: 3,
        top_k: 2,
        expert_ffn_hidden: 8,
        n_shared_experts: 1,
        shared_ffn_hidden: 8,
        first_dense_layers: 1,
    });
    gradient_check(&config);
}

#[test]
fn kv_cache_gives_the_same_logits_as_a_full_forward() {
    for dtype in [DType::F32, DType::F64] {
        let config = tiny_config(8);
        let model = Gpt::new(&config, &init_params(&config, 5, dtype, &Device::Cpu).unwrap()).unwrap();
        let seq = [3u32, 1, 4, 1, 5, 0, 2, 6, 5, 3];
        let full = model.forward(&tokens(&seq, 1), None).unwrap();
        let mut cache = KvCache::new(config.n_layers);
        // A 3-token prefill, then one token at a time.
        let mut parts = vec![model.forward(&tokens(&seq[..3], 1), Some(&mut cache)).unwrap()];
        for &tok in &seq[3..] {
            parts.push(model.forward(&tokens(&[tok], 1), Some(&mut cache)).unwrap());
        }
        assert_eq!(cache.len(), seq.len());
        let cached = Tensor::cat(&parts, 1).unwrap();
        let diff = max_abs_diff(&full, &cached);
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        assert!(diff < tol, "{dtype:?}: max |full - cached| = {diff:e}");
        // Rolling the cache back and recomputing gives the same logits again.
        cache.truncate(5).unwrap();
        let again = model.forward(&tokens(&seq[5..], 1), Some(&mut cache)).unwrap();
        assert!(max_abs_diff(&again, &full.narrow(1, 5, 5).unwrap()) < tol);
    }
}

#[test]
fn context_overflow_is_an_error() {
    let config = tiny_config(8);
    let model = Gpt::new(&config, &init_params(&config, 5, DType::F32, &Device::Cpu).unwrap()).unwrap();
    let err = model.forward(&tokens(&[1; 17], 1), None).unwrap_err().to_string();
    assert_eq!(err, "sequence of 17 tokens exceeds the model's context of 16 tokens");
}

/// A short character-level run on a repetitive text: the validation loss must fall well below its start.
fn short_run(moe: Option<MoeConfig>) -> (f32, f32) {
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    let vocab = CharVocab::from_text(&text);
    let data = split(vocab.encode(&text).unwrap(), 0.1);
    let mut config = tiny_config(vocab.len());
    config.d_model = 32;
    config.head_dim = 8;
    config.moe = moe;
    let tc = TrainConfig {
        iters: 60,
        batch_size: 8,
        warmup_iters: 5,
        lr_decay_iters: 60,
        lr: 1e-2,
        eval_interval: 60,
        eval_iters: 4,
        ..TrainConfig::default()
    };
    let mut state =
        start(&config, &tc, &init_params(&config, tc.seed, DType::F32, &Device::Cpu).unwrap()).unwrap();
    let mut n_steps = 0;
    let history = train(&mut state, &tc, &data, |_, _| n_steps += 1).unwrap();
    assert_eq!(history.steps.len(), 60);
    assert_eq!(n_steps, 62, "60 steps and 2 evaluations");
    let (first, last) = (history.evals[0], history.evals[history.evals.len() - 1]);
    (first.val_loss, last.val_loss)
}

#[test]
fn training_lowers_the_loss() {
    let (before, after) = short_run(None);
    // ln(29 symbols) ≈ 3.0 at the start; the text is periodic, so the model learns it quickly.
    assert!(before > 2.8 && after < 1.5, "val loss {before} -> {after}");
}

#[test]
fn moe_model_trains() {
    let moe = MoeConfig {
        n_experts: 4,
        top_k: 2,
        expert_ffn_hidden: 16,
        n_shared_experts: 0,
        shared_ffn_hidden: 0,
        first_dense_layers: 0,
    };
    let (before, after) = short_run(Some(moe));
    assert!(before > 2.8 && after < 1.5, "val loss {before} -> {after}");
}

#[test]
fn a_resumed_run_continues_bit_for_bit() {
    // 12 steps straight, against 5 steps, a checkpoint through bytes (weights, moments, resume point as
    // JSON), and 7 more from it: the same losses, the same weights, the same moments, to the bit.
    use crate::params::{to_safetensors, var_tensors};
    use crate::train::{ResumePoint, resume, step};
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    let vocab = CharVocab::from_text(&text);
    let data = split(vocab.encode(&text).unwrap(), 0.1);
    let config = tiny_config(vocab.len());
    let tc = TrainConfig {
        iters: 12,
        batch_size: 4,
        warmup_iters: 3,
        lr_decay_iters: 12,
        ..TrainConfig::default()
    };
    let init = init_params(&config, tc.seed, DType::F32, &Device::Cpu).unwrap();
    let mut straight = start(&config, &tc, &init).unwrap();
    let losses: Vec<f32> = (0..12).map(|_| step(&mut straight, &tc, &data.train).unwrap().loss).collect();

    let mut first = start(&config, &tc, &init).unwrap();
    for _ in 0..5 {
        step(&mut first, &tc, &data.train).unwrap();
    }
    let weights = to_safetensors(&var_tensors(&first.vars)).unwrap();
    let moments = to_safetensors(&first.optimizer_state().unwrap()).unwrap();
    let point = serde_json::to_string(&first.resume_point()).unwrap();
    drop(first);
    let load =
        |b: &[u8]| candle_core::safetensors::load_buffer(b, &Device::Cpu).unwrap().into_iter().collect();
    let at: ResumePoint = serde_json::from_str(&point).unwrap();
    let mut second = resume(&config, &tc, &load(&weights), &load(&moments), at).unwrap();
    let rest: Vec<f32> = (0..7).map(|_| step(&mut second, &tc, &data.train).unwrap().loss).collect();
    assert_eq!(rest, losses[5..], "the resumed run's losses");
    assert_eq!(
        to_safetensors(&var_tensors(&second.vars)).unwrap(),
        to_safetensors(&var_tensors(&straight.vars)).unwrap(),
        "the resumed run's weights"
    );
    assert_eq!(
        to_safetensors(&second.optimizer_state().unwrap()).unwrap(),
        to_safetensors(&straight.optimizer_state().unwrap()).unwrap()
    );
    assert_eq!(second.resume_point(), straight.resume_point());

    // A resume point that disagrees with itself, or moments of another model, are refused with the reason.
    let bad = ResumePoint { adam_steps: 4, ..at };
    let err = resume(&config, &tc, &load(&weights), &load(&moments), bad).unwrap_err().to_string();
    assert!(err.contains("4 optimizer steps for 5 training steps"), "{err}");
    let mut other = load(&moments);
    other.remove("exp_avg.wte.weight");
    let err = resume(&config, &tc, &load(&weights), &other, at).unwrap_err().to_string();
    assert!(err.contains("\"exp_avg.wte.weight\" missing"), "{err}");
}
