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
    manifest = "".join(
        f"{hashlib.sha256(open(os.path.join(directory, n), 'rb').read()).hexdigest()}  {n}\n"
        for n in sorted(os.listdir(directory)))
    digest = hashlib.sha256(manifest.encode()).hexdigest()
    assert digest in qwen2_dir.log_text()


def test_quantize_is_refused_for_a_gguf_file():
    with pytest.raises(RuntimeError, match="--quantize converts a Hugging Face model directory"):
        Server("--model", "qwen2.5-coder-0.5b-instruct", "--quantize", "q8_0", ready_timeout=120)
