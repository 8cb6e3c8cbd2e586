//! The server's routes, validation, errors and stream format against a mock engine (the same
//! `Engine` trait the real one implements), without a network or a model.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use tower::ServiceExt;
use ward_engine::{Prompt, SubmitError};
use ward_server::ServerConfig;

#[tokio::test]
async fn chat_completion_has_openai_shape() {
    let engine = Arc::new(MockEngine::new(vec!["Hel", "lo"]));
    let (status, body, headers) = chat(
        engine.clone(),
        json!({"temperature": 0.5, "seed": 7, "stop": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rid = header(&headers, "x-request-id").expect("request id header");
    assert_eq!(body["id"], format!("chatcmpl-{rid}"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock-model");
    assert_eq!(body["system_fingerprint"], "fp_mock");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello"})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 2);
    assert_eq!(body["usage"]["total_tokens"], 7);
    let seen = engine.seen.lock().unwrap();
    assert_eq!(seen[0].sampling.temperature, 0.5);
    assert_eq!(seen[0].sampling.seed, Some(7));
    assert_eq!(seen[0].stop, vec!["x".to_string()]);
    assert_eq!(
        seen[0].max_tokens, None,
        "chat without max_tokens may fill the context"
    );
}

#[tokio::test]
async fn completion_defaults_to_sixteen_tokens_and_takes_token_prompts() {
    let engine = Arc::new(MockEngine::new(vec!["a"]));
    let app = app_with(Some(engine.clone()), ServerConfig::default());
    let (status, body, _) = send(
        app,
        "POST",
        "/v1/completions",
        &json!({"model": "mock-model", "prompt": [1, 2, 3]}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(body["choices"][0]["text"], "a");
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let seen = engine.seen.lock().unwrap();
    assert_eq!(seen[0].max_tokens, Some(16));
    assert!(matches!(&seen[0].prompt, Prompt::Tokens(t) if t == &[1, 2, 3]));
}

#[tokio::test]
async fn chat_stream_sends_role_text_finish_usage_and_done() {
    let engine = Arc::new(MockEngine::new(vec!["Hel", "lo"]));
    let (status, body, headers) = chat(
        engine,
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let text = body.as_str().unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks.len(), 5, "{text}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hel");
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "lo");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    assert!(chunks[..4]
        .iter()
        .all(|c| c["usage"].is_null() && c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 2);
    let ids: std::collections::HashSet<_> = chunks.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids.len(), 1, "one id for the whole stream");
}

/// A reasoning model's thinking goes to `reasoning_content`, streamed or not, however the
/// pieces break the markers; a model that declares no reasoning format answers with content
/// only, whatever its answer starts with.
#[tokio::test]
async fn thinking_is_split_into_reasoning_content() {
    let pieces = vec!["<thi", "nk>Weigh", " the dose.</th", "ink>\n\n5", " mg."];
    let (status, body, _) = chat(Arc::new(MockEngine::reasoner(pieces.clone())), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let message = &body["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "Weigh the dose.");
    assert_eq!(message["content"], "5 mg.");

    for plain in [
        pieces.clone(),
        vec!["## Thinking\n\nA heading.\n\n## Final Response\n\nOk."],
    ] {
        let whole: String = plain.concat();
        let (_, body, _) = chat(Arc::new(MockEngine::new(plain.clone())), json!({})).await;
        assert_eq!(
            body["choices"][0]["message"],
            json!({"role": "assistant", "content": whole})
        );
        let (_, body, _) = chat(Arc::new(MockEngine::new(plain)), json!({"stream": true})).await;
        assert_eq!(streamed_split(&body), (String::new(), whole));
    }

    let (_, body, _) = chat(
        Arc::new(MockEngine::reasoner(pieces)),
        json!({"stream": true}),
    )
    .await;
    let (reasoning, content) = streamed_split(&body);
    assert_eq!(
        (reasoning.as_str(), content.as_str()),
        ("Weigh the dose.", "5 mg.")
    );

    // Completions pass the text through as it is.
    let app = app_with(
        Some(Arc::new(MockEngine::reasoner(vec!["<think>a</think>b"]))),
        ServerConfig::default(),
    );
    let (_, body, _) = send(
        app,
        "POST",
        "/v1/completions",
        &json!({"model": "mock-model", "prompt": "x"}).to_string(),
    )
    .await;
    assert_eq!(body["choices"][0]["text"], "<think>a</think>b");
}

/// The text of a chat stream's deltas: (reasoning_content, content).
fn streamed_split(body: &Value) -> (String, String) {
    let (mut reasoning, mut content) = (String::new(), String::new());
    for event in body.as_str().unwrap().split("\n\n") {
        let Some(Ok(chunk)) = event
            .strip_prefix("data: ")
            .map(serde_json::from_str::<Value>)
        else {
            continue;
        };
        let delta = &chunk["choices"][0]["delta"];
        reasoning += delta["reasoning_content"].as_str().unwrap_or("");
        content += delta["content"].as_str().unwrap_or("");
    }
    (reasoning, content)
}

/// A DeepSeek-R1 distill's prompt opens the thinking, so its answer has only the closing tag:
/// still split, streamed or not, for every choice; the same text after a prompt that did not
/// open it is all content.
#[tokio::test]
async fn answers_after_a_prompt_that_opened_the_thinking_are_split() {
    let pieces = vec!["Okay, K+ 5.6", " is high.\n</th", "ink>\n\nRe", "peat it."];
    let opened = || {
        let mut engine = MockEngine::reasoner(pieces.clone());
        engine.thinking = Some(ward_engine::THINKING_FORMATS[0]);
        Arc::new(engine)
    };
    let (status, body, _) = chat(opened(), json!({"n": 2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for choice in body["choices"].as_array().unwrap() {
        assert_eq!(
            choice["message"]["reasoning_content"],
            "Okay, K+ 5.6 is high."
        );
        assert_eq!(choice["message"]["content"], "Repeat it.");
    }
    let (_, body, _) = chat(opened(), json!({"stream": true})).await;
    assert_eq!(
        streamed_split(&body),
        ("Okay, K+ 5.6 is high.".into(), "Repeat it.".into())
    );
    let (_, body, _) = chat(Arc::new(MockEngine::reasoner(pieces.clone())), json!({})).await;
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "Okay, K+ 5.6 is high.\n</think>\n\nRepeat it."})
    );
}

/// `chat_template_kwargs` reach the template (a boolean `enable_thinking` only), past
/// assistant turns keep their `reasoning_content`, and tool calls' arguments stay as sent.
#[tokio::test]
async fn template_kwargs_and_past_reasoning_reach_the_engine() {
    let engine = Arc::new(MockEngine::new(vec!["ok"]));
    let messages = json!([
        {"role": "user", "content": "K+ 5.6? /no_think"},
        {"role": "assistant", "content": "High.", "reasoning_content": "Above 5.0."},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "lab", "arguments": "{\"test\": \"K\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "5.6"},
    ]);
    let body = json!({"messages": messages,
        "chat_template_kwargs": {"enable_thinking": false, "date_string": "26 Nov 2025"}});
    let (status, _, _) = chat(engine.clone(), body).await;
    assert_eq!(status, StatusCode::OK);
    let seen = engine.seen.lock().unwrap().remove(0);
    assert_eq!(
        Value::Object(seen.chat_template_kwargs.clone()),
        json!({"enable_thinking": false, "date_string": "26 Nov 2025"})
    );
    let Prompt::Chat(m) = &seen.prompt else {
        panic!("a chat prompt")
    };
    assert_eq!(m[1].reasoning_content.as_deref(), Some("Above 5.0."));
    assert_eq!(m[2].content, "");
    assert_eq!(
        m[2].tool_calls.as_ref().unwrap()[0]["function"]["arguments"],
        "{\"test\": \"K\"}"
    );

    for (kwargs, param) in [
        (
            json!({"enable_thinking": "false"}),
            "chat_template_kwargs.enable_thinking",
        ),
        (json!(["enable_thinking"]), "chat_template_kwargs"),
    ] {
        let engine = Arc::new(MockEngine::new(vec!["ok"]));
        let (status, body, _) = chat(engine, json!({"chat_template_kwargs": kwargs})).await;
        let e = error_of(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(e["param"], param);
    }
    let app = app_with(
        Some(Arc::new(MockEngine::new(vec!["a"]))),
        ServerConfig::default(),
    );
    let (status, body, _) = send(
        app,
        "POST",
        "/v1/completions",
        &json!({"model": "mock-model", "prompt": "x", "chat_template_kwargs": {}}).to_string(),
    )
    .await;
    assert_eq!(
        error_of(status, &body, StatusCode::BAD_REQUEST)["param"],
        "chat_template_kwargs"
    );
}

/// With tools offered, `<tool_call>` blocks in the answer become `tool_calls`, streamed or
/// not, and the text around them the content.
#[tokio::test]
async fn tool_call_blocks_become_tool_calls() {
    let pieces = vec![
        "Checking.",
        "\n<tool_",
        "call>{\"name\": \"get_vitals\", \"arguments\": {\"bed\": 4}}</tool_call>",
    ];
    let tools = json!({"tools": [{"type": "function", "function": {"name": "get_vitals",
        "parameters": {"type": "object", "properties": {"bed": {"type": "integer"}}}}}]});
    let engine = Arc::new(MockEngine::new(pieces.clone()));
    let (status, body, _) = chat(engine.clone(), tools.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking.\n", "as streamed");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_vitals");
    assert_eq!(call["function"]["arguments"], r#"{"bed":4}"#);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert!(
        engine.seen.lock().unwrap()[0].tools.is_some(),
        "tools reach the prompt"
    );

    let mut stream_body = tools.clone();
    stream_body["stream"] = json!(true);
    let (_, body, _) = chat(Arc::new(MockEngine::new(pieces)), stream_body).await;
    let chunks: Vec<Value> = body
        .as_str()
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content.trim(), "Checking.");
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0][0]["index"], 0);
    assert_eq!(calls[0][0]["function"]["name"], "get_vitals");
    let last = &chunks[chunks.len() - 1]["choices"][0];
    assert_eq!(last["finish_reason"], "tool_calls");

    // tool_choice "none": no tools offered, the text is content.
    let mut none = tools;
    none["tool_choice"] = json!("none");
    let engine = Arc::new(MockEngine::new(vec!["<tool_call>{}</tool_call>"]));
    let (_, body, _) = chat(engine.clone(), none).await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "<tool_call>{}</tool_call>"
    );
    assert!(engine.seen.lock().unwrap()[0].tools.is_none());
}

#[tokio::test]
async fn bad_parameters_get_400_naming_them_without_echoing_values() {
    let cases = [
        (json!({"temperature": -0.1}), "temperature"),
        (json!({"temperature": "SECRET-PATIENT"}), "temperature"),
        (json!({"top_p": 0}), "top_p"),
        (json!({"top_p": 1.5}), "top_p"),
        (json!({"max_tokens": 0}), "max_tokens"),
        (json!({"max_tokens": -3}), "max_tokens"),
        (json!({"max_completion_tokens": 0}), "max_completion_tokens"),
        (json!({"n": 17}), "n"),
        (json!({"n": 0}), "n"),
        (json!({"presence_penalty": 3}), "presence_penalty"),
        (json!({"stop": vec!["a"; 17]}), "stop"),
        (json!({"stop": 5}), "stop"),
        (json!({"stream": "yes"}), "stream"),
        (
            json!({"stream_options": {"include_usage": true}}),
            "stream_options",
        ),
        (json!({"logit_bias": {"5": 101}}), "logit_bias"),
        (json!({"logit_bias": {"five": 1}}), "logit_bias"),
        // A key with a value of the wrong type was once named in the error (found by
        // fuzz/fuzz_targets/request.rs).
        (json!({"logit_bias": {"SECRET-PATIENT": "x"}}), "logit_bias"),
        (json!({"logit_bias": {"5": [1]}}), "logit_bias"),
        (json!({"logit_bias": ["SECRET-PATIENT"]}), "logit_bias"),
        (json!({"messages": []}), "messages"),
        (
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": 7}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            "messages[0].content[0].type",
        ),
    ];
    for (extra, param) in cases {
        let engine = Arc::new(MockEngine::new(vec!["x"]));
        let (status, body, _) = chat(engine.clone(), extra.clone()).await;
        let e = error_of(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(e["param"], param, "{extra} → {body}");
        assert!(!body.to_string().contains("SECRET-PATIENT"), "{body}");
        assert!(
            engine.seen.lock().unwrap().is_empty(),
            "{extra} reached the engine"
        );
    }
}

#[tokio::test]
async fn malformed_json_and_missing_fields() {
    let engine = Arc::new(MockEngine::new(vec!["x"]));
    for (body, code, param) in [
        ("{\"model\": ", "invalid_json", Value::Null),
        ("[1, 2]", "invalid_json", Value::Null),
        ("{} trailing", "invalid_json", Value::Null),
        (
            "{\"model\": \"mock-model\"}",
            "invalid_value",
            json!("messages"),
        ),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
            "invalid_value",
            json!("model"),
        ),
        (
            "{\"model\": \"mock-model\", \"messages\": [{\"content\": \"x\"}]}",
            "invalid_value",
            json!("messages[0].role"),
        ),
    ] {
        let app = app_with(Some(engine.clone()), ServerConfig::default());
        let (status, resp, _) = send(app, "POST", "/v1/chat/completions", body).await;
        let e = error_of(status, &resp, StatusCode::BAD_REQUEST);
        assert_eq!(e["code"], code, "{body} → {resp}");
        assert_eq!(e["param"], param, "{body} → {resp}");
    }
}

#[tokio::test]
async fn unknown_model_route_and_method_are_json_errors() {
    let engine = Arc::new(MockEngine::new(vec!["x"]));
    let (status, body, _) = chat(engine.clone(), json!({"model": "gpt-4"})).await;
    let e = error_of(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(e["code"], "model_not_found");
    let app = app_with(Some(engine.clone()), ServerConfig::default());
    let (status, body, headers) = send(app, "GET", "/v1/nothing", "").await;
    error_of(status, &body, StatusCode::NOT_FOUND);
    assert!(header(&headers, "x-request-id").is_some());
    let app = app_with(Some(engine), ServerConfig::default());
    let (status, body, _) = send(app, "GET", "/v1/chat/completions", "").await;
    error_of(status, &body, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let engine = Arc::new(MockEngine::new(vec!["x"]));
    let config = ServerConfig {
        max_body_bytes: 100,
        ..ServerConfig::default()
    };
    let app = app_with(Some(engine), config);
    let big = chat_body(json!({"user": "y".repeat(200)}));
    let (status, body, _) = send(app, "POST", "/v1/chat/completions", &big).await;
    let e = error_of(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e["code"], "request_too_large");
}

#[tokio::test]
async fn engine_refusals_map_to_status_codes() {
    type Case = (fn() -> SubmitError, StatusCode, &'static str);
    let cases: [Case; 4] = [
        (
            || SubmitError::QueueFull { capacity: 1 },
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
        ),
        (
            || SubmitError::ContextLengthExceeded {
                prompt_tokens: 60,
                max_tokens: 10,
                context_length: 64,
            },
            StatusCode::BAD_REQUEST,
            "context_length_exceeded",
        ),
        (
            || SubmitError::NoChatTemplate,
            StatusCode::BAD_REQUEST,
            "chat_template_missing",
        ),
        (
            || SubmitError::ShuttingDown,
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
        ),
    ];
    for (refuse, want, code) in cases {
        let mut engine = MockEngine::new(vec!["x"]);
        engine.refuse = Some(refuse);
        let (status, body, headers) = chat(Arc::new(engine), json!({})).await;
        let e = error_of(status, &body, want);
        assert_eq!(e["code"], code);
        if want == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(header(&headers, "retry-after"), Some("1"));
        }
    }
}

#[tokio::test]
async fn before_the_model_loads_health_is_up_and_the_rest_is_503() {
    let app = app_with(None, ServerConfig::default());
    let (status, _, _) = send(app.clone(), "GET", "/health", "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(app.clone(), "GET", "/ready", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body, headers) =
        send(app, "POST", "/v1/chat/completions", &chat_body(json!({}))).await;
    error_of(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&headers, "retry-after").is_some());
}

#[tokio::test]
async fn models_lists_the_served_model() {
    let engine = Arc::new(MockEngine::new(vec![]));
    let app = app_with(Some(engine), ServerConfig::default());
    let (status, body, _) = send(app.clone(), "GET", "/v1/models", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["id"], "mock-model");
    assert_eq!(body["data"][0]["object"], "model");
    let (status, _, _) = send(app.clone(), "GET", "/v1/models/mock-model", "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(app, "GET", "/v1/models/other", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_caller_request_id_is_kept_and_a_hostile_one_replaced() {
    let engine = Arc::new(MockEngine::new(vec![]));
    for (sent, kept) in [("ehr-plugin.42", true), ("bad id\twith spaces", false)] {
        let app = app_with(Some(engine.clone()), ServerConfig::default());
        let request = Request::builder()
            .uri("/health")
            .header("x-request-id", sent)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let got = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(got == sent, kept, "{got}");
    }
}

#[tokio::test]
async fn dropping_a_stream_cancels_it_for_the_engine() {
    let engine = Arc::new(MockEngine::new(vec!["a", "b"]));
    let app = app_with(Some(engine.clone()), ServerConfig::default());
    let request = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .body(Body::from(chat_body(json!({"stream": true}))))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert!(!engine.senders.lock().unwrap()[0].is_cancelled());
    drop(response);
    assert!(engine.senders.lock().unwrap()[0].is_cancelled());
}

/// The Responses API gives a reasoning model's thinking as a reasoning item before the
/// message, whole or streamed as its own typed events.
#[tokio::test]
async fn responses_put_the_thinking_in_a_reasoning_item() {
    let pieces = vec!["<thi", "nk>Weigh", " the dose.</th", "ink>\n\n5", " mg."];
    let body = json!({"model": "mock-model", "input": "Dose?"}).to_string();
    let app = app_with(
        Some(Arc::new(MockEngine::reasoner(pieces.clone()))),
        ServerConfig::default(),
    );
    let (status, r, _) = send(app, "POST", "/v1/responses", &body).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["output"][0]["type"], "reasoning");
    assert_eq!(r["output"][0]["content"][0]["text"], "Weigh the dose.");
    assert_eq!(r["output"][1]["type"], "message");
    assert_eq!(r["output"][1]["content"][0]["text"], "5 mg.");

    let body = json!({"model": "mock-model", "input": "Dose?", "stream": true}).to_string();
    let app = app_with(
        Some(Arc::new(MockEngine::reasoner(pieces))),
        ServerConfig::default(),
    );
    let (_, events, _) = send(app, "POST", "/v1/responses", &body).await;
    let (mut thinking, mut text, mut last) = (String::new(), String::new(), Value::Null);
    for event in events.as_str().unwrap().split("\n\n") {
        let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let e: Value = serde_json::from_str(data).unwrap();
        match e["type"].as_str().unwrap() {
            "response.reasoning_text.delta" => thinking += e["delta"].as_str().unwrap(),
            "response.output_text.delta" => text += e["delta"].as_str().unwrap(),
            _ => {}
        }
        last = e;
    }
    assert_eq!(
        (thinking.as_str(), text.as_str()),
        ("Weigh the dose.", "5 mg.")
    );
    assert_eq!(last["type"], "response.completed");
    // The same items as the whole response (each response's ids are its own).
    let without_ids = |output: &Value| {
        let mut items = output.as_array().unwrap().clone();
        items
            .iter_mut()
            .for_each(|i| drop(i.as_object_mut().unwrap().remove("id")));
        items
    };
    assert_eq!(
        without_ids(&last["response"]["output"]),
        without_ids(&r["output"])
    );
}
