"""The serving engine through the real `openai` client: concurrent requests answered exactly as
alone, `n` choices, log-probabilities, logit_bias, stop_token_ids, tokenize/detokenize, blocks
freed when a client leaves, and the request timeout. One server with batching on (16 sequences
at once) serves this file."""
import concurrent.futures
import json
import socket
import time
import urllib.parse

import jsonschema
import openai
import pytest

from conftest import MODEL, Server
from test_http import request

PROMPTS = [
    "The first line of treatment for community-acquired pneumonia is",
    "Explain in one sentence what a troponin test measures.",
    "List three causes of anaemia:",
    "Hypertension is defined as",
    "A patient with a fever of 39 degrees and a stiff neck may have",
    "The normal range of adult resting heart rate is",
    "Metformin works by",
    "Sepsis is",
]


@pytest.fixture(scope="module")
def batching():
    s = Server("--max-running", "16", "--max-batch-tokens", "64")
    yield s
    assert s.stop() == 0, s.log_text()


@pytest.fixture(scope="module")
def bclient(batching):
    return openai.OpenAI(base_url=batching.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def complete(client, i, **extra):
    r = client.completions.create(model=MODEL, prompt=PROMPTS[i], max_tokens=24, temperature=0.8,
                                  seed=100 + i, **extra)
    return r.choices[0].text, r.usage.completion_tokens


def test_concurrent_requests_get_the_answers_they_get_alone(bclient):
    alone = [complete(bclient, i) for i in range(len(PROMPTS))]
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        for order in (range(len(PROMPTS)), reversed(range(len(PROMPTS)))):
            together = list(pool.map(lambda i: (i, complete(bclient, i)), order))
            for i, got in together:
                assert got == alone[i], f"prompt {i}"


def test_n_choices_are_seeded_apart_and_stream_like_they_answer(bclient):
    ask = dict(model=MODEL, messages=[{"role": "user", "content": "Name a vitamin."}], max_tokens=12,
               temperature=1.0, seed=7, n=3)
    r = bclient.chat.completions.create(**ask)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert len(set(texts)) > 1, texts
    assert 3 <= r.usage.completion_tokens <= 36
    again = bclient.chat.completions.create(**ask)
    assert [c.message.content for c in again.choices] == texts
    streamed = ["", "", ""]
    finishes = [None] * 3
    for chunk in bclient.chat.completions.create(**ask, stream=True):
        for c in chunk.choices:
            streamed[c.index] += c.delta.content or ""
            finishes[c.index] = c.finish_reason or finishes[c.index]
    assert streamed == texts
    assert finishes == [c.finish_reason for c in r.choices]


def test_a_prompt_batch_answers_each_prompt_as_it_is_answered_alone(batching, bclient):
    ask = dict(model=MODEL, max_tokens=12, temperature=0.8, seed=3, n=2)
    r = bclient.completions.create(prompt=PROMPTS[:3], **ask)
    alone = [bclient.completions.create(prompt=p, **ask) for p in PROMPTS[:3]]
    # Prompt by prompt, each prompt's n choices.
    assert [c.index for c in r.choices] == list(range(6))
    assert [c.text for c in r.choices] == [c.text for a in alone for c in a.choices]
    assert r.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone)
    assert r.usage.completion_tokens == sum(a.usage.completion_tokens for a in alone)
    streamed, usage = [""] * 6, None
    for chunk in bclient.completions.create(prompt=PROMPTS[:3], **ask, stream=True,
                                            stream_options={"include_usage": True}):
        for c in chunk.choices:
            streamed[c.index] += c.text
        usage = chunk.usage or usage
    assert streamed == [c.text for c in r.choices]
    assert usage.prompt_tokens == r.usage.prompt_tokens
    assert usage.completion_tokens == r.usage.completion_tokens
    # The same prompts as token ids.
    ids = [tokenize(batching, prompt=p)["tokens"] for p in PROMPTS[:3]]
    by_ids = bclient.completions.create(prompt=ids, **ask)
    assert [c.text for c in by_ids.choices] == [c.text for c in r.choices]


def test_langchain_batches_completions_in_one_request(batching, bclient):
    from langchain_openai import OpenAI
    llm = OpenAI(base_url=batching.url + "/v1", api_key="unused", model=MODEL, max_tokens=8,
                 temperature=0, max_retries=0)
    alone = [bclient.completions.create(model=MODEL, prompt=p, max_tokens=8, temperature=0).choices[0].text
             for p in PROMPTS[:4]]
    assert llm.batch(PROMPTS[:4]) == alone
    generated = llm.generate(PROMPTS[:4])
    assert [g[0].text for g in generated.generations] == alone


