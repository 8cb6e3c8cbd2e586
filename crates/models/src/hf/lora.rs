//! PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`), merged into the
//! base checkpoint's weights as they are converted: W' = W + s · (α / r) · B·A, where s is the
//! operator's scale (`--lora DIR:s`, default 1) and α / r PEFT's scaling (α / √r with rsLoRA),
//! before the matrix is permuted or quantized, as PEFT's `merge_and_unload` does.
//!
//! An adapter must fit its base exactly: every tensor a `lora_A` / `lora_B` pair of a linear
//! layer the base has, with the base's input and output sizes and the config's rank, its
//! modules among `target_modules`. Anything else (another base model, DoRA, trained biases,
//! saved whole modules, per-layer ranks) is refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::checkpoint::Checkpoint;
use super::{json_object, HfError};

/// One adapter, opened and checked against its base.
pub struct Adapter {
    pub dir: PathBuf,
    /// The directory's name: what the served model is called.
    pub name: String,
    /// The operator's scale times PEFT's.
    pub scale: f32,
    pub rank: usize,
    pub weights: Checkpoint,
    /// Base tensor name (`model.layers.0.self_attn.q_proj.weight`) → its A and B tensors.
    pub pairs: BTreeMap<String, (String, String)>,
}

/// `DIR[:SCALE]` of `--lora`.
pub fn parse_lora_arg(s: &str) -> Result<(PathBuf, f32), String> {
    if let Some((dir, scale)) = s.rsplit_once(':') {
        if let Ok(v) = scale.parse::<f32>() {
            if !v.is_finite() {
                return Err(format!("--lora {s}: the scale must be a finite number"));
            }
            return Ok((PathBuf::from(dir), v));
        }
    }
    Ok((PathBuf::from(s), 1.0))
}

/// Fields of adapter_config.json that Ward reads or that change nothing it computes.
const READ: &[&str] = &[
    "peft_type",
    "r",
    "lora_alpha",
    "use_rslora",
    "target_modules",
    "base_model_name_or_path",
    "task_type",
    "inference_mode",
    "lora_dropout",
    "init_lora_weights",
    "revision",
    "auto_mapping",
    "layers_pattern",
    "peft_version",
];

impl Adapter {
    pub fn open(dir: &Path, scale: f32, base: &Checkpoint) -> Result<Adapter, HfError> {
        let config_path = dir.join("adapter_config.json");
        let config = json_object(&config_path)?.ok_or_else(|| HfError::File {
            path: config_path.clone(),
            reason: "missing: a PEFT adapter directory has one".into(),
        })?;
        let bad = |field: &str, reason: String| HfError::Adapter {
            dir: dir.to_path_buf(),
            reason: format!("adapter_config.json: {field}: {reason}"),
        };
        if config.get("peft_type").and_then(Json::as_str) != Some("LORA") {
            return Err(bad("peft_type", "Ward merges LoRA adapters only".into()));
        }
        // Any other field must be off (null, false, empty, "none"): a setting Ward does not
        // apply (DoRA, trained biases, saved modules, per-layer ranks) is refused.
        for (k, v) in &config {
            let off = matches!(v, Json::Null | Json::Bool(false))
                || v.as_str() == Some("none")
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(Map::is_empty);
            if !READ.contains(&k.as_str()) && !off {
                return Err(bad(k, format!("{v} is a setting Ward does not apply")));
            }
        }
        let rank = config
            .get("r")
            .and_then(Json::as_u64)
            .filter(|r| (1..=65536).contains(r))
            .ok_or_else(|| bad("r", "missing, or not a rank between 1 and 65536".into()))?
            as usize;
        let alpha = config
            .get("lora_alpha")
            .and_then(Json::as_f64)
            .filter(|a| a.is_finite())
            .ok_or_else(|| bad("lora_alpha", "missing, or not a number".into()))?;
        let rslora = config
            .get("use_rslora")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let peft_scale = if rslora {
            alpha / (rank as f64).sqrt()
        } else {
            alpha / rank as f64
        };
        let targets: Vec<String> = match config.get("target_modules") {
            Some(Json::Array(a)) => a
                .iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
            Some(Json::String(s)) => vec![s.clone()],
            _ => return Err(bad("target_modules", "missing".into())),
        };
        let weights = Checkpoint::open_file(&dir.join("adapter_model.safetensors"))?;
        let pairs = pairs(dir, &weights, base, rank, &targets)?;
        let name = super::dir_name(dir);
        Ok(Adapter {
            dir: dir.to_path_buf(),
            name,
            scale: (f64::from(scale) * peft_scale) as f32,
            rank,
            weights,
            pairs,
        })
    }
}

/// The adapter's A/B pairs by the base tensor they change, each checked against the base.
fn pairs(
    dir: &Path,
    weights: &Checkpoint,
    base: &Checkpoint,
    rank: usize,
    targets: &[String],
) -> Result<BTreeMap<String, (String, String)>, HfError> {
    let bad = |reason: String| HfError::Adapter {
        dir: dir.to_path_buf(),
        reason,
    };
    let mut out: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    for name in weights.names() {
        let module_and_part = name
            .strip_prefix("base_model.model.")
            .and_then(|n| n.strip_suffix(".weight"))
            .and_then(|n| {
                n.strip_suffix(".lora_A")
                    .map(|m| (m, true))
                    .or_else(|| n.strip_suffix(".lora_B").map(|m| (m, false)))
            });
        let Some((module, is_a)) = module_and_part else {
            return Err(bad(format!(
                "tensor {name:?} is not a LoRA A or B matrix of a linear layer"
            )));
        };
        let leaf = module.rsplit('.').next().unwrap_or(module);
        if !targets.iter().any(|t| t == leaf || t == "all-linear") {
            return Err(bad(format!(
                "tensor {name:?} adapts {leaf:?}, which is not among target_modules {targets:?}"
            )));
        }
        let target = format!("{module}.weight");
        let Some(w) = base.entry(&target) else {
            return Err(bad(format!(
                "tensor {name:?} adapts {target:?}, which the base model has not got: an \
                 adapter for another model"
            )));
        };
        let (n_out, n_in) = match w.shape[..] {
            [o, i] => (o, i),
            _ => return Err(bad(format!("{target:?} is not a matrix"))),
        };
        let a = weights.entry(name).expect("named by the adapter");
        let want = if is_a { [rank, n_in] } else { [n_out, rank] };
        if a.shape != want {
            return Err(bad(format!(
                "tensor {name:?} has shape {:?}; the base's {target:?} ({n_out} × {n_in}) at rank \
                 {rank} makes it {want:?}: an adapter for another model",
                a.shape
            )));
        }
        let slot = out.entry(target).or_default();
        *(if is_a { &mut slot.0 } else { &mut slot.1 }) = Some(name.to_string());
    }
    out.into_iter()
        .map(|(target, pair)| match pair {
            (Some(a), Some(b)) => Ok((target, (a, b))),
            _ => Err(bad(format!(
                "{target:?} has a LoRA A or B matrix without its partner"
            ))),
        })
        .collect()
}

/// `B·A` row `row` (of the base matrix's rows) added to `values`, times `scale`.
pub fn add_delta_row(values: &mut [f32], a: &[f32], b_row: &[f32], scale: f32) {
    let cols = values.len();
    for (k, &bk) in b_row.iter().enumerate() {
        let s = scale * bk;
        for (v, &ak) in values.iter_mut().zip(&a[k * cols..(k + 1) * cols]) {
            *v += s * ak;
        }
    }
}
