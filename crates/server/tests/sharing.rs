//! Fair sharing between calling services, against the mock engine: a service's requests hold
//! places in the engine (one per choice) within its weighted share, so one service's many
//! `n = 16` streams cannot fill the queue for the others; and `tokens_per_minute` caps a single
//! request by reserving `n × max_tokens` when it is admitted.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use common::*;
use serde_json::json;
use tower::ServiceExt;
use ward_server::{router, sha256_hex, App, Keys, ServerConfig};

/// Services named by `entries` (name, extra lines), each with the key "<name>-key".
fn served(entries: &[(&str, &str)], capacity: usize) -> Arc<App> {
    let file: String = entries
        .iter()
        .map(|(name, extra)| {
            format!(
                "[[service]]\nname = \"{name}\"\nkey_sha256 = \"{}\"\nmodels = [\"*\"]\n{extra}\n",
                sha256_hex(format!("{name}-key").as_bytes())
            )
        })
        .collect();
    let app = App::with_access(
        ServerConfig::default(),
        Some(Keys::parse(&file).unwrap()),
        None,
    );
    let mut engine = MockEngine::new(vec!["Hel", "lo"]);
    engine.capacity = capacity;
    app.set_engine(Arc::new(engine), MOCK_SHA256.into());
    app
}

/// A streamed chat from `service` whose body is not read: its places stay held until the
/// response is dropped.
async fn open_stream(app: &Arc<App>, service: &str, extra: serde_json::Value) -> Response {
    let mut body = json!({"model": "mock-model", "stream": true, "max_tokens": 4,
                          "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let request = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("authorization", format!("Bearer {service}-key"))
        .body(Body::from(body.to_string()))
        .unwrap();
    router(app.clone()).oneshot(request).await.unwrap()
}

#[tokio::test]
async fn one_service_cannot_take_the_places_of_the_others() {
    let names = ["a", "b", "c", "d"];
    let app = served(&names.map(|n| (n, "")), 64);
    let n16 = || json!({"n": 16});
    // Each has 16 of the 64 places.
    let first = open_stream(&app, "a", n16()).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = open_stream(&app, "a", n16()).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    let mut others = Vec::new();
    for name in ["b", "c", "d"] {
        let r = open_stream(&app, name, n16()).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        others.push(r);
    }
    // Places come back when a response ends.
    drop(first);
    assert_eq!(open_stream(&app, "a", n16()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn weights_set_the_shares_and_idle_shares_cannot_be_borrowed_away() {
    // Shares of 64: a 32, b 16, c 16.
    let app = served(&[("a", "weight = 2"), ("b", ""), ("c", "")], 64);
    let mut held = Vec::new();
    for _ in 0..2 {
        let r = open_stream(&app, "a", json!({"n": 16})).await;
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    // b and c keep their 16 each although idle: a may not borrow them.
    let r = open_stream(&app, "a", json!({"n": 1})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let b = open_stream(&app, "b", json!({"n": 16})).await;
    assert_eq!(b.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_cannot_spend_more_than_the_token_rate() {
    let app = served(&[("a", "tokens_per_minute = 100")], 64);
    // 2 × 60 tokens may be generated: more than a minute's worth.
    let r = open_stream(&app, "a", json!({"n": 2, "max_tokens": 60})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Without max_tokens it may generate the whole context (64 - 5 prompt tokens).
    let r = open_stream(&app, "a", json!({"n": 2, "max_tokens": null})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // 80 reserved (and 5 prompt tokens charged) leave 15: a second such request waits.
    let first = open_stream(&app, "a", json!({"n": 2, "max_tokens": 40})).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = open_stream(&app, "a", json!({"n": 2, "max_tokens": 40})).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    // The first used 2 × 2 tokens of its 80: settled at its end, the rest comes back.
    axum::body::to_bytes(first.into_body(), usize::MAX)
        .await
        .unwrap();
    let third = open_stream(&app, "a", json!({"n": 2, "max_tokens": 40})).await;
    assert_eq!(third.status(), StatusCode::OK);
}
