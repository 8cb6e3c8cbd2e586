//! Requests shaped to hide from the audit log or to make the server echo or leak, against the
//! mock engine: each is answered as the README promises.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use ward_server::{router, sha256_hex, App, AuditLog, AuditOptions, Keys, ServerConfig};

fn temp_log(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ward-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.log")
}

fn audited(path: &std::path::Path) -> Arc<App> {
    let app = App::with_access(
        ServerConfig::default(),
        None,
        Some(AuditLog::open(AuditOptions::new(path)).unwrap()),
    );
    app.set_engine(
        Arc::new(MockEngine::new(vec!["Hel", "lo"])),
        MOCK_SHA256.into(),
    );
    app
}

/// Unknown top-level fields are ignored, but never at the audit's expense: a number out of
/// range or deep nesting in one cannot erase the prompt's hash from the entry.
#[tokio::test]
async fn unknown_fields_cannot_erase_the_prompt_hash() {
    let path = temp_log("unknown");
    let app = audited(&path);
    let messages = r#"[{"role":"user","content":"hi"}]"#;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let bodies = [
        format!(r#"{{"model":"mock-model","messages":{messages},"zz":1e999}}"#),
        format!(r#"{{"model":"mock-model","messages":{messages},"zz":{deep}}}"#),
        format!(r#"{{"zz":-1e400,"model":"mock-model","messages":{messages},"stream":true}}"#),
    ];
    for body in &bodies {
        let (status, reply, _) =
            send(router(app.clone()), "POST", "/v1/chat/completions", body).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
    app.close_audit();
    let want = sha256_hex(r#"[{"content":"hi","role":"user"}]"#.as_bytes());
    let text = std::fs::read_to_string(&path).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "request")
        .collect();
    assert_eq!(entries.len(), bodies.len());
    for entry in &entries {
        assert_eq!(entry["status"], 200);
        assert_eq!(entry["prompt_sha256"], want.as_str(), "{entry}");
    }
    // The caller's request id may repeat; each entry still has a number of its own.
    let ids: std::collections::HashSet<u64> =
        entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), entries.len());
}

#[tokio::test]
async fn a_repeated_key_is_named_not_called_a_non_object() {
    let app = app_with(
        Some(Arc::new(MockEngine::new(vec!["a"]))),
        ServerConfig::default(),
    );
    let body = r#"{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"n":1,"n":2}"#;
    let (status, reply, _) = send(app, "POST", "/v1/chat/completions", body).await;
    let e = error_of(status, &reply, StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "n", "{reply}");
    assert!(
        e["message"].as_str().unwrap().contains("more than once"),
        "{reply}"
    );
}

#[tokio::test]
async fn an_unknown_model_is_not_echoed_and_a_bad_id_is_json() {
    let app = app_with(
        Some(Arc::new(MockEngine::new(vec!["a"]))),
        ServerConfig::default(),
    );
    let body = json!({"model": "Patient-Jane-Roe", "messages": [{"role": "user", "content": "x"}]});
    let (status, reply, _) = send(
        app.clone(),
        "POST",
        "/v1/chat/completions",
        &body.to_string(),
    )
    .await;
    let e = error_of(status, &reply, StatusCode::NOT_FOUND);
    assert!(!reply.to_string().contains("Jane"), "{reply}");
    assert_eq!(e["code"], "model_not_found");
    for id in ["%ff", "Patient-Jane-Roe", "%C3%28"] {
        let (status, reply, headers) =
            send(app.clone(), "GET", &format!("/v1/models/{id}"), "").await;
        let e = error_of(status, &reply, StatusCode::NOT_FOUND);
        assert_eq!(e["code"], "model_not_found", "{id}");
        assert!(!reply.to_string().contains("Jane"), "{reply}");
        assert!(header(&headers, "content-type")
            .unwrap()
            .starts_with("application/json"));
    }
}

/// A declared Content-Length over the limit is refused before the body is read: this body
/// never ends, so reading it would hang until the body timeout.
#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_at_once() {
    let config = ServerConfig {
        max_body_bytes: 1000,
        ..ServerConfig::default()
    };
    let app = app_with(Some(Arc::new(MockEngine::new(vec!["a"]))), config);
    let never = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let request = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .body(Body::new(Sized(Body::from_stream(never), 5_000_000)))
        .unwrap();
    let (status, reply, _) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        send_request(app, request),
    )
    .await
    .expect("answered without reading the body");
    error_of(status, &reply, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A body whose size hint says `len`, as hyper's says a declared Content-Length.
struct Sized(Body, u64);

impl http_body::Body for Sized {
    type Data = axum::body::Bytes;
    type Error = axum::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.1)
    }
}

/// `/metrics` shows a service its own traffic only; an admin key sees every service's.
#[tokio::test]
async fn metrics_show_other_services_only_to_an_admin() {
    let key_hash = |k: &str| sha256_hex(k.as_bytes());
    let keys = Keys::parse(&format!(
        "[[service]]\nname = \"lab\"\nkey_sha256 = \"{}\"\nmodels = [\"*\"]\n\
         [[service]]\nname = \"billing\"\nkey_sha256 = \"{}\"\nmodels = [\"*\"]\n\
         [[service]]\nname = \"ops\"\nkey_sha256 = \"{}\"\nmodels = [\"*\"]\nadmin = true\n",
        key_hash("lab-key"),
        key_hash("billing-key"),
        key_hash("ops-key"),
    ))
    .unwrap();
    let app = App::with_access(ServerConfig::default(), Some(keys), None);
    app.set_engine(Arc::new(MockEngine::new(vec!["a"])), MOCK_SHA256.into());
    let call = |key: &'static str, path: &'static str, body: String| {
        let app = app.clone();
        async move {
            let request = Request::builder()
                .method(if body.is_empty() { "GET" } else { "POST" })
                .uri(path)
                .header("authorization", format!("Bearer {key}"))
                .body(Body::from(body))
                .unwrap();
            send_request(router(app), request).await
        }
    };
    call("billing-key", "/v1/chat/completions", chat_body(json!({}))).await;
    call("lab-key", "/v1/chat/completions", chat_body(json!({}))).await;
    let (_, lab, _) = call("lab-key", "/metrics", String::new()).await;
    let lab = lab.as_str().unwrap().to_string();
    assert!(
        lab.contains("service=\"lab\"") && !lab.contains("billing"),
        "{lab}"
    );
    let (_, ops, _) = call("ops-key", "/metrics", String::new()).await;
    assert!(
        ops.as_str().unwrap().contains("service=\"billing\""),
        "{ops}"
    );
}
