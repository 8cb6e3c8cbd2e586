//! OpenAI's wire format: request bodies in, response bodies and stream chunks out.

pub mod embeddings;
pub mod reasoning;
pub mod request;
pub mod rerank;
pub mod response;
pub mod responses;
pub mod tools;
