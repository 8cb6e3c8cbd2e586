"""A Hugging Face model directory served as training wrote it (`ward serve --model DIR`), through
the official `openai` client: the tiny Qwen2 checkpoint (models/hf/tiny-qwen2, built by
scripts/fetch-models.sh) unquantized answers a chat with transformers' own greedy tokens
(scripts/reference/fixtures/hf-tiny-qwen2-hf.json), and the server names and pins the model by
its directory: the name is the directory's, its sha256 that of the manifest of the files read."""
import hashlib
import json
import os
import urllib.request

import openai
import pytest

from conftest import FIXTURES, ROOT, Server

DIR = os.path.join("models", "hf", "tiny-qwen2")


@pytest.fixture(scope="module")
def fixture():
    with open(os.path.join(FIXTURES, "hf-tiny-qwen2-hf.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def qwen2_dir():
    s = Server("--model", DIR, "--quantize", "none")
    yield s
    assert s.stop() == 0, s.log_text()


def test_a_chat_gets_transformers_greedy_answer(qwen2_dir, fixture):
    client = openai.OpenAI(base_url=qwen2_dir.url + "/v1", api_key="unused", max_retries=0)
    want = fixture["logits"]
    r = client.chat.completions.create(model="tiny-qwen2", messages=fixture["chat"],
                                       max_tokens=len(want["greedy"]), temperature=0)
    assert r.usage.prompt_tokens == len(want["prompt"])
    assert r.usage.completion_tokens == len(want["greedy"])
    assert r.choices[0].message.content == want["greedy_text"]


def test_the_model_is_named_and_pinned_by_its_directory(qwen2_dir):
    with urllib.request.urlopen(qwen2_dir.url + "/v1/models", timeout=60) as r:
        models = json.load(r)["data"]
    assert [m["id"] for m in models] == ["tiny-qwen2"]
    # The manifest: `sha256sum` lines of the files Ward reads, in name order, hashed.
    directory = os.path.join(ROOT, DIR)
    assert manifest_sha256(directory, os.listdir(directory)) in qwen2_dir.log_text()


def test_quantize_is_refused_for_a_gguf_file():
    with pytest.raises(RuntimeError, match="--quantize and --lora apply to a Hugging Face model directory"):
        Server("--model", "qwen2.5-coder-0.5b-instruct", "--quantize", "q8_0", ready_timeout=120)
    with pytest.raises(RuntimeError, match="--lora merges adapters into one model directory"):
        Server("--model", DIR, "--model", "all-minilm-l6-v2", "--lora",
               os.path.join("models", "hf", "tiny-qwen2-lora"), ready_timeout=120)


def manifest_sha256(directory, names):
    lines = "".join(f"{hashlib.sha256(open(os.path.join(directory, n), 'rb').read()).hexdigest()}  {n}\n"
                    for n in sorted(names))
    return hashlib.sha256(lines.encode()).hexdigest()


def test_a_lora_adapter_is_merged_served_under_its_name_and_audited(tmp_path, fixture):
    """`--lora` merges the adapter (PEFT's merge_and_unload's greedy answer), serves the model
    under the adapter's name, and the audit log's start event holds the adapter's sha256 beside
    the base model's."""
    audit = tmp_path / "audit.jsonl"
    adapter = os.path.join("models", "hf", "tiny-qwen2-lora")
    s = Server("--model", DIR, "--lora", adapter, "--quantize", "none", "--audit-log", str(audit))
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny-qwen2-lora"]
        want = fixture["lora"]["tiny-qwen2-lora"]
        r = client.chat.completions.create(model="tiny-qwen2-lora", messages=fixture["chat"],
                                           max_tokens=len(want["greedy"]), temperature=0)
        assert r.choices[0].message.content == want["greedy_text"]
    finally:
        assert s.stop() == 0, s.log_text()
    start = [json.loads(line) for line in audit.read_text().splitlines()
             if json.loads(line)["event"] == "start"][0]
    base = os.path.join(ROOT, DIR)
    [served] = start["models"]
    assert served["model"] == "tiny-qwen2-lora"
    assert served["model_sha256"] == manifest_sha256(base, os.listdir(base))
    adapter_dir = os.path.join(ROOT, adapter)
    assert served["adapters"] == [{"adapter": "tiny-qwen2-lora", "scale": 1.0,
                                   "sha256": manifest_sha256(adapter_dir, os.listdir(adapter_dir))}]