def test_chat_logprobs_describe_each_token(bclient):
    r = bclient.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}],
                                        max_tokens=10, temperature=0, logprobs=True, top_logprobs=3)
    c = r.choices[0]
    content = c.logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert t.logprob <= 0
        assert len(t.top_logprobs) == 3
        assert [a.logprob for a in t.top_logprobs] == sorted((a.logprob for a in t.top_logprobs), reverse=True)
        # Greedy: the chosen token is the likeliest.
        assert t.token == t.top_logprobs[0].token and t.logprob == t.top_logprobs[0].logprob
    if c.finish_reason == "length":
        assert b"".join(bytes(t.bytes) for t in content).decode() == c.message.content
    streamed = []
    for chunk in bclient.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}],
                                                 max_tokens=10, temperature=0, logprobs=True, top_logprobs=3,
                                                 stream=True):
        for ch in chunk.choices:
            streamed += ch.logprobs.content if ch.logprobs else []
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content]


def test_completion_logprobs_are_parallel_lists(bclient):
    r = bclient.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=6, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 6
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    assert "".join(lp.tokens) == r.choices[0].text


def tokenize(server, **body):
    status, _, reply = request(server, "POST", "/tokenize", {"model": MODEL, **body})
    assert status == 200, reply
    return reply


def test_tokenize_counts_what_generation_runs_and_detokenize_inverts_it(batching, bclient):
    t = tokenize(batching, prompt=PROMPTS[2])
    r = bclient.completions.create(model=MODEL, prompt=PROMPTS[2], max_tokens=1)
    assert t["count"] == len(t["tokens"]) == r.usage.prompt_tokens
    assert t["max_model_len"] > 0
    status, _, back = request(batching, "POST", "/v1/detokenize", {"tokens": t["tokens"]})
    assert status == 200 and back["prompt"].endswith(PROMPTS[2])
    messages = [{"role": "user", "content": PROMPTS[1]}]
    chat = bclient.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)
    assert tokenize(batching, messages=messages)["count"] == chat.usage.prompt_tokens
    status, _, e = request(batching, "POST", "/detokenize", {"tokens": [10**9]})
    assert status == 400 and e["error"]["param"] == "tokens"


def test_logit_bias_and_stop_token_ids(batching, bclient):
    yes = tokenize(batching, prompt=" yes")["tokens"][-1]
    r = bclient.completions.create(model=MODEL, prompt="Answer:", max_tokens=3, temperature=0,
                                   logit_bias={str(yes): 100})
    assert r.choices[0].text == " yes" * 3
    r = bclient.completions.create(model=MODEL, prompt="Answer:", max_tokens=10, temperature=0,
                                   logit_bias={str(yes): 100}, extra_body={"stop_token_ids": [yes]})
    assert r.usage.completion_tokens == 1 and r.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError):
        bclient.completions.create(model=MODEL, prompt="x", max_tokens=1, logit_bias={"1": 500})


def ready(server):
    return request(server, "GET", "/ready")[2]


def test_a_client_that_leaves_frees_its_sequence_and_blocks(batching):
    host, port = urllib.parse.urlsplit(batching.url).netloc.split(":")
    body = json.dumps({"model": MODEL, "prompt": "1, 2, 3,", "max_tokens": 2000, "stream": True,
                       "ignore_eos": True}).encode()
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                  + body)
        got = b""
        while got.count(b'"text"') < 3:
            got += s.recv(4096)
        assert ready(batching)["running"] == 1
    # The server notices at its next write to the closed connection, and the engine within a step.
    t0 = time.time()
    while (r := ready(batching))["running"] or r["kv_blocks_used"]:
        assert time.time() - t0 < 10, r
        time.sleep(0.05)


def test_a_request_past_the_timeout_is_a_504_or_an_error_event():
    s = Server("--request-timeout", "3")
    try:
        # A fresh server reports its KV pool's size before any request has run.
        assert ready(s)["kv_blocks_total"] > 0 and ready(s)["kv_blocks_used"] == 0
        body = {"model": MODEL, "prompt": "1, 2, 3,", "max_tokens": 5000, "ignore_eos": True}
        status, _, reply = request(s, "POST", "/v1/completions", body)
        assert status == 504 and reply["error"]["code"] == "request_timeout", reply
        status, _, text = request(s, "POST", "/v1/completions", {**body, "stream": True})
        assert status == 200 and '"request_timeout"' in text and text.rstrip().endswith("data: [DONE]")
        status, _, reply = request(s, "POST", "/v1/completions", {**body, "max_tokens": 1})
        assert status == 200, reply
    finally:
        assert s.stop() == 0


