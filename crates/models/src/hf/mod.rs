//! Hugging Face model directories, as training writes them (issue #21): `config.json`, the
//! weights in safetensors, `tokenizer.json`. So far the weights ([`checkpoint`]).

pub mod checkpoint;

pub use checkpoint::{Checkpoint, CheckpointError};

#[cfg(test)]
mod tests;
