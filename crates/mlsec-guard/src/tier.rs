//! The optional second tier: a transformer classifier the user supplies as ONNX (with its
//! Hugging Face `tokenizer.json`), run in process through `tract`, for texts the first tier
//! scores in the grey zone. Nothing is downloaded: both files are read from where the user
//! says.
//!
//! The model takes `input_ids` and `attention_mask` (and `token_type_ids`, filled with zeros,
//! when it has them), int64 of shape `[1, sequence]`, and returns logits `[1, labels]` (softmax)
//! or one logit (sigmoid). Text longer than [`MAX_TOKENS`] is scored in overlapping pieces and
//! the most attack-like piece counts, at most [`MAX_PIECES`] of them; the rest is left to the
//! first tier and said so (`tier:partial`).

use std::path::{Path, PathBuf};
#[cfg(feature = "onnx")]
use std::sync::Arc;

#[cfg(feature = "onnx")]
use tokenizers::Tokenizer;
#[cfg(feature = "onnx")]
use tract_onnx::prelude::*;

/// Tokens per piece the model sees (the usual BERT-family limit).
pub const MAX_TOKENS: usize = 512;
/// Tokens consecutive pieces share.
pub const STRIDE: usize = 64;
/// Pieces scored per text.
pub const MAX_PIECES: usize = 8;
/// Largest model file read.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Why the second tier could not be loaded or run. Each names the file or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error(
        "{path}: the model's input {name:?} is not one a text classifier takes (input_ids, attention_mask, token_type_ids)"
    )]
    Input { path: PathBuf, name: String },
    #[error("{path}: the model has no input named input_ids")]
    NoIds { path: PathBuf },
    #[error("{path}: label {label} is outside the model's {labels} outputs")]
    Label {
        path: PathBuf,
        label: usize,
        labels: usize,
    },
    #[error("second tier: {0}")]
    Run(String),
}

#[cfg(feature = "onnx")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Ids,
    Mask,
    Types,
}

/// A loaded second tier.
#[cfg(feature = "onnx")]
pub struct Tier {
    path: PathBuf,
    model: Arc<TypedRunnableModel>,
    feeds: Vec<Feed>,
    tokenizer: Tokenizer,
    /// The special tokens the tokenizer puts before and after a text (`[CLS]`, `[SEP]`).
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// The index of the injection label in the model's output.
    label: usize,
}

#[cfg(feature = "onnx")]
impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("path", &self.path)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// The injection label from a Hugging Face `config.json` beside the model: the label whose name
/// says injection, jailbreak, unsafe or malicious.
#[cfg(feature = "onnx")]
fn label_from_config(model: &Path) -> Option<usize> {
    let cfg = model.with_file_name("config.json");
    let text = std::fs::read_to_string(cfg).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let map = v.get("id2label")?.as_object()?;
    map.iter().find_map(|(k, name)| {
        let n = name.as_str()?.to_ascii_lowercase();
        ["inject", "jailbreak", "unsafe", "malicious"]
            .iter()
            .any(|w| n.contains(w))
            .then(|| k.parse().ok())
            .flatten()
    })
}

#[cfg(feature = "onnx")]
impl Tier {
    /// Loads `model` (ONNX) and `tokenizer` (`tokenizer.json`). `label` is the output index of
    /// the injection class; without it, the `id2label` of a `config.json` beside the model
    /// decides, else 1.
    pub fn load(model: &Path, tokenizer: &Path, label: Option<usize>) -> Result<Tier, TierError> {
        let file_err = |path: &Path, problem: String| TierError::File {
            path: path.to_path_buf(),
            problem,
        };
        let size = std::fs::metadata(model)
            .map_err(|e| file_err(model, e.to_string()))?
            .len();
        if size > MAX_MODEL_BYTES {
            return Err(file_err(
                model,
                format!("{size} bytes, more than the {MAX_MODEL_BYTES} a second tier may be"),
            ));
        }
        let mut tok =
            Tokenizer::from_file(tokenizer).map_err(|e| file_err(tokenizer, e.to_string()))?;
        // Pieces are cut here, not by the tokenizer (whose overflow differs between versions).
        tok.with_truncation(None)
            .map_err(|e| file_err(tokenizer, e.to_string()))?;
        tok.with_padding(None);
        let (prefix, suffix) = specials(&tok).map_err(|e| file_err(tokenizer, e))?;
        if prefix.len() + suffix.len() + STRIDE >= MAX_TOKENS {
            return Err(file_err(
                tokenizer,
                "adds so many special tokens that no text fits a piece".into(),
            ));
        }

        let mut m = tract_onnx::onnx()
            .model_for_path(model)
            .map_err(|e| file_err(model, format!("not a model tract can read: {e}")))?;
        let seq = m.symbols.sym("S");
        let outlets = m
            .input_outlets()
            .map_err(|e| file_err(model, e.to_string()))?
            .to_vec();
        let mut feeds = Vec::new();
        for (i, o) in outlets.iter().enumerate() {
            let name = m.node(o.node).name.clone();
            let feed = match name.as_str() {
                n if n.contains("input_ids") => Feed::Ids,
                n if n.contains("attention_mask") => Feed::Mask,
                n if n.contains("token_type_ids") => Feed::Types,
                _ => {
                    return Err(TierError::Input {
                        path: model.to_path_buf(),
                        name,
                    });
                }
            };
            feeds.push(feed);
            m.set_input_fact(
                i,
                InferenceFact::dt_shape(i64::datum_type(), tvec![1.to_dim(), seq.to_dim()]),
            )
            .map_err(|e| file_err(model, e.to_string()))?;
        }
        if !feeds.contains(&Feed::Ids) {
            return Err(TierError::NoIds {
                path: model.to_path_buf(),
            });
        }
        let runnable = m
            .into_optimized()
            .and_then(IntoRunnable::into_runnable)
            .map_err(|e| file_err(model, format!("cannot be prepared to run: {e}")))?;
        let label = label.or_else(|| label_from_config(model)).unwrap_or(1);
        let tier = Tier {
            path: model.to_path_buf(),
            model: runnable,
            feeds,
            tokenizer: tok,
            prefix,
            suffix,
            label,
        };
        // One run now, so a model that cannot score text fails at load, not on traffic.
        tier.score("hello").map(|_| tier).map_err(|e| match e {
            TierError::Label { .. } => e,
            other => file_err(model, other.to_string()),
        })
    }

