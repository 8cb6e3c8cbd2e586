//! API keys, rates, the audit log, metrics and the graceful stop, against the mock engine.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use ward_server::{router, sha256_hex, App, AuditLog, AuditOptions, Keys, ServerConfig};

const LAB_KEY: &str = "ward-lab-key";
const BILLING_KEY: &str = "ward-billing-key";

/// Two services: `lab` may use the mock model (with the given extra limits), `billing` only
/// a model that is not served.
fn keys(lab_limits: &str) -> Keys {
    Keys::parse(&format!(
        "[[service]]\nname = \"lab\"\nkey_sha256 = \"{}\"\nmodels = [\"mock-model\"]\n{lab_limits}\n\
         [[service]]\nname = \"billing\"\nkey_sha256 = \"{}\"\nmodels = [\"other-model\"]\n",
        sha256_hex(LAB_KEY.as_bytes()),
        sha256_hex(BILLING_KEY.as_bytes()),
    ))
    .unwrap()
}

fn served(keys: Option<Keys>, audit: Option<AuditLog>) -> (Arc<App>, Arc<MockEngine>) {
    let app = App::with_access(ServerConfig::default(), keys, audit);
    let engine = Arc::new(MockEngine::new(vec!["Hel", "lo"]));
    app.set_engine(engine.clone(), MOCK_SHA256.into());
    (app, engine)
}

async fn call(
    app: &Arc<App>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, Value, Vec<(String, String)>) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request.body(Body::from(body.to_string())).unwrap();
    send_request(router(app.clone()), request).await
}

