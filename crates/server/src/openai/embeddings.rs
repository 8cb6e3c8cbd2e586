//! `POST /v1/embeddings`, OpenAI's shape: `input` as a string, an array of strings, an array of
//! token ids or an array of such arrays; `encoding_format` `float` (the default) or `base64`
//! (little-endian f32, which the openai SDK asks for and decodes); `dimensions` keeps the first
//! N of each vector and scales them back to unit length (meaningful only for models trained for
//! it, "Matryoshka" embeddings). All of a request's inputs go to the encoder together, as one
//! pass where they fit. Ollama's `/api/embed` reads its own shape and shares the rest.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::{Extension, Json};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use ward_engine::{normalize, EmbedInput, EmbedRequest, Embedder, Embeddings};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::generation::read_body;
use crate::ledger::Ledger;
use crate::openai::request::parse_json;
use crate::App;

/// OpenAI's limit on inputs per request.
pub const MAX_INPUTS: usize = 2048;

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Input {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

#[derive(Deserialize)]
struct EmbeddingsBody {
    model: Option<String>,
    input: Input,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
    #[allow(dead_code)]
    user: Option<String>,
}

impl Input {
    /// The inputs, checked: at least one, at most [`MAX_INPUTS`], none empty.
    pub(crate) fn into_inputs(self) -> Result<Vec<EmbedInput>, ApiError> {
        let inputs: Vec<EmbedInput> = match self {
            Input::One(s) => vec![EmbedInput::Text(s)],
            Input::Many(v) => v.into_iter().map(EmbedInput::Text).collect(),
            Input::Tokens(ids) => vec![EmbedInput::Tokens(ids)],
            Input::ManyTokens(v) => v.into_iter().map(EmbedInput::Tokens).collect(),
        };
        let bad = |m: &str| Err(ApiError::invalid_param("input", m));
        if inputs.is_empty() {
            return bad("'input' must not be empty");
        }
        if inputs.len() > MAX_INPUTS {
            return bad(&format!("'input' has more than {MAX_INPUTS} items"));
        }
        let empty = |i: &EmbedInput| match i {
            EmbedInput::Text(s) => s.is_empty(),
            EmbedInput::Tokens(t) => t.is_empty(),
            EmbedInput::Pair(q, d) => q.is_empty() || d.is_empty(),
        };
        if inputs.iter().any(empty) {
            return bad("'input' must not contain an empty string or token array");
        }
        Ok(inputs)
    }
}

pub async fn embeddings(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, &app).await?;
    let body: EmbeddingsBody = parse_json(&bytes)?;
    record_input(&ledger, &bytes)?;
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "encoding_format",
                "'encoding_format' must be 'float' or 'base64'",
            ))
        }
    };
    let embedder = check_embedder(&app, &caller, &ledger, body.model.as_deref(), false)?;
    let dimensions = dimensions(&*embedder, body.dimensions)?;
    let inputs = body.input.into_inputs()?;
    let n = inputs.len();
    ledger.with(|r| r.params = Some(json!({"inputs": n, "dimensions": dimensions})));
    let out = run(&app, &caller, &ledger, &embedder, inputs).await?;
    let data: Vec<Value> = vectors(&out, dimensions)
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": embedder.info().id,
        "usage": {"prompt_tokens": out.prompt_tokens, "total_tokens": out.prompt_tokens},
    })))
}

