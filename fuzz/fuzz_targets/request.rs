//! A request body as `POST /v1/chat/completions` and `POST /v1/completions` read it: parsed,
//! recorded for the audit log and validated into the engine's request
//! (`ward_server::fuzzing::read_generation_request`), then its JSON Schema compiled as the engine
//! compiles it at submission. Any body must give a request or a 4xx error body; beyond that:
//! - the limits hold (1 to 16 choices, at most 16 stop strings, temperature 0 to 2…);
//! - errors and the request's debug output never echo request text. The seed bodies carry the
//!   canary `SECRET` in every place a caller writes text (no parameter name contains it), and
//!   mutations move it around; an error or a log line showing it quotes the caller.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ward_engine::json::{JsonSpec, Vocabulary};
use ward_engine::ResponseFormat;
use ward_server::fuzzing::read_generation_request;

const CANARY: &str = "SECRET";

fuzz_target!(|data: &[u8]| {
    for chat in [true, false] {
        match read_generation_request(data, chat) {
            Ok((request, n)) => {
                assert!((1..=16).contains(&n), "n = {n}");
                assert!(request.stop.len() <= 16);
                let s = &request.sampling;
                assert!((0.0..=2.0).contains(&s.temperature));
                assert!(s.top_p > 0.0 && s.top_p <= 1.0);
                assert!(s.logit_bias.len() <= 300);
                let debug = format!("{request:?}");
                assert!(!debug.contains(CANARY), "request text in {debug}");
                if let Some(ResponseFormat::JsonSchema(schema)) = &request.response_format {
                    static BYTES: OnceLock<Vocabulary> = OnceLock::new();
                    let bytes = BYTES.get_or_init(Vocabulary::of_bytes);
                    if let Err(e) = JsonSpec::compile(bytes, schema) {
                        assert!(!e.to_string().contains(CANARY), "request text in {e}");
                    }
                }
            }
            Err(body) => {
                let text = body.to_string();
                assert!(!text.contains(CANARY), "request text in an error: {text}");
            }
        }
    }
});
