//! `ward serve`: the OpenAI-compatible API over one model. Binds first (so a taken port fails
//! at once and `/health` answers during a long load), loads the model, prints the URL when it
//! is ready, and stops cleanly on Ctrl-C or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use ward_engine::{EngineConfig, EngineHandle};
use ward_models::registry::resolve_model;
use ward_models::LoadedModel;
use ward_server::{App, ServerConfig};

#[derive(Args)]
pub struct ServeArgs {
    /// Registry name or path to a .gguf file (default: the registry's default model).
    #[arg(long)]
    model: Option<String>,
    /// Address to listen on. The default keeps Ward reachable from this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one; the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Threads for the model's maths (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
    /// Requests that may wait for a place in the batch before new ones get 429.
    #[arg(long, default_value_t = EngineConfig::default().max_queue)]
    max_queue: usize,
    /// Memory for the KV cache of all sequences together, in MiB. It bounds the context the
    /// server offers (a single sequence must fit) and how many long sequences run at once.
    #[arg(long, default_value_t = EngineConfig::default().kv_cache_bytes >> 20)]
    kv_cache_mb: usize,
    /// Tokens in one forward pass while sequences are generating: each one's next token plus
    /// chunks of the prompts being read. Smaller keeps their token rate steadier while a long
    /// prompt is read; larger reads prompts faster.
    #[arg(long, default_value_t = EngineConfig::default().max_batch_tokens)]
    max_batch_tokens: usize,
    /// Tokens in one forward pass when no sequence is generating (prompts only).
    #[arg(long, default_value_t = EngineConfig::default().max_prefill_tokens)]
    max_prefill_tokens: usize,
    /// Sequences generating at once; more wait in the queue.
    #[arg(long, default_value_t = EngineConfig::default().max_running)]
    max_running: usize,
    /// Seconds a generation request may take before it is ended with a 504 (0: no limit).
    #[arg(long, default_value_t = 600)]
    request_timeout: u64,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = ServerConfig::default().max_body_bytes)]
    max_body: usize,
    /// Seconds a client has to send its request headers; also the idle limit of a kept-alive
    /// connection.
    #[arg(long, default_value_t = 30)]
    header_timeout: u64,
    /// Seconds a client has to send its request body.
    #[arg(long, default_value_t = 60)]
    body_timeout: u64,
    /// Seconds requests in flight may run on after a stop signal.
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
}

pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.max_queue > 0, "--max-queue must be at least 1");
    anyhow::ensure!(a.max_body > 0, "--max-body must be at least 1");
    crate::set_threads(a.threads);
    let resolved = resolve_model(a.model.as_deref())?;
    let config = ServerConfig {
        max_body_bytes: a.max_body,
        header_timeout: Duration::from_secs(a.header_timeout.max(1)),
        body_timeout: Duration::from_secs(a.body_timeout.max(1)),
        shutdown_timeout: Duration::from_secs(a.shutdown_timeout),
        request_timeout: (a.request_timeout > 0).then(|| Duration::from_secs(a.request_timeout)),
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
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "listening beyond this machine with no API keys: anyone who can reach this \
                 port can use the model (put Ward behind an authenticating proxy)"
            );
        }
        let url = format!("http://{addr}");
        let app = App::new(config.clone());
        tracing::info!(model = %resolved.name, %url, "loading model; /health answers meanwhile");
        let name = resolved.name.clone();
        let load = tokio::task::spawn_blocking(move || {
            let lm = LoadedModel::load(&resolved.path, resolved.template_override.as_deref())
                .with_context(|| format!("loading {}", resolved.path.display()))?;
            EngineHandle::start(lm, &resolved.name, engine_config).context("starting the engine")
        });
        let server_app = app.clone();
        let mut server = tokio::spawn(async move {
            ward_server::serve(
                listener,
                ward_server::router(server_app),
                &config,
                stop_signal(),
            )
            .await
        });
        let engine = tokio::select! {
            loaded = load => loaded??,
            _ = &mut server => {
                eprintln!("ward: stopped before the model was loaded");
                return Ok(());
            }
        };
        app.set_engine(Arc::new(engine));
        // Scripts and tests wait for this line.
        eprintln!("ward: serving {name} at {url}/v1 (ready)");
        server.await?;
        eprintln!("ward: stopped");
        anyhow::Ok(())
    });
    // Do not wait for a model load or generation still running on a blocking thread.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
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