#[tokio::test]
async fn keys_decide_who_may_call_and_which_model() {
    let (app, engine) = served(Some(keys("")), None);
    let chat = chat_body(json!({}));
    for key in [None, Some("wrong"), Some("")] {
        let (status, body, _) = call(&app, "POST", "/v1/chat/completions", key, &chat).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    let (status, body, _) = call(&app, "POST", "/v1/chat/completions", Some(LAB_KEY), &chat).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The prefix cache is partitioned by service.
    assert!(engine.seen.lock().unwrap()[0]
        .cache_salt
        .starts_with("lab\0"));

    let (status, body, _) = call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(BILLING_KEY),
        &chat,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "model_not_allowed");
    let (_, body, _) = call(&app, "GET", "/v1/models", Some(BILLING_KEY), "").await;
    assert_eq!(body["data"], json!([]));
    let (status, _, _) = call(
        &app,
        "POST",
        "/tokenize",
        Some(BILLING_KEY),
        r#"{"prompt": "x"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Probes answer anyone; everything else, metrics and unknown routes included, needs a key.
    for path in ["/health", "/ready"] {
        assert_eq!(call(&app, "GET", path, None, "").await.0, StatusCode::OK);
    }
    for path in ["/metrics", "/v1/models", "/no/such/route"] {
        assert_eq!(
            call(&app, "GET", path, None, "").await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_service_over_its_rates_gets_429_with_retry_after() {
    let (app, _) = served(Some(keys("requests_per_minute = 2")), None);
    for _ in 0..2 {
        assert_eq!(
            call(&app, "GET", "/v1/models", Some(LAB_KEY), "").await.0,
            StatusCode::OK
        );
    }
    let (status, body, headers) = call(&app, "GET", "/v1/models", Some(LAB_KEY), "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let wait: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((25..=31).contains(&wait), "{wait}");
    // Another service is not affected.
    assert_eq!(
        call(&app, "GET", "/v1/models", Some(BILLING_KEY), "")
            .await
            .0,
        StatusCode::OK
    );

    // Tokens: the mock's prompt is 5 tokens and its answer 2 (2 reserved), past a limit of
    // 6 a minute.
    let (app, _) = served(Some(keys("tokens_per_minute = 6")), None);
    let chat = chat_body(json!({"max_tokens": 2}));
    let (status, _, _) = call(&app, "POST", "/v1/chat/completions", Some(LAB_KEY), &chat).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, headers) =
        call(&app, "POST", "/v1/chat/completions", Some(LAB_KEY), &chat).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(header(&headers, "retry-after").is_some());
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_latency() {
    // An admin key: it sees every service's series.
    let (app, _) = served(Some(keys("admin = true")), None);
    let chat = chat_body(json!({}));
    call(&app, "POST", "/v1/chat/completions", Some(LAB_KEY), &chat).await;
    call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(LAB_KEY),
        &chat_body(json!({"stream": true})),
    )
    .await;
    call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(BILLING_KEY),
        &chat,
    )
    .await;
    call(&app, "POST", "/v1/chat/completions", None, &chat).await;
    let (status, body, headers) = call(&app, "GET", "/metrics", Some(LAB_KEY), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = body.as_str().unwrap();
    for line in [
        "ward_requests_total{service=\"lab\",model=\"mock-model\",route=\"/v1/chat/completions\",status=\"200\"} 2",
        "ward_requests_total{service=\"billing\",model=\"\",route=\"/v1/chat/completions\",status=\"403\"} 1",
        "ward_requests_total{service=\"anonymous\",model=\"\",route=\"/v1/chat/completions\",status=\"401\"} 1",
        "ward_prompt_tokens_total{service=\"lab\",model=\"mock-model\"} 10",
        "ward_generated_tokens_total{service=\"lab\",model=\"mock-model\"} 4",
        "ward_time_to_first_token_seconds_count{model=\"mock-model\"} 2",
        "ward_inter_token_latency_seconds_count{model=\"mock-model\"} 2",
        &format!("ward_model_info{{model=\"mock-model\",sha256=\"{MOCK_SHA256}\",kernels=\"scalar\"}} 1"),
        "ward_queue_depth 0",
        "ward_ready 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

fn temp_log(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ward-access-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.log")
}

#[tokio::test]
async fn the_audit_log_records_each_request_by_hash_only() {
    let path = temp_log("hash");
    let audit = AuditLog::open(AuditOptions::new(&path)).unwrap();
    let (app, _) = served(Some(keys("")), Some(audit));
    let canary = "CANARY-7f3a-patient-Jane-Roe";
    let messages = json!([{"role": "user", "content": canary}]);
    let body = json!({"model": "mock-model", "messages": messages, "seed": 7, "max_tokens": 9});
    let (status, _, headers) = call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(LAB_KEY),
        &body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = header(&headers, "x-request-id").unwrap().to_string();
    call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some("wrong"),
        &body.to_string(),
    )
    .await;
    let bad = json!({"model": "mock-model", "messages": messages, "temperature": canary});
    call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(LAB_KEY),
        &bad.to_string(),
    )
    .await;
    call(&app, "GET", "/health", None, "").await;
    app.close_audit();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("CANARY"), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "request")
        .collect();
    assert_eq!(lines.len(), 3, "probes are not audited: {text}");
    let ok = &lines[0];
    assert_eq!(ok["request_id"], id.as_str());
    assert_eq!(ok["service"], "lab");
    assert_eq!(ok["endpoint"], "/v1/chat/completions");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["model"], "mock-model");
    assert_eq!(ok["model_sha256"], MOCK_SHA256);
    assert_eq!(ok["params"]["seed"], 7);
    assert_eq!(ok["params"]["max_tokens"], 9);
    assert_eq!(
        (
            ok["prompt_tokens"].as_u64(),
            ok["completion_tokens"].as_u64()
        ),
        (Some(5), Some(2))
    );
    // The prompt's hash is of its compact JSON with sorted keys (as Python's json.dumps with
    // sort_keys writes it; the request sent `role` first); the output's of its text.
    let canonical = format!(r#"[{{"content":{},"role":"user"}}]"#, json!(canary));
    assert_eq!(ok["prompt_sha256"], sha256_hex(canonical.as_bytes()));
    assert_eq!(ok["output_sha256"], json!([sha256_hex(b"Hello")]));
    assert!(ok.get("prompt").is_none() && ok.get("output").is_none());
    assert_eq!(
        (lines[1]["status"].as_u64(), lines[1]["service"].clone()),
        (Some(401), Value::Null)
    );
    assert_eq!(
        (lines[2]["status"].as_u64(), lines[2]["outcome"].as_str()),
        (Some(400), Some("invalid_value"))
    );
    let report = ward_server::audit::verify(&path, None, None).unwrap();
    assert_eq!((report.entries, report.broken), (4, None));
}

/// With `--audit-key` the prompt and output hashes are keyed (under the key of the epoch the
/// entry is sealed in), so a guessed prompt cannot be confirmed by hashing it; the auditor's
/// `check` confirms the real one with the initial key.
#[tokio::test]
async fn a_keyed_audit_log_records_keyed_hashes_only() {
    use std::os::unix::fs::PermissionsExt;
    let path = temp_log("keyed");
    let secret = path.parent().unwrap().with_extension("secret");
    let _ = std::fs::remove_dir_all(&secret);
    std::fs::create_dir_all(&secret).unwrap();
    let key_file = secret.join("audit.key");
    std::fs::write(&key_file, ward_server::hex(&[0x42; 32])).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let audit = AuditLog::open(AuditOptions {
        key: Some(key_file),
        ..AuditOptions::new(&path)
    })
    .unwrap();
    let (app, _) = served(Some(keys("")), Some(audit));
    let messages = json!([{"role": "user", "content": "Is patient 4711 HIV positive?"}]);
    let body = json!({"model": "mock-model", "messages": messages, "max_tokens": 9});
    let (status, _, _) = call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(LAB_KEY),
        &body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    app.close_audit();

    let text = std::fs::read_to_string(&path).unwrap();
    let canonical = r#"[{"content":"Is patient 4711 HIV positive?","role":"user"}]"#;
    assert!(!text.contains(&sha256_hex(canonical.as_bytes())), "{text}");
    assert!(!text.contains(&sha256_hex(b"Hello")), "{text}");
    let entry: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["event"] == "request")
        .unwrap();
    assert!(entry.get("prompt_sha256").is_none() && entry.get("output_sha256").is_none());
    let k0 = ward_server::audit::SealKey::new([0x42; 32]);
    let k = k0.at_epoch(entry["epoch"].as_u64().unwrap()).unwrap();
    assert_eq!(
        entry["prompt_hmac"],
        ward_server::hex(&k.content_mac(canonical.as_bytes()))
    );
    assert_eq!(
        entry["output_hmac"],
        json!([ward_server::hex(&k.content_mac(b"Hello"))])
    );
    let seq = entry["seq"].as_u64().unwrap();
    let checked =
        ward_server::audit::check(&path, seq, Some(&k0), Some(&messages), Some("Hello")).unwrap();
    assert_eq!(
        (checked.seal_ok, checked.prompt, checked.output),
        (true, Some(true), Some(Some(0)))
    );
}

#[tokio::test]
async fn with_text_the_audit_log_holds_prompt_and_output() {
    let path = temp_log("text");
    let audit = AuditLog::open(AuditOptions {
        include_text: true,
        ..AuditOptions::new(&path)
    })
    .unwrap();
    let (app, _) = served(None, Some(audit));
    let stream = chat_body(json!({"stream": true}));
    call(&app, "POST", "/v1/chat/completions", None, &stream).await;
    app.close_audit();
    let text = std::fs::read_to_string(&path).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["output"], json!(["Hello"]));
    assert_eq!(line["prompt"][0]["content"], "hi");
    assert_eq!(line["outcome"], "ok");
}

#[tokio::test]
async fn stopping_turns_ready_and_new_requests_to_503() {
    let (app, _) = served(None, None);
    app.stop_accepting();
    let (status, body, _) = call(&app, "GET", "/ready", None, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body, headers) = call(
        &app,
        "POST",
        "/v1/chat/completions",
        None,
        &chat_body(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "shutting_down");
    assert!(header(&headers, "retry-after").is_some());
    assert_eq!(
        call(&app, "GET", "/health", None, "").await.0,
        StatusCode::OK
    );
    assert_eq!(app.requests_in_flight(), 0);
}
