//! `ward serve`: the OpenAI-compatible API over a generative model, embedding models, or both
//! (`--model` repeated: one engine each, routed by the request's `model`). Binds first (so a
//! taken port fails at once and `/health` answers during a long load), hashes and loads the
//! models, prints the URL when they are ready, and stops gracefully on Ctrl-C or SIGTERM: `/ready` turns 503, new
//! requests get 503, those in flight finish, the audit log is flushed, exit 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio::net::TcpListener;
use ward_engine::{Embedder, EmbedderConfig, EmbedderHandle, EngineConfig, EngineHandle};
use ward_models::registry::{check_pin, model_sha256, resolve_model, Registry};
use ward_models::{LoadedModel, ThinkingFormat};
use ward_server::{App, AuditLog, AuditOptions, Keys, ServerConfig};

#[derive(Args)]
pub struct ServeArgs {
    /// Registry name or path to a .gguf file (default: the registry's default model). Repeat
    /// (or comma-separate) to serve an embedding model beside the generative one: each gets its
    /// own engine, and requests go to the one their `model` names. At most one generative model.
    #[arg(long, env = "WARD_MODEL", value_delimiter = ',')]
    model: Vec<String>,
    /// Address to listen on. The default keeps Ward reachable from this machine only; listen
    /// more widely only with --api-keys (or behind an authenticating proxy).
    #[arg(long, env = "WARD_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one; the URL printed says which).
    #[arg(long, env = "WARD_PORT", default_value_t = 8080)]
    port: u16,
    /// Threads for the model's maths (default: one per physical core).
    #[arg(long, env = "WARD_THREADS")]
    threads: Option<usize>,
    /// Requests that may wait for a place in the batch before new ones get 429.
    #[arg(long, env = "WARD_MAX_QUEUE", default_value_t = EngineConfig::default().max_queue)]
    max_queue: usize,
    /// Memory for the KV cache of all sequences together, in MiB. It bounds the context the
    /// server offers (a single sequence must fit) and how many long sequences run at once.
    #[arg(long, env = "WARD_KV_CACHE_MB", default_value_t = EngineConfig::default().kv_cache_bytes >> 20)]
    kv_cache_mb: usize,
    /// Tokens in one forward pass while sequences are generating: each one's next token plus
    /// chunks of the prompts being read. Smaller keeps their token rate steadier while a long
    /// prompt is read; larger reads prompts faster.
    #[arg(long, env = "WARD_MAX_BATCH_TOKENS", default_value_t = EngineConfig::default().max_batch_tokens)]
    max_batch_tokens: usize,
    /// Tokens in one forward pass when no sequence is generating (prompts only).
    #[arg(long, env = "WARD_MAX_PREFILL_TOKENS", default_value_t = EngineConfig::default().max_prefill_tokens)]
    max_prefill_tokens: usize,
    /// Sequences generating at once; more wait in the queue.
    #[arg(long, env = "WARD_MAX_RUNNING", default_value_t = EngineConfig::default().max_running)]
    max_running: usize,
    /// Seconds a generation request may take before it is ended with a 504 (0: no limit).
    #[arg(long, env = "WARD_REQUEST_TIMEOUT", default_value_t = 600)]
    request_timeout: u64,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, env = "WARD_MAX_BODY", default_value_t = ServerConfig::default().max_body_bytes)]
    max_body: usize,
    /// Seconds a client has to send its request headers; also the idle limit of a kept-alive
    /// connection.
    #[arg(long, env = "WARD_HEADER_TIMEOUT", default_value_t = 30)]
    header_timeout: u64,
    /// Seconds a client has to send its request body.
    #[arg(long, env = "WARD_BODY_TIMEOUT", default_value_t = 60)]
    body_timeout: u64,
    /// Seconds requests in flight may run on after a stop signal.
    #[arg(long, env = "WARD_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    shutdown_timeout: u64,
    /// Connections held open at once; more are closed as they come (default: three quarters
    /// of the open-file limit, `ulimit -n`).
    #[arg(long, env = "WARD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections held open at once from one client address. Behind a proxy every caller
    /// has the proxy's address: raise this (or rely on the proxy's own limits).
    #[arg(long, env = "WARD_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = ServerConfig::default().max_connections_per_address)]
    max_connections_per_address: usize,
    /// TOML file of the services allowed to call, with their key hashes, models and rates
    /// (see README "Access control"). Without it anyone who can connect may call.
    #[arg(long, env = "WARD_API_KEYS", value_name = "FILE")]
    api_keys: Option<PathBuf>,
    /// Append a sealed, chained JSON line per request to this file (`ward audit verify`
    /// checks it). Requests are refused (503) while it cannot be written.
    #[arg(long, env = "WARD_AUDIT_LOG", value_name = "PATH")]
    audit_log: Option<PathBuf>,
    /// Seal the audit log with this key (made by `ward keys audit`; mode 0600, outside the
    /// log's directory). Ward replaces it with the next epoch's key at every checkpoint.
    #[arg(
        long,
        env = "WARD_AUDIT_KEY",
        value_name = "FILE",
        requires = "audit_log"
    )]
    audit_key: Option<PathBuf>,
    /// Append a signed checkpoint (entry count and head MAC) to this file at every epoch and at
    /// stop; keep it on another disk or host (needs --audit-key).
    #[arg(
        long,
        env = "WARD_AUDIT_CHECKPOINTS",
        value_name = "PATH",
        requires = "audit_key"
    )]
    audit_checkpoints: Option<PathBuf>,
    /// Seconds between checkpoints (each also starts a new key epoch), while entries come.
    #[arg(long, env = "WARD_AUDIT_CHECKPOINT_SECS", default_value_t = 60)]
    audit_checkpoint_secs: u64,
    /// Keep this many rotated audit files; older ones are deleted, each deletion recorded in
    /// the chain. Without it no audit file is ever deleted.
    #[arg(long, env = "WARD_AUDIT_RETAIN", value_name = "FILES")]
    audit_retain: Option<u32>,
    /// Disk budget of all the audit log's files together, in MiB: past it requests are
    /// refused (503) until space is made, or, with --audit-retain, the oldest files go.
    #[arg(long, env = "WARD_AUDIT_MAX_TOTAL_MB")]
    audit_max_total_mb: Option<u64>,
    /// Put prompt and output text in the audit log, not only their sha256. The log then holds
    /// patient data: protect it accordingly.
    #[arg(long, env = "WARD_AUDIT_INCLUDE_TEXT")]
    audit_include_text: bool,
    /// Rotate the audit log (to PATH.1, PATH.2, …, one chain) when it reaches this size.
    #[arg(long, env = "WARD_AUDIT_MAX_MB", default_value_t = 256)]
    audit_max_mb: u64,
    /// Read control-token texts (`<|im_start|>`, `<|eot_id|>`, …) in callers' prompts, messages
    /// and tools as those tokens. Off by default: a caller's text is plain text, so it cannot
    /// forge a system turn; turn on only when every caller is trusted.
    #[arg(long, env = "WARD_ALLOW_CONTROL_TOKENS")]
    allow_control_tokens: bool,
    /// How the model marks its thinking, for chat answers split into `reasoning_content` and
    /// `content`: think-tags (`<think>…</think>`), thinking-sections (`## Thinking … ## Final
    /// Response`) or none. Default: the model's registry entry, else what its chat template
    /// declares; a model with neither answers with content only.
    #[arg(long, env = "WARD_REASONING_FORMAT", value_name = "FORMAT")]
    reasoning_format: Option<String>,
    /// Run the model on this NVIDIA GPU (builds with the `cuda` feature).
    #[arg(long, env = "WARD_GPU", value_name = "ORDINAL")]
    gpu: Option<usize>,
    #[command(flatten)]
    checkpoint: crate::run::CheckpointArgs,
    /// Serve only a model file whose sha256 is pinned in models/registry.toml.
    #[arg(long, env = "WARD_STRICT_MODELS")]
    strict_models: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); without it, plain HTTP
    /// (put a TLS-terminating proxy in front).
    #[arg(long, env = "WARD_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "WARD_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Let browser pages from this origin (scheme://host[:port]) call the API: answer their
    /// CORS preflights and mark the answers readable by them (repeatable, or comma-separated;
    /// none by default).
    #[arg(long, env = "WARD_CORS_ORIGIN", value_name = "ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    cors_origin: Vec<String>,
    /// Do not serve the chat page at `/`.
    #[arg(long, env = "WARD_NO_UI")]
    no_ui: bool,
    /// A TOML file of these settings (`port = 8443`, `api-keys = "/etc/ward/keys.toml"`, …);
    /// flags and WARD_* variables override it.
    #[arg(long, env = "WARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.max_queue > 0, "--max-queue must be at least 1");
    anyhow::ensure!(a.max_body > 0, "--max-body must be at least 1");
    crate::set_threads(a.threads);
    let resolved = match a.model.is_empty() {
        true => vec![resolve_model(None)?],
        false => a
            .model
            .iter()
            .map(|m| resolve_model(Some(m)))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mut resolved = resolved;
    if !a.checkpoint.lora.is_empty() {
        anyhow::ensure!(
            resolved.len() == 1,
            "--lora merges adapters into one model directory: give one --model"
        );
        resolved[0].name = a.checkpoint.model_name(&resolved[0].name);
    }
    for (i, r) in resolved.iter().enumerate() {
        anyhow::ensure!(
            !resolved[..i].iter().any(|o| o.name == r.name),
            "--model {} is given twice",
            r.name
        );
    }
    let keys = a.api_keys.as_deref().map(Keys::load).transpose()?;
    let audit = a
        .audit_log
        .as_deref()
        .map(|p| audit_log(&a, p))
        .transpose()?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(ward_server::tls::acceptor(cert, key)?),
        _ => None,
    };
    if a.audit_include_text {
        anyhow::ensure!(audit.is_some(), "--audit-include-text needs --audit-log");
        tracing::warn!("the audit log will hold prompt and output text (--audit-include-text)");
    }
    let config = ServerConfig {
        max_body_bytes: a.max_body,
        header_timeout: Duration::from_secs(a.header_timeout.max(1)),
        body_timeout: Duration::from_secs(a.body_timeout.max(1)),
        shutdown_timeout: Duration::from_secs(a.shutdown_timeout),
        request_timeout: (a.request_timeout > 0).then(|| Duration::from_secs(a.request_timeout)),
        max_connections: a
            .max_connections
            .unwrap_or(ServerConfig::default().max_connections),
        max_connections_per_address: a.max_connections_per_address,
        cors_origins: a.cors_origin.clone(),
        ui: !a.no_ui,
        ..ServerConfig::default()
    };
    let engine_config = EngineConfig {
        max_queue: a.max_queue,
        kv_cache_bytes: a.kv_cache_mb << 20,
        max_batch_tokens: a.max_batch_tokens,
        max_prefill_tokens: a.max_prefill_tokens,
        max_running: a.max_running,
    };
    // The model's maths runs on its own threads; two are plenty for HTTP.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let listener = TcpListener::bind((a.host.as_str(), a.port))
            .await
            .with_context(|| format!("binding {}:{}", a.host, a.port))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && keys.is_none() {
            tracing::warn!(
                %addr,
                "LISTENING BEYOND THIS MACHINE WITH NO API KEYS: anyone who can reach this \
                 port can use the model. Give --api-keys, or put Ward behind an \
                 authenticating proxy"
            );
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let services = keys.as_ref().map_or(0, Keys::len);
        let app = App::with_access(config, keys, audit);
        let names: Vec<String> = resolved.iter().map(|r| r.name.clone()).collect();
        let name = names.join(", ");
        tracing::info!(model = %name, %url, "hashing and loading the model; /health answers meanwhile");
        let strict = a.strict_models;
        let trust_control_tokens = a.allow_control_tokens;
        if trust_control_tokens {
            tracing::warn!("callers' text may contain control tokens (--allow-control-tokens)");
        }
        let reasoning_format = a
            .reasoning_format
            .as_deref()
            .map(ThinkingFormat::parse_declaration)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--reasoning-format: {e}"))?;
        let device = crate::run::device(a.gpu);
        let checkpoint = a.checkpoint.clone();
        let embedder_config = EmbedderConfig {
            max_queue: a.max_queue,
            max_batch_tokens: a.max_prefill_tokens,
            trust_control_tokens,
        };
        let load = tokio::task::spawn_blocking(move || {
            let mut loaded = Loaded::default();
            for resolved in resolved {
                let sha256 = verify_model(&resolved, strict)?;
                let path = &resolved.path;
                let loading = || format!("loading {}", path.display());
                if is_embedding_model(path).with_context(loading)? {
                    let e = EmbedderHandle::load(path, &resolved.name, embedder_config)
                        .with_context(loading)?;
                    loaded.models.push(json!({"model": resolved.name, "model_sha256": sha256}));
                    loaded.embedders.push(Arc::new(e));
                    continue;
                }
                anyhow::ensure!(
                    loaded.engine.is_none(),
                    "{} and another generative model: a server runs one generative model (and \
                     any number of embedding models); start a second `ward serve` for it",
                    resolved.name
                );
                // The chat template comes with the model file: it runs in worker processes of
                // this binary, where a hostile one can only fail its own request.
                let worker = std::env::current_exe().context("finding the ward binary")?;
                let mut lm = LoadedModel::load_with(
                    path,
                    resolved.template_override.as_deref(),
                    device,
                    Some(&worker),
                    &checkpoint.options(),
                )
                .with_context(loading)?;
                lm.trust_control_tokens = trust_control_tokens;
                // The operator's word, else the registry entry's (checked when it was read).
                let declared = reasoning_format.or_else(|| {
                    resolved.entry.as_ref().and_then(|e| e.reasoning().ok().flatten())
                });
                if let (Some(format), Some(template)) = (declared, lm.template.as_mut()) {
                    template.set_reasoning(format);
                }
                let engine = EngineHandle::start(lm, &resolved.name, engine_config)
                    .context("starting the engine")?;
                let mut entry = json!({"model": resolved.name, "model_sha256": sha256});
                if !checkpoint.lora.is_empty() {
                    // The base's manifest hash above, each adapter's beside it.
                    let adapters = checkpoint
                        .lora
                        .iter()
                        .map(|(dir, scale)| {
                            let sha256 = model_sha256(dir)
                                .with_context(|| format!("reading {}", dir.display()))?;
                            tracing::info!(adapter = %dir.display(), %sha256, scale, "LoRA adapter merged");
                            anyhow::Ok(json!({"adapter": ward_models::hf::dir_name(dir), "sha256": sha256, "scale": scale}))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    entry["adapters"] = json!(adapters);
                }
                loaded.models.insert(0, entry);
                loaded.engine = Some((engine, sha256));
            }
            anyhow::Ok(loaded)
        });
        let mut server = tokio::spawn(ward_server::serve(listener, app.clone(), tls, stop_signal()));
        let loaded = tokio::select! {
            loaded = load => match loaded? {
                Ok(loaded) => loaded,
                Err(e) => {
                    app.audit_event("refused", json!({"model": name, "error": format!("{e:#}")}));
                    app.close_audit();
                    return Err(e);
                }
            },
            _ = &mut server => {
                app.close_audit();
                eprintln!("ward: stopped before the model was loaded");
                return Ok(());
            }
        };
        // The generative model (or the first) under the names every entry had before, and all
        // of them under `models`.
        let first = &loaded.models[0];
        app.audit_event(
            "start",
            json!({
                "model": first["model"],
                "model_sha256": first["model_sha256"],
                "models": loaded.models,
                "version": env!("CARGO_PKG_VERSION"),
                "address": addr.to_string(),
                "services": services,
            }),
        );
        if !loaded.embedders.is_empty() {
            app.set_embedders(loaded.embedders);
        }
        if let Some((engine, sha256)) = loaded.engine {
            app.set_engine(Arc::new(engine), sha256);
        }
        // Scripts and tests wait for this line.
        eprintln!("ward: serving {name} at {url}/v1 (ready)");
        server.await?;
        app.audit_event("stop", json!({"in_flight": app.requests_in_flight()}));
        app.close_audit();
        eprintln!("ward: stopped");
        anyhow::Ok(())
    });
    // Do not wait for a model load or generation still running on a blocking thread.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// What `serve` loaded: at most one generative engine (with its file's sha256), the embedding
/// models, and each model's name and sha256 for the audit log (the generative one first).
#[derive(Default)]
struct Loaded {
    engine: Option<(EngineHandle, String)>,
    embedders: Vec<Arc<dyn Embedder>>,
    models: Vec<serde_json::Value>,
}

/// Whether the GGUF at `path` holds an embedding model (BERT, or a decoder with pooling).
fn is_embedding_model(path: &std::path::Path) -> anyhow::Result<bool> {
    if ward_models::hf::HfModel::is_checkpoint(path) {
        return Ok(false); // checkpoints of generative architectures only, so far
    }
    let gguf = ward_models::gguf::GgufFile::open(path)?;
    Ok(ward_models::arch::is_embedding_model(&gguf)?)
}

fn audit_log(a: &ServeArgs, path: &std::path::Path) -> anyhow::Result<AuditLog> {
    let mb = |n: u64| n.saturating_mul(1 << 20);
    let options = AuditOptions {
        max_file_bytes: mb(a.audit_max_mb.max(1)),
        max_total_bytes: a.audit_max_total_mb.map(mb),
        retain: a.audit_retain,
        include_text: a.audit_include_text,
        key: a.audit_key.clone(),
        checkpoints: a.audit_checkpoints.clone(),
        checkpoint_every: Duration::from_secs(a.audit_checkpoint_secs.max(1)),
        ..AuditOptions::new(path)
    };
    if let Some(total) = options.max_total_bytes {
        anyhow::ensure!(
            total >= 2 * options.max_file_bytes,
            "--audit-max-total-mb must be at least twice --audit-max-mb (a full file and the next)"
        );
    }
    if a.audit_key.is_none() {
        tracing::warn!(
            "the audit log is not keyed (--audit-key): its chain shows accidents, but anyone who \
             can write the file can rewrite it undetected, and its prompt and output hashes are \
             plain sha256, so anyone who can read it can confirm a guessed prompt"
        );
    }
    AuditLog::open(options).with_context(|| format!("opening the audit log {}", path.display()))
}

/// The model file's sha256, checked against the registry's pin (refused on a mismatch, and
/// when unpinned under `--strict-models`).
fn verify_model(
    resolved: &ward_models::registry::Resolved,
    strict: bool,
) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    let sha256 = model_sha256(&resolved.path)
        .with_context(|| format!("reading {}", resolved.path.display()))?;
    let registry = Registry::find_dir().and_then(|d| Registry::load(&d)).ok();
    let pinned = check_pin(resolved, &sha256, registry.as_ref(), strict)?;
    match pinned {
        Some(entry) => {
            tracing::info!(%sha256, entry, ms = started.elapsed().as_millis() as u64, "model file matches its pinned sha256")
        }
        None => {
            tracing::warn!(%sha256, "model file is not pinned in the registry (--strict-models would refuse it)")
        }
    }
    Ok(sha256)
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn parse_origin(origin: &str) -> Result<String, String> {
    ward_server::check_origin(origin).map(|()| origin.to_string())
}