/// The embedding model (or, with `reranker`, the reranker) the request names (`None`: the only
/// one of its kind served), if the caller may use it. Records the model in the request's
/// ledger.
pub(crate) fn check_embedder(
    app: &App,
    caller: &Caller,
    ledger: &Ledger,
    requested: Option<&str>,
    reranker: bool,
) -> Result<Arc<dyn Embedder>, ApiError> {
    let embedders = app.embedders();
    let of_kind: Vec<_> = embedders
        .iter()
        .filter(|e| e.is_reranker() == reranker)
        .collect();
    let name = match (requested, of_kind.as_slice()) {
        (Some(name), _) => name,
        (None, [only]) => only.info().id.as_str(),
        (None, _) => return Err(ApiError::invalid_param("model", "'model' is required")),
    };
    if caller.0.as_ref().is_some_and(|s| !s.may_use(name)) {
        return Err(ApiError::model_not_allowed());
    }
    let Some(embedder) = embedders.iter().find(|e| e.info().id == name) else {
        if app.serves_generative(name) {
            return Err(ApiError::invalid_param(
                "model",
                "this model generates text; it does not produce embeddings or scores",
            ));
        }
        return Err(ApiError::model_not_found());
    };
    if embedder.is_reranker() != reranker {
        return Err(ApiError::invalid_param(
            "model",
            match reranker {
                true => "this is an embedding model; rerank with a reranker",
                false => "this is a reranker; use /v1/rerank",
            },
        ));
    }
    ledger.with(|r| r.model = Some(name.to_string()));
    Ok(embedder.clone())
}

/// Run the inputs through `embedder`, within the caller's share and tokens per minute.
pub(crate) async fn run(
    app: &Arc<App>,
    caller: &Caller,
    ledger: &Ledger,
    embedder: &Arc<dyn Embedder>,
    inputs: Vec<EmbedInput>,
) -> Result<Embeddings, ApiError> {
    if let Some(service) = &caller.0 {
        service.check_tokens()?;
        let keys = app
            .keys
            .as_ref()
            .expect("a calling service means a key file");
        // One place in the encoder's queue while the request runs.
        let held = keys.hold(service, 1, embedder.capacity())?;
        ledger.with(|r| r.held = Some(held));
    }
    // Tokenizing is CPU work: one of the few turns for it, off the I/O threads.
    let preparing = app.preparing.acquire().await;
    let submitter = embedder.clone();
    let answer = tokio::task::spawn_blocking(move || submitter.embed(EmbedRequest { inputs }))
        .await
        .map_err(|_| ApiError::engine("the input could not be prepared"))?
        .map_err(|e| ApiError::from_submit(e, "input"))?;
    drop(preparing);
    let out = tokio::select! {
        out = answer => out
            .map_err(|_| ApiError::engine("the encoder stopped"))?
            .map_err(|e| ApiError::from_submit(e, "input"))?,
        () = app.cut() => return Err(ApiError::cut_at_shutdown()),
    };
    ledger.with(|r| r.prompt_tokens = out.prompt_tokens);
    if let Some(service) = &caller.0 {
        service.settle_tokens(0, out.prompt_tokens);
    }
    Ok(out)
}

/// The values to keep of each vector: all of them, or the `requested` first ones.
pub(crate) fn dimensions(
    embedder: &dyn Embedder,
    requested: Option<usize>,
) -> Result<usize, ApiError> {
    let dim = embedder.dimensions();
    match requested.unwrap_or(dim) {
        d if (1..=dim).contains(&d) => Ok(d),
        _ => Err(ApiError::invalid_param(
            "dimensions",
            format!("'dimensions' must be between 1 and {dim} for this model"),
        )),
    }
}

/// Each vector cut to its first `dimensions` values, back at unit length.
pub(crate) fn vectors(out: &Embeddings, dimensions: usize) -> impl Iterator<Item = Vec<f32>> + '_ {
    out.vectors.chunks_exact(out.dim).map(move |v| {
        let mut v = v[..dimensions].to_vec();
        if dimensions < out.dim {
            normalize(&mut v, dimensions);
        }
        v
    })
}

/// The request's `input` (or Ollama's `prompt`), kept in its record for the audit log as
/// `record_prompt` keeps a generation's prompt: an input that cannot be recorded is not served.
pub(crate) fn record_input(ledger: &Ledger, bytes: &[u8]) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    struct Audited {
        input: Option<Value>,
        prompt: Option<Value>,
    }
    let body: Audited = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::malformed("the input cannot be recorded for the audit log"))?;
    ledger.with(|r| r.prompt = body.input.or(body.prompt));
    Ok(())
}
