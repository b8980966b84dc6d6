//! The GPT's shape ([`GptConfig`]), its mapping to and from `model::ModelSpec`, and the list of its parameters.

use model::{Biases, MlpKind, ModelSpec, MoeSpec, NormKind, Positions};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result, bad_config};

/// The shape of the GPT: a decoder-only transformer with learned absolute positions, pre-norm blocks, MHA or GQA
/// attention, a plain (GELU) or gated (SwiGLU) MLP, and optionally mixture-of-experts MLPs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    /// Tokens in the vocabulary (rows of the embedding table).
    pub vocab_size: usize,
    /// Longest sequence the model sees (rows of the position table).
    pub context: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (equal to `n_heads` for MHA; a divisor of it for GQA).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Inner width of the dense MLP.
    pub ffn_hidden: usize,
    /// Plain (GELU) or gated (SwiGLU) MLP.
    pub mlp: MlpKind,
    /// LayerNorm (weight and bias) or RMSNorm (weight).
    pub norm: NormKind,
    /// Which linear layers have biases.
    pub biases: Biases,
    /// Whether the output head reuses the token embedding.
    pub tied_embeddings: bool,
    /// Mixture-of-experts MLPs; `None` for a dense model.
    pub moe: Option<MoeConfig>,
}

/// A mixture-of-experts MLP (top-k routing with a softmax router, no token dropping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoeConfig {
    /// Routed experts per MoE layer.
    pub n_experts: usize,
    /// Experts each token visits.
    pub top_k: usize,
    /// Inner width of one routed expert.
    pub expert_ffn_hidden: usize,
    /// Shared experts every token visits.
    pub n_shared_experts: usize,
    /// Inner width of one shared expert.
    pub shared_ffn_hidden: usize,
    /// The first this-many layers keep a dense MLP.
    pub first_dense_layers: usize,
}

/// How a parameter is initialised (nanoGPT's scheme, `model.py` `_init_weights`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Normal with mean 0 and this standard deviation.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// All zeros (biases).
    Zeros,
    /// All ones (norm weights).
    Ones,
}

/// One parameter tensor: its name (as stored in checkpoints), shape and initialisation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Dotted name, e.g. `h.0.attn.q.weight`.
    pub name: String,
    /// Shape, PyTorch convention (`[out, in]` for weights).
    pub shape: Vec<usize>,
    /// Initialisation.
    pub init: Init,
}

impl GptConfig {
    /// nanoGPT's CPU character-level configuration (README, "quick start", CPU run): 4 layers, 4 heads,
    /// d = 128, context 64, no linear biases. LayerNorms keep their bias (nanoGPT's `bias=False` drops it too;
    /// `model::ModelSpec` has no bias-free LayerNorm, and the difference is 9 × 128 parameters).
    pub fn nanogpt_char_cpu(vocab_size: usize) -> GptConfig {
        GptConfig {
            vocab_size,
            context: 64,
            n_layers: 4,
            d_model: 128,
            n_heads: 4,
            n_kv_heads: 4,
            head_dim: 32,
            ffn_hidden: 4 * 128,
            mlp: MlpKind::Plain,
            norm: NormKind::LayerNorm,
            biases: Biases::NONE,
            tied_embeddings: true,
            moe: None,
        }
    }

    /// The GPT of a `model` spec. Fails on what this GPT does not implement: rotary positions, multi-head latent
    /// attention, router biases.
    pub fn from_spec(spec: &ModelSpec) -> Result<GptConfig> {
        let unsupported =
            |feature, expected| NnError::UnsupportedSpec { name: spec.name.clone(), feature, expected };
        if spec.positions != Positions::Learned {
            return Err(unsupported("rotary positions", "learned positions"));
        }
        if spec.mla.is_some() {
            return Err(unsupported("multi-head latent attention", "MHA or GQA"));
        }
        if spec.moe.is_some_and(|m| m.router_bias) {
            return Err(unsupported("a router bias", "a bias-free router"));
        }
        let moe = spec.moe.map(|m| MoeConfig {
            n_experts: m.n_experts as usize,
            top_k: m.top_k as usize,
            expert_ffn_hidden: m.expert_ffn_hidden as usize,
            n_shared_experts: m.n_shared_experts as usize,
            shared_ffn_hidden: m.shared_ffn_hidden as usize,
            first_dense_layers: m.first_dense_layers as usize,
        });
        let config = GptConfig {
            vocab_size: spec.vocab as usize,
            context: spec.seq_len as usize,
            n_layers: spec.n_layers as usize,
            d_model: spec.hidden as usize,
            n_heads: spec.n_heads as usize,
            n_kv_heads: spec.n_kv_heads as usize,
            head_dim: spec.head_dim as usize,
            ffn_hidden: spec.ffn_hidden as usize,
            mlp: spec.mlp,
            norm: spec.norm,
            biases: spec.biases,
            tied_embeddings: spec.tied_embeddings,
            moe,
        };
        config.validate()?;
        Ok(config)
    }

