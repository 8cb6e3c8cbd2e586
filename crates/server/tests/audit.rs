//! The audit log through the server, against the mock engine: answers wait for their entries,
//! a log that cannot be written turns requests and /ready to 503 until it resumes, requests cut
//! at shutdown are told and audited, and floods of refused requests are limited and counted.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use ward_server::{
    router, sha256_hex, App, AuditLog, AuditOptions, ClientAddr, Keys, ServerConfig,
};

fn temp_log(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ward-audit-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.log")
}

fn entries(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn served(
    opts: AuditOptions,
    engine: MockEngine,
    keys: Option<Keys>,
) -> (Arc<App>, Arc<MockEngine>) {
    let app = App::with_access(
        ServerConfig::default(),
        keys,
        Some(AuditLog::open(opts).unwrap()),
    );
    let engine = Arc::new(engine);
    app.set_engine(engine.clone(), MOCK_SHA256.into());
    (app, engine)
}

fn post(path: &str, body: String) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

async fn get(app: &Arc<App>, path: &str) -> (StatusCode, Value) {
    let r = Request::builder().uri(path).body(Body::empty()).unwrap();
    let (status, body, _) = send_request(router(app.clone()), r).await;
    (status, body)
}

/// The response's head, and its body read to the end.
async fn whole(app: &Arc<App>, request: Request<Body>) -> (StatusCode, String) {
    let response = router(app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn an_answer_ends_only_once_its_entry_is_synced() {
    let path = temp_log("durable");
    let (app, _) = served(
        AuditOptions::new(&path),
        MockEngine::new(vec!["Hel", "lo"]),
        None,
    );
    for stream in [false, true] {
        let request = post("/v1/chat/completions", chat_body(json!({"stream": stream})));
        let response = router(app.clone()).oneshot(request).await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(!stream || body.ends_with(b"data: [DONE]\n\n"));
        // Without closing the log: the entry is on disk by the time the answer has ended.
        let found = entries(&path)
            .into_iter()
            .find(|e| e["request_id"] == id.as_str());
        assert_eq!(
            found.expect("no entry yet")["outcome"],
            "ok",
            "stream: {stream}"
        );
    }
}

#[tokio::test]
async fn a_log_that_cannot_be_written_refuses_requests_until_it_resumes() {
    let path = temp_log("budget");
    let opts = AuditOptions {
        max_file_bytes: 4096,
        max_total_bytes: Some(12 * 1024),
        ..AuditOptions::new(&path)
    };
    let engine = MockEngine::new(vec!["Hel", "lo"]);
    engine.hold.store(true, Ordering::SeqCst);
    let (app, engine) = served(opts, engine, None);
    // A stream admitted while the log works, held open while it fills up.
    let stream = {
        let response = router(app.clone())
            .oneshot(post(
                "/v1/chat/completions",
                chat_body(json!({"stream": true})),
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        tokio::spawn(async move {
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        })
    };
    engine.hold.store(false, Ordering::SeqCst);
    let mut refused = None;
    for _ in 0..200 {
        let (status, body) = whole(
            &app,
            post(
                "/v1/completions",
                json!({"model": "mock-model", "prompt": "x".repeat(400)}).to_string(),
            ),
        )
        .await;
        if status != StatusCode::OK {
            refused = Some((status, body));
            break;
        }
    }
    // The request whose entry could not be written got 503, not its answer.
    let (status, body) = refused.expect("the budget never bit");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"code\":\"audit_unavailable\""), "{body}");
    assert!(!body.contains("choices"), "{body}");
    let (status, body) = get(&app, "/ready").await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("audit_unavailable"))
    );
    assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
    let (status, body, headers) = send(
        router(app.clone()),
        "POST",
        "/v1/chat/completions",
        &chat_body(json!({})),
    )
    .await;
    assert_eq!(
        error_of(status, &body, StatusCode::SERVICE_UNAVAILABLE)["code"],
        "audit_unavailable"
    );
    assert!(header(&headers, "retry-after").is_some());
    let metrics = get(&app, "/metrics").await.1;
    let metrics = metrics.as_str().unwrap();
    for line in ["ward_audit_available 0", "ward_ready 0"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    assert!(
        !metrics.contains("ward_audit_write_failures_total 0"),
        "{metrics}"
    );
    // The held stream ends now: with an error instead of [DONE].
    engine.finish_held();
    let text = stream.await.unwrap();
    assert!(text.contains("\"code\":\"audit_unavailable\""), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    // Space is made (the oldest file archived): service resumes by itself.
    std::fs::rename(ward_path(&path, 1), path.with_file_name("archive.1")).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while get(&app, "/ready").await.0 != StatusCode::OK {
        assert!(Instant::now() < until, "did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = whole(&app, post("/v1/chat/completions", chat_body(json!({})))).await;
    assert_eq!(status, StatusCode::OK);
    app.close_audit();
    let resumed = entries(&path)
        .into_iter()
        .find(|e| e["event"] == "audit_resumed")
        .unwrap();
    assert!(resumed["unwritten"].as_u64().unwrap() >= 1, "{resumed}");
}

fn ward_path(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

#[tokio::test]
async fn requests_cut_at_shutdown_are_told_and_audited() {
    let path = temp_log("cut");
    let engine = MockEngine::new(vec!["Hel", "lo"]);
    engine.hold.store(true, Ordering::SeqCst);
    let (app, _) = served(AuditOptions::new(&path), engine, None);
    let response = router(app.clone())
        .oneshot(post(
            "/v1/chat/completions",
            chat_body(json!({"stream": true})),
        ))
        .await
        .unwrap();
    let mut body = response.into_body().into_data_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    let plain = {
        let app = app.clone();
        tokio::spawn(async move {
            whole(&app, post("/v1/chat/completions", chat_body(json!({})))).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.stop_accepting();
    app.cut_requests();
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(
        rest.contains("data: {\"error\":{") && rest.contains("\"code\":\"shutdown\""),
        "{rest}"
    );
    let (status, text) = plain.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("\"code\":\"shutdown\""), "{text}");
    app.close_audit();
    let cut: Vec<Value> = entries(&path)
        .into_iter()
        .filter(|e| e["outcome"] == "shutdown")
        .collect();
    assert_eq!(cut.len(), 2, "{cut:?}");
    assert_eq!(
        (
            cut[0]["status"].as_u64(),
            cut[0]["params"]["stream"].as_bool()
        ),
        (Some(200), Some(true))
    );
    assert_eq!(cut[1]["status"], 503);
}

#[tokio::test]
async fn a_flood_of_refused_requests_is_limited_per_address_and_counted() {
    let path = temp_log("flood");
    let key = "ward-flood-test-key";
    let keys = Keys::parse(&format!(
        "[[service]]\nname = \"lab\"\nkey_sha256 = \"{}\"\nmodels = [\"*\"]\n",
        sha256_hex(key.as_bytes())
    ))
    .unwrap();
    let (app, _) = served(
        AuditOptions::new(&path),
        MockEngine::new(vec!["ok"]),
        Some(keys),
    );
    let from = |bearer: &str, addr: &str| {
        let mut r = Request::builder()
            .uri("/v1/models")
            .header("authorization", format!("Bearer {bearer}"))
            .body(Body::empty())
            .unwrap();
        r.extensions_mut().insert(ClientAddr(addr.parse().unwrap()));
        r
    };
    let mut statuses = Vec::new();
    for _ in 0..500 {
        statuses.push(send_request(router(app.clone()), from("wrong", "10.1.2.3")).await);
    }
    let unauthorized = statuses
        .iter()
        .filter(|s| s.0 == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(unauthorized, 20);
    let (status, body, headers) = statuses.last().unwrap();
    assert_eq!(
        error_of(*status, body, StatusCode::TOO_MANY_REQUESTS)["code"],
        "too_many_refusals"
    );
    assert!(header(headers, "retry-after").is_some());
    // A valid key from the same address (say, behind the same proxy) is still served, and
    // another address has its own allowance.
    assert_eq!(
        send_request(router(app.clone()), from(key, "10.1.2.3"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send_request(router(app.clone()), from("wrong", "10.9.9.9"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    app.audit_event("stop", json!({}));
    app.close_audit();
    let log = entries(&path);
    assert!(log.len() < 30, "{} entries for 502 requests", log.len());
    let one_each = log.iter().filter(|e| e["status"] == 401).count();
    assert_eq!(one_each, 21);
    let counted = log
        .iter()
        .find(|e| e["event"] == "refusals")
        .expect("no aggregate");
    assert_eq!(
        counted["refused"],
        json!([{"address": "10.1.2.3", "code": "invalid_api_key", "status": 401, "count": 480}])
    );
    assert_eq!(log.last().unwrap()["event"], "stop");
}