# Patterns, lengths and bounds are enforced too, and jsonschema checks them.
PATIENT_SCHEMA = {
    "type": "object",
    "properties": {
        "mrn": {"type": "string", "pattern": "^[0-9]{7}$"},
        "diagnosis": {"type": "string", "minLength": 3, "maxLength": 60},
        "severity": {"enum": ["mild", "moderate", "severe"]},
        "heart_rate": {"type": "integer", "minimum": 20, "maximum": 250},
        "admit": {"type": "boolean"},
        "medications": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
    },
    "required": ["mrn", "diagnosis", "severity", "heart_rate", "admit"],
    "additionalProperties": False,
}


def test_json_schema_answers_parse_and_validate(bclient):
    messages = [{"role": "user", "content": "Give the triage record as JSON: 70-year-old, pneumonia, "
                                            "pulse 112, on amoxicillin, needs admission."}]
    fmt = {"type": "json_schema", "json_schema": {"name": "triage", "schema": PATIENT_SCHEMA, "strict": True}}
    whole = 0
    for seed in range(6):
        r = bclient.chat.completions.create(model=MODEL, messages=messages, max_tokens=200, temperature=0.7,
                                            seed=seed, response_format=fmt)
        if r.choices[0].finish_reason == "length":
            continue
        whole += 1
        jsonschema.validate(json.loads(r.choices[0].message.content), PATIENT_SCHEMA)
    assert whole >= 4, f"only {whole} of 6 answers finished"
    # Streamed, the pieces make the same document.
    kwargs = dict(model=MODEL, messages=messages, max_tokens=200, temperature=0, response_format=fmt)
    whole_text = bclient.chat.completions.create(**kwargs).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in bclient.chat.completions.create(**kwargs, stream=True)
                       if c.choices)
    assert streamed == whole_text


def test_json_object_mode_and_refused_schemas(bclient):
    r = bclient.chat.completions.create(model=MODEL, max_tokens=150, temperature=0,
                                        messages=[{"role": "user", "content": "List two vitals as JSON."}],
                                        response_format={"type": "json_object"})
    if r.choices[0].finish_reason != "length":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    # Any JSON value may be the answer, not only an object.
    vitals = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 300}, "minItems": 2,
              "maxItems": 3}
    r = bclient.chat.completions.create(model=MODEL, max_tokens=40, temperature=0,
                                        messages=[{"role": "user", "content": "Pulse and systolic pressure?"}],
                                        response_format={"type": "json_schema",
                                                         "json_schema": {"name": "vitals", "schema": vitals}})
    if r.choices[0].finish_reason != "length":
        jsonschema.validate(json.loads(r.choices[0].message.content), vitals)
    with pytest.raises(openai.BadRequestError) as e:
        bclient.chat.completions.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}],
                                        response_format={"type": "json_schema", "json_schema": {
                                            "name": "x", "schema": {"type": "object", "not": {"required": ["a"]}}}})
    assert e.value.body["param"] == "response_format" and "not supported" in e.value.body["message"]


VITALS_TOOL = {"type": "function", "function": {
    "name": "get_vitals", "description": "Latest vital signs of the patient in a bed",
    "parameters": {"type": "object", "properties": {"bed": {"type": "integer"}, "ward": {"type": "string"}},
                   "required": ["bed"], "additionalProperties": False}}}
LABS_TOOL = {"type": "function", "function": {
    "name": "get_labs", "parameters": {"type": "object", "properties": {"test": {"type": "string"}}}}}


ORDER_TOOL = {"type": "function", "function": {
    "name": "order_test", "description": "Order a laboratory test",
    "parameters": {"type": "object", "properties": {
        "test": {"enum": ["CBC", "CRP", "troponin"]}, "urgent": {"type": "boolean"},
        "note": {"$ref": "#/$defs/note"}},
        "required": ["test", "urgent"], "additionalProperties": False,
        "$defs": {"note": {"type": "string"}}}}}
TOOLS_BY_NAME = {t["function"]["name"]: t for t in (VITALS_TOOL, LABS_TOOL, ORDER_TOOL)}