    /// The same shape as a `model::ModelSpec`, so that `model`'s counts and FLOPs apply to it.
    pub fn to_spec(&self, name: &str) -> ModelSpec {
        ModelSpec {
            name: name.to_string(),
            n_layers: self.n_layers as u64,
            hidden: self.d_model as u64,
            n_heads: self.n_heads as u64,
            n_kv_heads: self.n_kv_heads as u64,
            head_dim: self.head_dim as u64,
            ffn_hidden: self.ffn_hidden as u64,
            mlp: self.mlp,
            vocab: self.vocab_size as u64,
            seq_len: self.context as u64,
            tied_embeddings: self.tied_embeddings,
            biases: self.biases,
            positions: Positions::Learned,
            norm: self.norm,
            moe: self.moe.map(|m| MoeSpec {
                n_experts: m.n_experts as u64,
                top_k: m.top_k as u64,
                expert_ffn_hidden: m.expert_ffn_hidden as u64,
                n_shared_experts: m.n_shared_experts as u64,
                shared_ffn_hidden: m.shared_ffn_hidden as u64,
                first_dense_layers: m.first_dense_layers as u64,
                router_bias: false,
            }),
            mla: None,
        }
    }

    /// Checks that the model can be built: nothing zero that must not be, whole GQA groups, sane routing.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("vocab", self.vocab_size),
            ("context", self.context),
            ("layers", self.n_layers),
            ("d_model", self.d_model),
            ("heads", self.n_heads),
            ("head_dim", self.head_dim),
        ] {
            if value == 0 {
                return Err(bad_config(field, value, "must be at least 1"));
            }
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            let expected = format!("must be at least 1 and divide heads ({})", self.n_heads);
            return Err(bad_config("kv_heads", self.n_kv_heads, expected));
        }
        if self.ffn_hidden == 0 && self.n_dense_layers() > 0 {
            return Err(bad_config("ffn_hidden", 0, "must be at least 1 (the model has dense MLP layers)"));
        }
        if let Some(moe) = &self.moe {
            if moe.n_experts == 0 {
                return Err(bad_config("experts", 0, "must be at least 1 in a mixture-of-experts model"));
            }
            if moe.top_k == 0 || moe.top_k > moe.n_experts {
                let expected = format!("must be between 1 and experts ({})", moe.n_experts);
                return Err(bad_config("top_k", moe.top_k, expected));
            }
            if moe.expert_ffn_hidden == 0 {
                return Err(bad_config("expert_ffn_hidden", 0, "must be at least 1"));
            }
            if moe.n_shared_experts > 0 && moe.shared_ffn_hidden == 0 {
                return Err(bad_config(
                    "shared_ffn_hidden",
                    0,
                    "must be at least 1 when there are shared experts",
                ));
            }
            if moe.first_dense_layers > self.n_layers {
                let expected = format!("must not exceed layers ({})", self.n_layers);
                return Err(bad_config("first_dense_layers", moe.first_dense_layers, expected));
            }
        }
        Ok(())
    }

    /// Whether layer `layer` (0-based) has a mixture-of-experts MLP.
    pub fn is_moe_layer(&self, layer: usize) -> bool {
        self.moe.is_some_and(|m| layer >= m.first_dense_layers)
    }

    /// Every parameter tensor, in a fixed order, with its shape and initialisation.
    pub fn params(&self) -> Vec<ParamInfo> {
        let d = self.d_model;
        let std = 0.02;
        // GPT-2 / nanoGPT scale the residual projections by 1/sqrt(2 L) (model.py, "apply special scaled init").
        let proj_std = 0.02 / (2.0 * self.n_layers as f64).sqrt();
        let mut out = Vec::new();
        let mut push =
            |name: String, shape: Vec<usize>, init: Init| out.push(ParamInfo { name, shape, init });
        push("wte.weight".into(), vec![self.vocab_size, d], Init::Normal { std });
        push("wpe.weight".into(), vec![self.context, d], Init::Normal { std });
        for layer in 0..self.n_layers {
            let p = format!("h.{layer}");
            self.push_norm(&mut push, &format!("{p}.ln1"));
            let (q_width, kv_width) = (self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim);
            for (proj, width) in [("q", q_width), ("k", kv_width), ("v", kv_width)] {
                push(format!("{p}.attn.{proj}.weight"), vec![width, d], Init::Normal { std });
                if self.biases.qkv {
                    push(format!("{p}.attn.{proj}.bias"), vec![width], Init::Zeros);
                }
            }
            push(format!("{p}.attn.o.weight"), vec![d, q_width], Init::Normal { std: proj_std });
            if self.biases.attn_out {
                push(format!("{p}.attn.o.bias"), vec![d], Init::Zeros);
            }
            self.push_norm(&mut push, &format!("{p}.ln2"));
            match self.moe.filter(|_| self.is_moe_layer(layer)) {
                None => self.push_mlp(&mut push, &format!("{p}.mlp"), self.ffn_hidden, proj_std),
                Some(moe) => {
                    push(format!("{p}.moe.router.weight"), vec![moe.n_experts, d], Init::Normal { std });
                    for e in 0..moe.n_experts {
                        self.push_mlp(
                            &mut push,
                            &format!("{p}.moe.experts.{e}"),
                            moe.expert_ffn_hidden,
                            proj_std,
                        );
                    }
                    for s in 0..moe.n_shared_experts {
                        self.push_mlp(
                            &mut push,
                            &format!("{p}.moe.shared.{s}"),
                            moe.shared_ffn_hidden,
                            proj_std,
                        );
                    }
                }
            }
        }
        self.push_norm(&mut push, "ln_f");
        if !self.tied_embeddings {
            push("lm_head.weight".into(), vec![self.vocab_size, d], Init::Normal { std });
        }
        out
    }

    /// Total parameters, counted from [`GptConfig::params`].
    pub fn n_params(&self) -> u64 {
        self.params().iter().map(|p| p.shape.iter().product::<usize>() as u64).sum()
    }

    fn n_dense_layers(&self) -> usize {
        (0..self.n_layers).filter(|&l| !self.is_moe_layer(l)).count()
    }

    fn push_norm(&self, push: &mut impl FnMut(String, Vec<usize>, Init), prefix: &str) {
        push(format!("{prefix}.weight"), vec![self.d_model], Init::Ones);
        if self.norm == NormKind::LayerNorm {
            push(format!("{prefix}.bias"), vec![self.d_model], Init::Zeros);
        }
    }

    fn push_mlp(
        &self,
        push: &mut impl FnMut(String, Vec<usize>, Init),
        prefix: &str,
        ffn: usize,
        proj_std: f64,
    ) {
        let d = self.d_model;
        let inputs: &[&str] = match self.mlp {
            MlpKind::Plain => &["up"],
            MlpKind::Gated => &["gate", "up"],
        };
        for name in inputs {
            push(format!("{prefix}.{name}.weight"), vec![ffn, d], Init::Normal { std: 0.02 });
            if self.biases.mlp {
                push(format!("{prefix}.{name}.bias"), vec![ffn], Init::Zeros);
            }
        }
        push(format!("{prefix}.down.weight"), vec![d, ffn], Init::Normal { std: proj_std });
        if self.biases.mlp {
            push(format!("{prefix}.down.bias"), vec![d], Init::Zeros);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_counts_agree(config: &GptConfig) {
        let spec = config.to_spec("test");
        spec.validate().unwrap();
        assert_eq!(config.n_params(), model::param_counts(&spec).total, "{config:?}");
        assert_eq!(&GptConfig::from_spec(&spec).unwrap(), config);
    }

    #[test]
    fn parameter_count_agrees_with_model_crate() {
        let base = GptConfig::nanogpt_char_cpu(65);
        assert_counts_agree(&base);
        let mut gpt2 = base.clone();
        gpt2.biases = Biases::ALL;
        gpt2.tied_embeddings = false;
        assert_counts_agree(&gpt2);
        let mut gated = base.clone();
        (gated.mlp, gated.norm, gated.n_kv_heads, gated.biases) =
            (MlpKind::Gated, NormKind::RmsNorm, 2, Biases::ALL);
        assert_counts_agree(&gated);
        let mut moe = base.clone();
        moe.moe = Some(MoeConfig {
            n_experts: 4,
            top_k: 2,
            expert_ffn_hidden: 96,
            n_shared_experts: 1,
            shared_ffn_hidden: 64,
            first_dense_layers: 1,
        });
        moe.biases = Biases::ALL;
        assert_counts_agree(&moe);
    }

    #[test]
    fn gpt2_124m_preset_builds_with_its_exact_count() {
        let spec = model::preset("gpt2-124m").unwrap();
        let config = GptConfig::from_spec(&spec).unwrap();
        assert_eq!(config.n_params(), 124_439_808);
    }

    #[test]
    fn unsupported_specs_are_named() {
        let spec = model::preset("llama3-8b").unwrap();
        let err = GptConfig::from_spec(&spec).unwrap_err().to_string();
        assert!(err.contains("rotary positions") && err.contains("llama3-8b"), "{err}");
        let mut bad = GptConfig::nanogpt_char_cpu(65);
        bad.n_kv_heads = 3;
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "kv_heads = 3: must be at least 1 and divide heads (4)"
        );
    }
}
