"""Ollama's API through the `ollama` Python client (as Open WebUI and other Ollama tools call it):
the model listed, described and shown as loaded, chat and generate answering as the OpenAI
routes do (streamed as JSON lines or whole), JSON formats, and errors in Ollama's shape."""
import json

import jsonschema
import ollama
import pytest

from conftest import MODEL
from test_http import request

OPTIONS = {"temperature": 0, "num_predict": 16}
QUESTION = [{"role": "user", "content": "Name one antibiotic."}]


@pytest.fixture(scope="module")
def oc(server):
    return ollama.Client(host=server.url, timeout=180)


def test_the_model_is_listed_described_and_loaded(oc, server):
    (listed,) = oc.list().models
    assert listed.model == MODEL and listed.details.format == "gguf" and listed.details.family == "llama"
    assert listed.size > 50_000_000 and len(listed.digest) == 64
    shown = oc.show(MODEL)
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] > 0 and "completion" in shown.capabilities
    (loaded,) = oc.ps().models
    assert loaded.model == MODEL and loaded.context_length == shown.modelinfo["llama.context_length"]
    status, _, version = request(server, "GET", "/api/version")
    assert status == 200 and version["version"]


def test_chat_answers_as_the_openai_route_does_streamed_or_whole(oc, client):
    whole = oc.chat(model=MODEL, messages=QUESTION, options=OPTIONS, stream=False)
    openai_answer = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=16)
    assert whole.message.content == openai_answer.choices[0].message.content
    assert whole.done and whole.done_reason == "length" and whole.eval_count == 16
    assert whole.prompt_eval_count == openai_answer.usage.prompt_tokens
    assert whole.total_duration >= whole.eval_duration > 0
    parts = list(oc.chat(model=MODEL, messages=QUESTION, options=OPTIONS, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.message.content for p in parts) == whole.message.content


def test_generate_runs_the_prompt_through_the_template_unless_raw(oc, client):
    raw = oc.generate(model=MODEL, prompt="Sepsis is", raw=True, options=OPTIONS)
    completion = client.completions.create(model=MODEL, prompt="Sepsis is", temperature=0, max_tokens=16)
    assert raw.response == completion.choices[0].text
    templated = oc.generate(model=MODEL, prompt="Name one antibiotic.", options=OPTIONS)
    assert templated.response == oc.chat(model=MODEL, messages=QUESTION, options=OPTIONS).message.content
    streamed = "".join(p.response for p in oc.generate(model=MODEL, prompt="Sepsis is", raw=True,
                                                         options=OPTIONS, stream=True))
    assert streamed == raw.response


def test_format_gives_json_and_schemas(oc):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    r = oc.chat(model=MODEL, messages=[{"role": "user", "content": "A 70-year-old patient, as JSON."}],
                format=schema, options={"temperature": 0, "num_predict": 40})
    jsonschema.validate(json.loads(r.message.content), schema)
    r = oc.generate(model=MODEL, prompt="A patient record as JSON:", format="json",
                    options={"temperature": 0, "num_predict": 40})
    if r.done_reason == "stop":
        assert isinstance(json.loads(r.response), dict)


def test_errors_are_ollamas_shape(oc, server):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model="no-such-model", messages=QUESTION)
    assert e.value.status_code == 404 and "not served" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        oc.embed(model=MODEL, input="sepsis")
    assert e.value.status_code == 400
    status, _, body = request(server, "POST", "/api/chat", {"model": MODEL, "messages": "hi"})
    assert status == 400 and isinstance(body["error"], str)
    status, _, body = request(server, "POST", "/api/generate",
                              {"model": MODEL, "prompt": "x", "images": ["aGk="]})
    assert status == 400 and "text only" in body["error"]