def test_required_calls_follow_the_chosen_tools_schema(bclient):
    messages = [{"role": "user", "content": "Order a troponin test for the patient in bed 4, urgently."}]
    finished = 0
    for seed in range(6):
        r = bclient.chat.completions.create(model=MODEL, messages=messages, max_tokens=60, temperature=0.9,
                                            seed=seed, tools=[VITALS_TOOL, ORDER_TOOL], tool_choice="required")
        c = r.choices[0]
        if c.finish_reason == "length":
            continue
        finished += 1
        call = c.message.tool_calls[0]
        assert call.function.name in TOOLS_BY_NAME, call
        jsonschema.validate(json.loads(call.function.arguments),
                            TOOLS_BY_NAME[call.function.name]["function"]["parameters"])
    assert finished >= 3


def test_the_older_functions_form_is_answered_in_its_own_shape(batching, bclient):
    messages = [{"role": "user", "content": "What are the vitals of the patient in bed 4?"}]
    ask = dict(model=MODEL, messages=messages, max_tokens=60, temperature=0,
               functions=[VITALS_TOOL["function"]], function_call={"name": "get_vitals"})
    r = bclient.chat.completions.create(**ask)
    c = r.choices[0]
    assert c.finish_reason == "function_call" and c.message.tool_calls is None
    assert c.message.function_call.name == "get_vitals"
    jsonschema.validate(json.loads(c.message.function_call.arguments), VITALS_TOOL["function"]["parameters"])
    streamed, finish = "", None
    for chunk in bclient.chat.completions.create(**ask, stream=True):
        for ch in chunk.choices:
            if ch.delta.function_call:
                streamed += ch.delta.function_call.arguments
            finish = ch.finish_reason or finish
    assert (streamed, finish) == (c.message.function_call.arguments, "function_call")
    # The call and its result go back in the older form too.
    follow = messages + [
        {"role": "assistant", "content": None,
         "function_call": {"name": "get_vitals", "arguments": '{"bed": 4}'}},
        {"role": "function", "name": "get_vitals", "content": '{"pulse": 88}'},
    ]
    r = bclient.chat.completions.create(model=MODEL, messages=follow, max_tokens=8, temperature=0,
                                        functions=[VITALS_TOOL["function"]])
    assert r.choices[0].finish_reason in ("stop", "length", "function_call")
    with pytest.raises(openai.BadRequestError) as e:
        bclient.chat.completions.create(**ask, tools=[VITALS_TOOL])
    assert e.value.body["param"] == "functions"
    # /tokenize renders the tools as the chat request does.
    bare = tokenize(batching, messages=messages)["count"]
    with_tools = tokenize(batching, messages=messages, tools=[VITALS_TOOL])["count"]
    chat = bclient.chat.completions.create(model=MODEL, messages=messages, max_tokens=1, tools=[VITALS_TOOL])
    assert bare < with_tools == chat.usage.prompt_tokens


def test_a_required_tool_call_parses_and_its_result_can_be_sent_back(bclient):
    messages = [{"role": "user", "content": "What are the vitals of the patient in bed 4?"}]
    for choice in ({"type": "function", "function": {"name": "get_vitals"}}, "required"):
        r = bclient.chat.completions.create(model=MODEL, messages=messages, max_tokens=80, temperature=0,
                                            tools=[VITALS_TOOL, LABS_TOOL], tool_choice=choice)
        c = r.choices[0]
        if c.finish_reason == "length":
            continue
        assert c.finish_reason == "tool_calls" and c.message.content is None
        call = c.message.tool_calls[0]
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in ("get_vitals", "get_labs")
        args = json.loads(call.function.arguments)
        if choice != "required":
            assert call.function.name == "get_vitals"
        jsonschema.validate(args, TOOLS_BY_NAME[call.function.name]["function"]["parameters"])
    # The conversation goes on with the call and its result.
    follow = messages + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_vitals", "arguments": '{"bed": 4}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"pulse": 88, "bp": "120/80"}'},
    ]
    r = bclient.chat.completions.create(model=MODEL, messages=follow, max_tokens=20, temperature=0,
                                        tools=[VITALS_TOOL])
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    with pytest.raises(openai.BadRequestError) as e:
        bclient.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, tools=[VITALS_TOOL],
                                        tool_choice={"type": "function", "function": {"name": "nope"}})
    assert e.value.body["param"] == "tool_choice"
