//! `ward bench serve`: a load generator for any OpenAI-compatible server (Ward, llama.cpp's
//! `llama-server`, vLLM). For each concurrency level it runs that many streams, each sending
//! streamed `/v1/completions` requests one after another (a closed loop), and reports aggregate
//! generated tokens per second, time to first token and inter-token latency percentiles, and
//! failures. Every request has its own prompt (so no server gains from a prefix cache) and
//! asks for exactly `--max-tokens` tokens (`ignore_eos`). Exits non-zero if any request
//! failed.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

#[derive(Args)]
pub struct LoadArgs {
    /// The server's address: host:port, or http://host:port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// The model name to put in requests.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    /// Concurrency levels to run, one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    streams: Vec<usize>,
    /// Requests each stream sends at each level.
    #[arg(long, default_value_t = 2)]
    requests: usize,
    /// Words in each prompt (about as many tokens).
    #[arg(long, default_value_t = 128)]
    prompt_words: usize,
    /// Tokens generated per request.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Label printed on each line (e.g. which server this is).
    #[arg(long, default_value = "server")]
    label: String,
    /// Print one JSON line per level instead of text.
    #[arg(long)]
    json: bool,
}

/// One request's timings.
struct Sample {
    ttft: Duration,
    /// Gaps between consecutive pieces of streamed text.
    gaps: Vec<Duration>,
    tokens: usize,
}

pub fn load(a: LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.requests > 0 && a.max_tokens > 0 && a.streams.iter().all(|&s| s > 0),
        "--streams, --requests and --max-tokens must be > 0"
    );
    let addr = host_port(&a.addr)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (failed, sent) = runtime.block_on(async {
        let (mut failed, mut sent) = (0, 0);
        for &streams in &a.streams {
            let (f, s) = level(&a, &addr, streams).await?;
            (failed, sent) = (failed + f, sent + s);
        }
        anyhow::Ok((failed, sent))
    })?;
    anyhow::ensure!(failed == 0, "{failed} of {sent} requests failed");
    Ok(())
}

/// `host:port` from what `--addr` was given: `host:port` or `http://host:port[/]`.
fn host_port(addr: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !addr.starts_with("https://"),
        "--addr {addr}: the load generator speaks plain HTTP only; give a plain-HTTP listener's \
         host:port"
    );
    let rest = addr.strip_prefix("http://").unwrap_or(addr);
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = host_port
        .rsplit_once(':')
        .with_context(|| format!("--addr {addr}: expected host:port or http://host:port"))?;
    anyhow::ensure!(
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok(),
        "--addr {addr}: expected host:port or http://host:port"
    );
    Ok(host_port.to_string())
}

