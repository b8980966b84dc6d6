//! Checkpoints as bytes: a directory holds `model.safetensors`, the tokenizer when it is BPE, and `config.json`,
//! which the caller writes last (it is the commit marker) and which says how to read the rest.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::config::GptConfig;
use crate::error::{NnError, Result};
use crate::gpt::Gpt;
use crate::params::{Tensors, from_safetensors, to_safetensors};
use crate::train::{EvalStats, TrainConfig};
use crate::vocab::{CharVocab, Vocab};

/// The format tag in `config.json`.
pub const FORMAT: &str = "choir-gpt 1";
/// The weights' file name inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The config's file name (written last).
pub const CONFIG_FILE: &str = "config.json";
/// The BPE tokenizer's file name (choir's text format), present only for BPE models.
pub const TOKENIZER_FILE: &str = "tokenizer.bpe";
/// The optimizer moments' file name, present in checkpoints a run can resume from.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// The content of `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// The model's shape.
    pub gpt: GptConfig,
    /// How text becomes tokens.
    pub tokenizer: TokenizerMeta,
    /// How the weights were trained, if they were.
    pub training: Option<TrainingRecord>,
}

/// The tokenizer entry of `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenizerMeta {
    /// Character-level: the symbols in id order.
    Char {
        /// The symbols, concatenated.
        chars: String,
    },
    /// Byte-level BPE, stored beside the config.
    Bpe {
        /// File name inside the checkpoint directory.
        file: String,
    },
}

/// What training produced the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// The training configuration.
    pub config: TrainConfig,
    /// Steps taken.
    pub steps: usize,
    /// Every evaluation.
    pub evals: Vec<EvalStats>,
    /// Wall-clock seconds, as measured by the caller.
    pub wall_s: Option<f64>,
    /// Where the run can resume from (with [`OPTIMIZER_FILE`]); absent in checkpoints without optimizer state.
    #[serde(default)]
    pub resume: Option<crate::train::ResumePoint>,
}

/// A loaded checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The model.
    pub model: Gpt,
    /// Its vocabulary.
    pub vocab: Vocab,
    /// The parsed `config.json`.
    pub meta: CheckpointMeta,
}

/// The files of a checkpoint, in the order to write them (`config.json` last).
pub fn checkpoint_files(
    gpt: &GptConfig,
    vocab: &Vocab,
    tensors: &Tensors,
    training: Option<TrainingRecord>,
    optimizer: Option<&Tensors>,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut files = vec![(WEIGHTS_FILE, to_safetensors(tensors)?)];
    if let Some(moments) = optimizer {
        files.push((OPTIMIZER_FILE, to_safetensors(moments)?));
    }
    let tokenizer = match vocab {
        Vocab::Char(v) => TokenizerMeta::Char { chars: v.chars.iter().collect() },
        Vocab::Bpe(t) => {
            files.push((TOKENIZER_FILE, t.save().into_bytes()));
            TokenizerMeta::Bpe { file: TOKENIZER_FILE.to_string() }
        }
    };
    let meta = CheckpointMeta { format: FORMAT.to_string(), gpt: gpt.clone(), tokenizer, training };
    let json =
        serde_json::to_vec_pretty(&meta).map_err(|e| NnError::Checkpoint(format!("writing config: {e}")))?;
    files.push((CONFIG_FILE, json));
    Ok(files)
}

/// Parses `config.json` (the caller then knows whether a tokenizer file must be read).
pub fn read_meta(config_json: &str) -> Result<CheckpointMeta> {
    let meta: CheckpointMeta = serde_json::from_str(config_json).map_err(|e| {
        NnError::Checkpoint(format!("{CONFIG_FILE}: {e} (expected a config written by `choir train`)"))
    })?;
    if meta.format != FORMAT {
        return Err(NnError::Checkpoint(format!(
            "{CONFIG_FILE}: format {:?}, expected {FORMAT:?}",
            meta.format
        )));
    }
    meta.gpt.validate()?;
    Ok(meta)
}

