//! The buffers a forward pass works in. The caller keeps one `Workspace` per sequence (or per
//! batch) and passes it to every forward call; the buffers grow to the largest step they have
//! seen and keep that room, so a decode step allocates nothing.

/// Every intermediate of a forward pass, reused from one pass to the next.
#[derive(Default)]
pub struct Workspace {
    /// The residual stream, `[n_tok][n_embd]`.
    pub(crate) x: Vec<f32>,
    /// A block's attention or feed-forward output before it is added to `x`.
    pub(crate) out: Vec<f32>,
    pub(crate) layer: LayerScratch,
    /// `[n_logits][n_vocab]`.
    pub(crate) logits: Vec<f32>,
}

/// The intermediates inside one layer.
#[derive(Default)]
pub struct LayerScratch {
    /// The fused Q/K/V projection's output, `[n_tok][q | k | v]`, before it is split.
    pub(crate) qkv: Vec<f32>,
    pub(crate) q: Vec<f32>,
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
    /// The attention output, `[n_tok][n_head · head_dim]`.
    pub(crate) attn: Vec<f32>,
    /// The feed-forward's hidden activations, `[n_tok][n_ff]`.
    pub(crate) hidden: Vec<f32>,
    /// The up projection, where gate and up are separate matrices.
    pub(crate) up: Vec<f32>,
}

/// `v` as exactly `len` values (contents unspecified), allocating only if it never held as many.
pub(crate) fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.resize(len, 0.0);
    v
}
