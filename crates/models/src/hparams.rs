//! Typed, validated hyper-parameters, parsed once from GGUF metadata.

use ward_kernels::rope::{Rope, RopeLayout};

use crate::gguf::{GgufError, GgufFile};

/// The architectures Ward implements (one file each under `arch/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Gemma3,
}

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HParams {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    /// RoPE base of global-attention layers.
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (Gemma 3 uses 10 000 there).
    pub rope_base_local: f32,
    /// Position multiplier of global layers (`1 / rope.scaling.factor` for linear scaling).
    pub rope_freq_scale: f32,
    /// Sliding-window size and which layers use it (Gemma 3: five local, then one global).
    pub sliding_window: Option<SlidingWindow>,
    pub attn_scale: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow {
    pub size: usize,
    /// Every `pattern`-th layer (the last of each group) attends globally.
    pub pattern: usize,
}

impl HParams {
    /// Whether layer `il` attends only to the last `window` positions.
    pub fn layer_window(&self, il: usize) -> Option<usize> {
        self.sliding_window
            .filter(|w| il % w.pattern < w.pattern - 1)
            .map(|w| w.size)
    }

    /// Layer `il`'s rotary embedding: sliding-window layers use the local base and no position
    /// scaling.
    pub fn layer_rope(&self, il: usize, layout: RopeLayout) -> Rope {
        let local = self.layer_window(il).is_some();
        Rope {
            head_dim: self.head_dim,
            rope_dim: self.rope_dim,
            base: if local {
                self.rope_base_local
            } else {
                self.rope_base
            },
            freq_scale: if local { 1.0 } else { self.rope_freq_scale },
            layout,
        }
    }

    pub fn from_gguf(gguf: &GgufFile) -> Result<HParams, GgufError> {
        let arch_name = gguf.require_str("general.architecture")?;
        let arch = Arch::from_name(arch_name).ok_or_else(|| GgufError::InvalidValue {
            key: "general.architecture".into(),
            value: arch_name.to_string(),
            reason: "unsupported architecture (Ward implements llama and gemma3)".into(),
        })?;
        let p = arch_name;
        let count = |key: &str, max: u64| -> Result<usize, GgufError> {
            let full = format!("{p}.{key}");
            let v = gguf.require_u64(&full)?;
            bounded(&full, v, 1, max)
        };
        let n_layer = count("block_count", 1024)?;
        let n_embd = count("embedding_length", 1 << 16)?;
        let n_ff = count("feed_forward_length", 1 << 18)?;
        let n_head = count("attention.head_count", 1024)?;
        let n_head_kv = match gguf.get_u64(&format!("{p}.attention.head_count_kv"))? {
            Some(v) => bounded(&format!("{p}.attention.head_count_kv"), v, 1, n_head as u64)?,
            None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(invalid(
                &format!("{p}.attention.head_count_kv"),
                n_head_kv,
                "must divide head_count",
            ));
        }
        let head_dim = match gguf.get_u64(&format!("{p}.attention.key_length"))? {
            Some(v) => bounded(&format!("{p}.attention.key_length"), v, 2, 4096)?,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(invalid(
                    &format!("{p}.embedding_length"),
                    n_embd,
                    "not divisible by head_count",
                ))
            }
        };
        if let Some(v) = gguf.get_u64(&format!("{p}.attention.value_length"))? {
            if v as usize != head_dim {
                return Err(invalid(
                    &format!("{p}.attention.value_length"),
                    v,
                    "must equal key_length",
                ));
            }
        }
        let rope_dim = match gguf.get_u64(&format!("{p}.rope.dimension_count"))? {
            Some(v) => bounded(&format!("{p}.rope.dimension_count"), v, 2, head_dim as u64)?,
            None => head_dim,
        };
        if head_dim % 2 != 0 || rope_dim % 2 != 0 {
            return Err(invalid(
                &format!("{p}.rope.dimension_count"),
                rope_dim,
                "head and rope dims must be even",
            ));
        }
        let context_length = count("context_length", 1 << 24)?;
        let rms_eps = positive(gguf, &format!("{p}.attention.layer_norm_rms_epsilon"), None)?;
        let default_base = match arch {
            Arch::Llama => 10_000.0,
            Arch::Gemma3 => 1_000_000.0,
        };
        let rope_base = positive(gguf, &format!("{p}.rope.freq_base"), Some(default_base))?;
        let rope_freq_scale = match gguf.get_str(&format!("{p}.rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => 1.0 / positive(gguf, &format!("{p}.rope.scaling.factor"), Some(1.0))?,
            Some(other) => {
                return Err(invalid(
                    &format!("{p}.rope.scaling.type"),
                    other,
                    "only linear RoPE scaling is implemented",
                ))
            }
        };
        let (sliding_window, rope_base_local) = match arch {
            Arch::Llama => (None, rope_base),
            // llama.cpp: Gemma 3 alternates five sliding-window layers with one global layer, and
            // its local layers use RoPE base 10 000 whatever the global base is.
            Arch::Gemma3 => {
                let size = count("attention.sliding_window", 1 << 24)?;
                (Some(SlidingWindow { size, pattern: 6 }), 10_000.0)
            }
        };
        Ok(HParams {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            rope_dim,
            context_length,
            rms_eps,
            rope_base,
            rope_base_local,
            rope_freq_scale,
            sliding_window,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
        })
    }
}

fn invalid(key: &str, value: impl ToString, reason: &str) -> GgufError {
    GgufError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn bounded(key: &str, v: u64, min: u64, max: u64) -> Result<usize, GgufError> {
    if v < min || v > max {
        return Err(invalid(key, v, &format!("must be between {min} and {max}")));
    }
    Ok(v as usize)
}

fn positive(gguf: &GgufFile, key: &str, default: Option<f32>) -> Result<f32, GgufError> {
    let v = match (gguf.get_f64(key)?, default) {
        (Some(v), _) => v as f32,
        (None, Some(d)) => d,
        (None, None) => return Err(GgufError::MissingKey(key.to_string())),
    };
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(key, v, "must be a positive finite number"));
    }
    Ok(v)
}