/// Builds the model and vocabulary from a checkpoint's files' contents.
pub fn load_checkpoint(
    config_json: &str,
    weights: &[u8],
    tokenizer_text: Option<&str>,
    device: &Device,
) -> Result<Checkpoint> {
    let meta = read_meta(config_json)?;
    let vocab = match (&meta.tokenizer, tokenizer_text) {
        (TokenizerMeta::Char { chars }, _) => Vocab::Char(CharVocab { chars: chars.chars().collect() }),
        (TokenizerMeta::Bpe { .. }, Some(text)) => Vocab::bpe_from_text(text)?,
        (TokenizerMeta::Bpe { file }, None) => {
            return Err(NnError::Checkpoint(format!("the BPE tokenizer {file:?} was not given")));
        }
    };
    if vocab.size() != meta.gpt.vocab_size {
        return Err(NnError::Checkpoint(format!(
            "the tokenizer has {} tokens, expected {} (the model's vocabulary)",
            vocab.size(),
            meta.gpt.vocab_size
        )));
    }
    let tensors = from_safetensors(weights, &meta.gpt, device)?;
    Ok(Checkpoint { model: Gpt::new(&meta.gpt, &tensors)?, vocab, meta })
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Tensor};

    use super::*;
    use crate::params::init_params;

    #[test]
    fn checkpoint_round_trips_with_config_last() {
        let vocab = Vocab::Char(CharVocab::from_text("abc d\n"));
        let gpt = crate::gpt_tests::tiny_config(vocab.size());
        let tensors = init_params(&gpt, 3, DType::F32, &Device::Cpu).unwrap();
        let files = checkpoint_files(&gpt, &vocab, &tensors, None, None).unwrap();
        assert_eq!(files.last().unwrap().0, CONFIG_FILE);
        let config = std::str::from_utf8(&files[1].1).unwrap();
        let loaded = load_checkpoint(config, &files[0].1, None, &Device::Cpu).unwrap();
        assert_eq!(loaded.vocab.encode("cab").unwrap(), vec![4, 2, 3]);
        let x = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
        let a = Gpt::new(&gpt, &tensors).unwrap().forward(&x, None).unwrap();
        let b = loaded.model.forward(&x, None).unwrap();
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let err = read_meta("{}").unwrap_err().to_string();
        assert!(err.starts_with("checkpoint: config.json: missing field"), "{err}");
    }

    #[test]
    fn bpe_checkpoint_carries_its_tokenizer() {
        let text = "the cat sat on the mat; the cat ate the rat. ".repeat(20);
        let tc = tokenizer::TrainConfig { vocab_size: 280, ..Default::default() };
        let (tok, _) = tokenizer::train(text.as_bytes(), &tc).unwrap();
        let vocab = Vocab::bpe_from_text(&tok.save()).unwrap();
        let ids = vocab.encode("the cat sat").unwrap();
        assert!(ids.len() < "the cat sat".len(), "merges apply: {ids:?}");
        assert_eq!(vocab.decode(&ids).unwrap(), "the cat sat");
        let gpt = crate::gpt_tests::tiny_config(vocab.size());
        let tensors = init_params(&gpt, 3, DType::F32, &Device::Cpu).unwrap();
        let files = checkpoint_files(&gpt, &vocab, &tensors, None, None).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(names, vec![WEIGHTS_FILE, TOKENIZER_FILE, CONFIG_FILE]);
        let config = std::str::from_utf8(&files[2].1).unwrap();
        let tok_text = std::str::from_utf8(&files[1].1).unwrap();
        let loaded = load_checkpoint(config, &files[0].1, Some(tok_text), &Device::Cpu).unwrap();
        assert_eq!(loaded.vocab.encode("the mat").unwrap(), vocab.encode("the mat").unwrap());
        let err = load_checkpoint(config, &files[0].1, None, &Device::Cpu).unwrap_err().to_string();
        assert_eq!(err, "checkpoint: the BPE tokenizer \"tokenizer.bpe\" was not given");
    }
}