/// Run one concurrency level and print its line; returns the requests failed and sent.
async fn level(a: &LoadArgs, addr: &str, streams: usize) -> anyhow::Result<(usize, usize)> {
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|s| {
            let bodies: Vec<String> = (0..a.requests)
                .map(|r| body(a, streams, s * a.requests + r))
                .collect();
            let addr = addr.to_string();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for b in bodies {
                    out.push(request(&addr, b).await);
                }
                out
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        for r in t.await? {
            match r {
                Ok(s) => samples.push(s),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let tokens: usize = samples.iter().map(|s| s.tokens).sum();
    let mut ttft: Vec<Duration> = samples.iter().map(|s| s.ttft).collect();
    let mut itl: Vec<Duration> = samples.iter().flat_map(|s| s.gaps.clone()).collect();
    let tok_s = tokens as f64 / wall;
    // None where nothing was measured (every request failed; one token each, so no gaps).
    let (ttft, itl) = (percentiles(&mut ttft), percentiles(&mut itl));
    // The rate with every stream decoding at the median inter-token latency: the steady
    // decode throughput, free of the time spent reading prompts.
    let decode_tok_s = itl
        .filter(|p| p[0] > 0.0)
        .map(|p| streams as f64 * 1e3 / p[0]);
    let sent = samples.len() + failures.len();
    if a.json {
        println!(
            "{}",
            json!({"label": a.label, "streams": streams, "requests": sent,
                   "failed": failures.len(), "tokens": tokens, "seconds": wall, "tok_s": tok_s, "decode_tok_s": decode_tok_s,
                   "ttft_ms": ttft, "itl_ms": itl})
        );
    } else {
        let ms = |p: Option<[f64; 3]>, digits: usize| {
            p.map_or("n/a".into(), |p| {
                format!(
                    "p50 {:.digits$} p90 {:.digits$} p99 {:.digits$}",
                    p[0], p[1], p[2]
                )
            })
        };
        let decode = decode_tok_s.map_or("n/a".into(), |r| format!("{r:6.1}"));
        println!(
            "{:>10} {streams:>3} streams: {tok_s:6.1} tok/s ({tokens} tokens in {wall:.1} s), decode \
             {decode} tok/s, {} failed | TTFT ms {} | ITL ms {}",
            a.label,
            failures.len(),
            ms(ttft, 0),
            ms(itl, 1)
        );
    }
    if let Some(f) = failures.first() {
        eprintln!("first failure: {f}");
    }
    Ok((failures.len(), sent))
}

/// A prompt of ordinary clinical words, made unique by its number.
fn body(a: &LoadArgs, streams: usize, n: usize) -> String {
    const WORDS: [&str; 16] = [
        "patient",
        "reports",
        "mild",
        "chest",
        "pain",
        "after",
        "exercise",
        "with",
        "no",
        "fever",
        "history",
        "of",
        "hypertension",
        "and",
        "stable",
        "vitals",
    ];
    let mut prompt = format!("Case {streams}-{n}:");
    for i in 0..a.prompt_words {
        prompt.push(' ');
        prompt.push_str(WORDS[(i * 7 + n * 3) % WORDS.len()]);
    }
    json!({"model": a.model, "prompt": prompt, "max_tokens": a.max_tokens, "temperature": 0,
           "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}})
    .to_string()
}

async fn request(addr: &str, body: String) -> anyhow::Result<Sample> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::post("/v1/completions")
        .header("host", addr)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let t0 = Instant::now();
    let response = sender.send_request(req).await?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.collect().await?.to_bytes();
        anyhow::bail!("HTTP {status}: {}", String::from_utf8_lossy(&text));
    }
    let (mut pending, mut times, mut usage) = (Vec::new(), Vec::new(), None);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        // Server-sent events: one `data: {json}` line each, whole lines only.
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Some(payload) = line.strip_prefix(b"data: ") else {
                continue;
            };
            if payload.trim_ascii() == b"[DONE]" {
                continue;
            }
            let event: Value =
                serde_json::from_slice(payload).context("an event that is not JSON")?;
            if event.get("error").is_some() {
                anyhow::bail!("error event: {event}");
            }
            let text = event["choices"][0]["text"].as_str().unwrap_or("");
            if !text.is_empty() {
                times.push(Instant::now());
            }
            if let Some(n) = event["usage"]["completion_tokens"].as_u64() {
                usage = Some(n as usize);
            }
        }
    }
    let first = *times.first().context("no text streamed")?;
    Ok(Sample {
        ttft: first - t0,
        gaps: times.windows(2).map(|w| w[1] - w[0]).collect(),
        // A server that reports no usage: one streamed piece per token (llama.cpp's way).
        tokens: usage.unwrap_or(times.len()),
    })
}

/// p50, p90 and p99 in milliseconds (None when there are none).
fn percentiles(v: &mut [Duration]) -> Option<[f64; 3]> {
    v.sort_unstable();
    let last = v.len().checked_sub(1)?;
    Some(
        [0.50, 0.90, 0.99]
            .map(|q| v[((v.len() as f64 * q) as usize).min(last)].as_secs_f64() * 1e3),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_or_without_the_scheme() {
        assert_eq!(host_port("127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(
            host_port("http://localhost:8181/").unwrap(),
            "localhost:8181"
        );
        assert_eq!(host_port("http://[::1]:80").unwrap(), "[::1]:80");
        for bad in [
            "https://x:443",
            "localhost",
            "http://x:80/v1",
            "x:http",
            ":80",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_measurements_give_no_percentiles() {
        assert_eq!(percentiles(&mut []), None);
        let mut one = [Duration::from_millis(5)];
        assert_eq!(percentiles(&mut one), Some([5.0; 3]));
    }
}