    fn piece(&self, ids: &[u32], mask: &[u32]) -> Result<f32, TierError> {
        let n = ids.len();
        let run = |e: TractError| TierError::Run(e.to_string());
        let tensor = |v: Vec<i64>| -> Result<TValue, TierError> {
            Ok(Tensor::from_shape(&[1, n], &v).map_err(run)?.into_tvalue())
        };
        let mut inputs: TVec<TValue> = tvec![];
        for f in &self.feeds {
            let v: Vec<i64> = match f {
                Feed::Ids => ids.iter().map(|&x| i64::from(x)).collect(),
                Feed::Mask => mask.iter().map(|&x| i64::from(x)).collect(),
                Feed::Types => vec![0; n],
            };
            inputs.push(tensor(v)?);
        }
        let out = self.model.run(inputs).map_err(run)?;
        let logits = out
            .first()
            .ok_or_else(|| TierError::Run("the model returned nothing".into()))?
            .cast_to::<f32>()
            .map_err(run)?
            .into_owned();
        let view = logits.to_plain_array_view::<f32>().map_err(run)?;
        let v: Vec<f32> = view.iter().copied().collect();
        match v.len() {
            0 => Err(TierError::Run("the model returned an empty tensor".into())),
            1 => Ok(1.0 / (1.0 + (-v[0]).exp())),
            labels if self.label >= labels => Err(TierError::Label {
                path: self.path.clone(),
                label: self.label,
                labels,
            }),
            _ => {
                let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = v.iter().map(|x| (x - max).exp()).sum();
                Ok((v[self.label] - max).exp() / sum)
            }
        }
    }

    /// The probability that `text` is an injection (the most attack-like piece), and whether
    /// all of the text was scored.
    pub fn score(&self, text: &str) -> Result<(f32, bool), TierError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TierError::Run(format!("tokenizer: {e}")))?;
        let ids = enc.get_ids();
        let room = MAX_TOKENS - self.prefix.len() - self.suffix.len();
        let mut best = f32::NEG_INFINITY;
        let mut start = 0;
        for _ in 0..MAX_PIECES {
            let end = (start + room).min(ids.len());
            let piece: Vec<u32> = self
                .prefix
                .iter()
                .chain(&ids[start..end])
                .chain(&self.suffix)
                .copied()
                .collect();
            best = best.max(self.piece(&piece, &vec![1; piece.len()])?);
            if end == ids.len() {
                return Ok((best.max(0.0), true));
            }
            start = end - STRIDE;
        }
        Ok((best.max(0.0), false))
    }
}

/// The special tokens a tokenizer adds before and after a text: found by encoding one word
/// with and without them.
#[cfg(feature = "onnx")]
fn specials(tok: &Tokenizer) -> Result<(Vec<u32>, Vec<u32>), String> {
    let with = tok.encode("a", true).map_err(|e| e.to_string())?;
    let without = tok.encode("a", false).map_err(|e| e.to_string())?;
    let (w, o) = (with.get_ids(), without.get_ids());
    let at = (0..=w.len().saturating_sub(o.len()))
        .find(|&p| w.get(p..p + o.len()) == Some(o))
        .ok_or("its special tokens are not around the text: pieces cannot be cut")?;
    Ok((w[..at].to_vec(), w[at + o.len()..].to_vec()))
}

/// A build without the `onnx` feature: loading says so.
#[cfg(not(feature = "onnx"))]
#[derive(Debug)]
pub struct Tier {
    never: std::convert::Infallible,
}

#[cfg(not(feature = "onnx"))]
impl Tier {
    pub fn load(model: &Path, _tokenizer: &Path, _label: Option<usize>) -> Result<Tier, TierError> {
        Err(TierError::File {
            path: model.to_path_buf(),
            problem: "this build has no second tier (mlsec-guard's `onnx` feature is off)".into(),
        })
    }

    pub fn score(&self, _text: &str) -> Result<(f32, bool), TierError> {
        match self.never {}
    }
}
