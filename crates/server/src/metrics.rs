//! `GET /metrics`: Prometheus' text format, written by hand (a few counters and histograms do
//! not need a library). Labels are only ever service names from the key file, the served
//! model's name, route templates and status codes: never anything a client typed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use ward_engine::{ModelInfo, SchedulerLoad};

mod process;

/// Upper bounds (seconds) of the latency histograms' buckets.
const TTFT_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0,
];
const ITL_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
];
const DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (service, model, route, status) → count.
    requests: BTreeMap<(String, String, &'static str, u16), u64>,
    /// (service, model) → tokens.
    prompt_tokens: BTreeMap<(String, String), u64>,
    generated_tokens: BTreeMap<(String, String), u64>,
    ttft: BTreeMap<String, Histogram>,
    itl: BTreeMap<String, Histogram>,
    /// route → request duration.
    duration: BTreeMap<&'static str, Histogram>,
}

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

/// What one finished request adds to the counters.
pub struct Finished<'a> {
    pub service: &'a str,
    pub model: &'a str,
    pub route: &'static str,
    pub status: u16,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub duration: Duration,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn request_finished(&self, r: &Finished) {
        let mut m = self.lock();
        let who = (r.service.to_string(), label(r.model));
        *m.requests
            .entry((who.0.clone(), who.1.clone(), r.route, r.status))
            .or_default() += 1;
        if r.prompt_tokens > 0 || r.generated_tokens > 0 {
            *m.prompt_tokens.entry(who.clone()).or_default() += r.prompt_tokens as u64;
            *m.generated_tokens.entry(who).or_default() += r.generated_tokens as u64;
        }
        m.duration
            .entry(r.route)
            .or_insert_with(|| Histogram::new(&DURATION_BUCKETS))
            .observe(r.duration.as_secs_f64());
    }

    pub fn first_token(&self, model: &str, after: Duration) {
        let mut m = self.lock();
        m.ttft
            .entry(label(model))
            .or_insert_with(|| Histogram::new(&TTFT_BUCKETS))
            .observe(after.as_secs_f64());
    }

    pub fn next_token(&self, model: &str, after: Duration) {
        let mut m = self.lock();
        m.itl
            .entry(label(model))
            .or_insert_with(|| Histogram::new(&ITL_BUCKETS))
            .observe(after.as_secs_f64());
    }

    /// The text of `/metrics`; `engine` is the served model's name, file hash and scheduler
    /// state, once loaded. Series by calling service are shown only for `only_service` when
    /// given (a service sees its own traffic; an admin key, or a server without keys, all).
    pub fn render(
        &self,
        engine: Option<(&ModelInfo, &str, SchedulerLoad)>,
        ready: bool,
        only_service: Option<&str>,
    ) -> String {
        let shown = |service: &str| only_service.is_none_or(|s| s == service);
        let m = self.lock();
        let mut out = String::new();
        let w = &mut out;
        header(
            w,
            "ward_ready",
            "gauge",
            "1 when the model is loaded and the server is not stopping.",
        );
        let _ = writeln!(w, "ward_ready {}", u8::from(ready));
        header(
            w,
            "ward_requests_total",
            "counter",
            "Requests answered, by calling service, model, route and HTTP status.",
        );
        for ((service, model, route, status), n) in &m.requests {
            if !shown(service) {
                continue;
            }
            let _ = writeln!(
                w,
                "ward_requests_total{{service=\"{service}\",model=\"{model}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let token_counters = [
            (
                "ward_prompt_tokens_total",
                "Prompt tokens of generation requests.",
                &m.prompt_tokens,
            ),
            (
                "ward_generated_tokens_total",
                "Tokens generated.",
                &m.generated_tokens,
            ),
        ];
        for (name, help, by_service_model) in token_counters {
            header(w, name, "counter", help);
            for ((service, model), n) in by_service_model.iter().filter(|e| shown(&e.0 .0)) {
                let _ = writeln!(w, "{name}{{service=\"{service}\",model=\"{model}\"}} {n}");
            }
        }
        let histograms = [
            (
                "ward_time_to_first_token_seconds",
                "Time from a request's arrival to its first output text.",
                &m.ttft,
            ),
            (
                "ward_inter_token_latency_seconds",
                "Time between successive pieces of a request's output text.",
                &m.itl,
            ),
        ];
        for (name, help, by_model) in histograms {
            header(w, name, "histogram", help);
            for (model, h) in by_model {
                histogram(w, name, &format!("model=\"{model}\""), h);
            }
        }
        let name = "ward_request_duration_seconds";
        header(
            w,
            name,
            "histogram",
            "Time from a request's arrival to the end of its response.",
        );
        for (route, h) in &m.duration {
            histogram(w, name, &format!("route=\"{route}\""), h);
        }
        if let Some((info, sha256, load)) = engine {
            header(
                w,
                "ward_model_info",
                "gauge",
                "The model served, its file's sha256 and the kernels computing it (the CPU's \
                 kernel tier, or cuda).",
            );
            let (model, kernels) = (label(&info.id), label(&info.kernels));
            let _ = writeln!(
                w,
                "ward_model_info{{model=\"{model}\",sha256=\"{sha256}\",kernels=\"{kernels}\"}} 1"
            );
            let gauges = [
                (
                    "ward_queue_depth",
                    "Requests waiting for a place in the batch.",
                    load.waiting as f64,
                ),
                (
                    "ward_running_sequences",
                    "Sequences in the batch.",
                    load.running as f64,
                ),
                (
                    "ward_kv_cache_blocks_used",
                    "KV-cache blocks held by sequences or the prefix cache.",
                    load.kv_blocks_used as f64,
                ),
                (
                    "ward_kv_cache_blocks_capacity",
                    "KV-cache blocks in the pool.",
                    load.kv_blocks_total as f64,
                ),
                (
                    "ward_kv_cache_usage_ratio",
                    "Share of the KV-cache pool in use.",
                    ratio(load.kv_blocks_used as f64, load.kv_blocks_total as f64),
                ),
                (
                    "ward_prefix_cache_hit_ratio",
                    "Share of prompt blocks found in the prefix cache, since start.",
                    ratio(load.prefix_hits as f64, load.prefix_lookups as f64),
                ),
            ];
            for (name, help, v) in gauges {
                header(w, name, "gauge", help);
                let _ = writeln!(w, "{name} {v}");
            }
            let counters = [
                (
                    "ward_prefix_cache_hits_total",
                    "Prompt blocks found in the prefix cache.",
                    load.prefix_hits,
                ),
                (
                    "ward_prefix_cache_lookups_total",
                    "Prompt blocks looked up in the prefix cache.",
                    load.prefix_lookups,
                ),
                (
                    "ward_engine_steps_total",
                    "Batched forward passes.",
                    load.steps,
                ),
                (
                    "ward_preemptions_total",
                    "Sequences preempted for KV-cache space (recomputed later).",
                    load.preemptions,
                ),
            ];
            for (name, help, v) in counters {
                header(w, name, "counter", help);
                let _ = writeln!(w, "{name} {v}");
            }
        }
        process::render(w);
        out
    }
}

/// A label value as the text format needs it (a model's name comes from a file name).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn ratio(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        part / whole
    }
}

fn header(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(w: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0;
    for (bound, count) in h.bounds.iter().zip(&h.counts) {
        cumulative += count;
        let _ = writeln!(w, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(w, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(w, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(w, "{name}_count{{{labels}}} {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&ITL_BUCKETS);
        for v in [0.001, 0.015, 0.015, 9.0] {
            h.observe(v);
        }
        let mut out = String::new();
        histogram(&mut out, "x", "model=\"m\"", &h);
        assert!(
            out.contains("x_bucket{model=\"m\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{model=\"m\",le=\"0.02\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{model=\"m\",le=\"2.5\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{model=\"m\",le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("x_count{model=\"m\"} 4\n"), "{out}");
    }

    #[test]
    fn requests_are_counted_by_service_model_route_and_status() {
        let m = Metrics::default();
        for status in [200, 200, 429] {
            m.request_finished(&Finished {
                service: "lab",
                model: "m",
                route: "/v1/completions",
                status,
                prompt_tokens: 3,
                generated_tokens: 2,
                duration: Duration::from_millis(20),
            });
        }
        m.request_finished(&Finished {
            service: "billing",
            model: "m",
            route: "/v1/completions",
            status: 200,
            prompt_tokens: 3,
            generated_tokens: 2,
            duration: Duration::from_millis(20),
        });
        let own = m.render(None, false, Some("lab"));
        assert!(
            own.contains("service=\"lab\"") && !own.contains("billing"),
            "{own}"
        );
        let text = m.render(None, false, None);
        assert!(text.contains("service=\"billing\""), "{text}");
        assert!(text.contains("ward_requests_total{service=\"lab\",model=\"m\",route=\"/v1/completions\",status=\"200\"} 2\n"), "{text}");
        assert!(
            text.contains("ward_generated_tokens_total{service=\"lab\",model=\"m\"} 6\n"),
            "{text}"
        );
        assert!(text.contains("ward_ready 0\n"), "{text}");
    }
}
