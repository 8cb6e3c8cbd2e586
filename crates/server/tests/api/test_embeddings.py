"""Embeddings and reranking for retrieval (RAG): `ward serve` with the chat model, the test
embedding model and the test reranker side by side (`--model` three times), driven by the openai
SDK (`client.embeddings.create`, which asks for base64), LangChain's `OpenAIEmbeddings`, the
`ollama` client and raw HTTP for `/v1/rerank`. Vectors are checked against llama.cpp's on the
same GGUF and sentence-transformers' on the original checkpoint (fixtures/embeddings-minilm.json),
scores against llama.cpp's and transformers' (fixtures/rerank-minilm.json); the chat model keeps
answering beside them."""
import base64
import json
import os
import struct
import subprocess

import ollama
import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from conftest import FIXTURES, MODEL, ROOT, Server
from test_http import request

EMBED = "all-minilm-l6-v2"
RERANK = "minilm-rerank-test"


@pytest.fixture(scope="module")
def both():
    s = Server("--model", MODEL, "--model", EMBED, "--model", RERANK, "--max-queue", "4")
    yield s
    assert s.stop() == 0, s.log_text()


@pytest.fixture(scope="module")
def oai(both):
    return openai.OpenAI(base_url=both.url + "/v1", api_key="unused", max_retries=0, timeout=180)


@pytest.fixture(scope="module")
def cases():
    with open(os.path.join(FIXTURES, "embeddings-minilm.json"), encoding="utf-8") as f:
        return json.load(f)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)


def test_many_inputs_in_one_request_match_llama_cpp_and_sentence_transformers(oai, cases):
    texts = [c["text"] for c in cases]
    r = oai.embeddings.create(model=EMBED, input=texts)
    assert r.model == EMBED and [d.index for d in r.data] == list(range(len(texts)))
    assert r.usage.prompt_tokens == r.usage.total_tokens == sum(len(c["ids"]) for c in cases)
    for case, d in zip(cases, r.data):
        assert len(d.embedding) == 384
        assert abs(sum(x * x for x in d.embedding) - 1) < 1e-5
        assert cosine(d.embedding, case["llama"]) >= 0.999, case["text"]
        if case["hf_ids"] == case["ids"]:
            assert cosine(d.embedding, case["st"]) >= 0.999, case["text"]
    # Retrieval works: the synonym is nearer than an unrelated text.
    mi, heart, vanc = (r.data[texts.index(t)].embedding for t in
                       ("Acute myocardial infarction", "Heart attack",
                        "Vancomycin 15 mg/kg IV q12h; target trough 15-20 mcg/mL."))
    assert cosine(mi, heart) > cosine(mi, vanc) + 0.2


def test_formats_dimensions_and_token_inputs(both, oai, cases):
    case = cases[0]
    floats = oai.embeddings.create(model=EMBED, input=case["text"], encoding_format="float").data[0].embedding
    status, _, body = request(both, "POST", "/v1/embeddings",
                              {"model": EMBED, "input": case["text"], "encoding_format": "base64"})
    assert status == 200
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats
    # Token ids are used as given: the fixture's ids (with [CLS]/[SEP]) give the same vector.
    by_ids = oai.embeddings.create(model=EMBED, input=[case["ids"], case["ids"][:5]]).data
    assert by_ids[0].embedding == floats and by_ids[1].embedding != floats
    short = oai.embeddings.create(model=EMBED, input=case["text"], dimensions=128).data[0].embedding
    norm = sum(x * x for x in floats[:128]) ** 0.5
    assert len(short) == 128 and max(abs(a - b / norm) for a, b in zip(short, floats)) < 1e-6


def test_langchain_and_ollama_clients(both, cases):
    # LangChain counts tokens with OpenAI's tokenizer unless told not to (this model has its own).
    lc = OpenAIEmbeddings(model=EMBED, base_url=both.url + "/v1", api_key="unused",
                          check_embedding_ctx_length=False)
    docs = lc.embed_documents([c["text"] for c in cases[:3]])
    query = lc.embed_query(cases[1]["text"])
    assert len(docs) == 3 and cosine(docs[1], query) > 0.99999
    assert all(cosine(d, c["llama"]) >= 0.999 for d, c in zip(docs, cases))
    oc = ollama.Client(host=both.url, timeout=180)
    r = oc.embed(model=EMBED, input=[cases[0]["text"], cases[2]["text"]])
    assert len(r.embeddings) == 2 and r.prompt_eval_count == len(cases[0]["ids"]) + len(cases[2]["ids"])
    assert cosine(r.embeddings[0], cases[0]["llama"]) >= 0.999
    legacy = oc.embeddings(model=EMBED, prompt=cases[0]["text"])
    assert cosine(legacy.embedding, r.embeddings[0]) > 0.99999
    assert {m.model for m in oc.list().models} == {MODEL, EMBED, RERANK}


def test_bad_requests_get_clear_errors(both, oai):
    def refused(body, status, needle):
        got, _, answer = request(both, "POST", "/v1/embeddings", body)
        assert got == status and needle in answer["error"]["message"], (body, answer)
        return answer["error"]

    refused({"model": EMBED, "input": ""}, 400, "empty")
    refused({"model": EMBED, "input": []}, 400, "empty")
    refused({"model": EMBED, "input": [[]]}, 400, "empty")
    refused({"model": EMBED, "input": ["a"] * 2049}, 400, "more than 2048")
    refused({"model": EMBED, "input": "a", "encoding_format": "int8"}, 400, "encoding_format")
    refused({"model": EMBED, "input": "a", "dimensions": 0}, 400, "between 1 and 384")
    refused({"model": EMBED, "input": "a", "dimensions": 385}, 400, "between 1 and 384")
    refused({"model": EMBED, "input": [[101, 30522, 102]]}, 400, "outside the 30522-token vocabulary")
    refused({"model": EMBED, "input": {"text": "a"}}, 400, "input")
    err = refused({"model": EMBED, "input": "word " * 600}, 400, "maximum context length is 512")
    assert err["code"] == "context_length_exceeded"
    refused({"model": MODEL, "input": "a"}, 400, "does not produce embeddings")
    refused({"model": RERANK, "input": "a"}, 400, "this is a reranker")
    refused({"model": "no-such-model", "input": "a"}, 404, "not served")
    # The chat model still answers, and refuses to be confused with the embedding model.
    r = oai.chat.completions.create(model=MODEL, max_tokens=4, temperature=0,
                                    messages=[{"role": "user", "content": "Hi"}])
    assert r.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="embedding model"):
        oai.chat.completions.create(model=EMBED, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    status, _, ready = request(both, "GET", "/ready")
    assert status == 200 and ready["model"] == MODEL and ready["embedding_models"][0]["model"] == EMBED


def test_inputs_never_reach_the_log(both, oai):
    secret = "Jane Roe MRN 5550123 HIV status"
    oai.embeddings.create(model=EMBED, input=[secret])
    assert "5550123" not in both.log_text()


def test_models_say_what_they_serve(both, oai):
    # The chat page offers only the chat model; other clients can tell them apart too.
    got = {m.id: m.capabilities for m in oai.models.list().data}
    assert got == {MODEL: ["chat", "completion"], EMBED: ["embedding"], RERANK: ["rerank"]}


def test_an_embedding_model_alone(cases):
    s = Server("--model", EMBED)
    try:
        status, _, ready = request(s, "GET", "/ready")
        assert status == 200 and ready["embedding_models"][0]["model"] == EMBED
        # Without `model`, the only embedding model served.
        status, _, body = request(s, "POST", "/v1/embeddings", {"input": cases[0]["text"]})
        assert status == 200 and cosine(body["data"][0]["embedding"], cases[0]["llama"]) >= 0.999
        status, _, body = request(s, "POST", "/v1/chat/completions",
                                  {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})
        assert status == 404
        status, _, body = request(s, "GET", "/v1/models")
        assert [m["id"] for m in body["data"]] == [EMBED]
    finally:
        assert s.stop() == 0, s.log_text()


def test_a_decoder_embedding_model(tmp_path):
    """Qwen3-Embedding's path (a decoder with last-token pooling), on the random-weight model of
    its layout that llama.cpp embedded for the fixture."""
    with open(os.path.join(FIXTURES, "embeddings-random-tiny-qwen3-embedding.json"), encoding="utf-8") as f:
        fx = json.load(f)
    binary = os.environ.get("WARD_BIN", os.path.join(ROOT, "target", "release", "ward"))
    path = tmp_path / "tiny-qwen3-embedding.gguf"
    subprocess.run([binary, "synth", fx["shape"], "--seed", str(fx["seed"]), "--out", str(path),
                    "--vocab", os.path.join(ROOT, "models", fx["vocab"])], check=True, capture_output=True)
    s = Server("--model", str(path))
    try:
        oai = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=180)
        cases = fx["cases"][:6]
        r = oai.embeddings.create(model="tiny-qwen3-embedding", input=[c["text"] for c in cases])
        assert r.usage.prompt_tokens == sum(len(c["ids"]) for c in cases)
        for case, d in zip(cases, r.data):
            assert cosine(d.embedding, case["llama"]) >= 0.999, case["text"]
    finally:
        assert s.stop() == 0, s.log_text()


def test_xlm_roberta_embeddings_and_reranker():
    """bge-m3's and bge-reranker-v2-m3's architecture (XLM-RoBERTa, SentencePiece's unigram
    tokenizer) on the random-weight test models, served side by side without a chat model."""
    with open(os.path.join(FIXTURES, "xlmr-random-test.json"), encoding="utf-8") as f:
        cases = json.load(f)["embeddings"]
    with open(os.path.join(FIXTURES, "rerank-xlmr.json"), encoding="utf-8") as f:
        pairs = json.load(f)["cases"]
    s = Server("--model", "xlmr-random-test", "--model", "xlmr-rerank-test")
    try:
        oai = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=180)
        r = oai.embeddings.create(model="xlmr-random-test", input=[c["text"] for c in cases])
        assert r.usage.prompt_tokens == sum(len(c["ids"]) for c in cases)
        for case, d in zip(cases, r.data):
            assert len(d.embedding) == 64 and cosine(d.embedding, case["llama"]) >= 0.999, case["text"]
        query = pairs[0]["query"]
        mine = [c for c in pairs if c["query"] == query]
        status, _, body = request(s, "POST", "/v1/rerank", {
            "model": "xlmr-rerank-test", "query": query, "documents": [c["document"] for c in mine]})
        assert status == 200, body
        for got in body["results"]:
            assert abs(got["relevance_score"] - mine[got["index"]]["llama"]) < 2e-3
        assert body["usage"]["prompt_tokens"] == sum(len(c["ids"]) for c in mine)
    finally:
        assert s.stop() == 0, s.log_text()


def test_rerank_scores_and_orders_documents(both):
    with open(os.path.join(FIXTURES, "rerank-minilm.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    query = cases[0]["query"]
    mine = [c for c in cases if c["query"] == query]
    docs = [c["document"] for c in mine]
    status, _, body = request(both, "POST", "/v1/rerank", {"model": RERANK, "query": query, "documents": docs})
    assert status == 200, body
    results = body["results"]
    assert [r["relevance_score"] for r in results] == sorted((r["relevance_score"] for r in results), reverse=True)
    assert sorted(r["index"] for r in results) == list(range(len(docs)))
    for r in results:
        assert abs(r["relevance_score"] - mine[r["index"]]["llama"]) < 2e-3
        assert r["document"]["text"] == docs[r["index"]]
    assert body["usage"]["prompt_tokens"] == sum(len(c["ids"]) for c in mine)
    # top_n, documents as objects, no texts back; the other paths of the same route.
    for path in ("/v2/rerank", "/rerank"):
        status, _, top = request(both, "POST", path, {
            "model": RERANK, "query": query, "documents": [{"text": d} for d in docs],
            "top_n": 2, "return_documents": False})
        assert status == 200 and [r["index"] for r in top["results"]] == [r["index"] for r in results[:2]]
        assert "document" not in top["results"][0]


def test_rerank_refuses_what_it_cannot_score(both):
    def refused(body, status, needle):
        got, _, answer = request(both, "POST", "/v1/rerank", body)
        assert got == status and needle in answer["error"]["message"], (body, answer)

    refused({"model": RERANK, "query": "q", "documents": []}, 400, "between 1 and 2048")
    refused({"model": RERANK, "query": "", "documents": ["d"]}, 400, "'query' must not be empty")
    refused({"model": RERANK, "query": "q", "documents": ["d", ""]}, 400, "empty text")
    refused({"model": RERANK, "query": "q", "documents": ["d"], "top_n": 0}, 400, "top_n")
    refused({"model": RERANK, "query": "q " * 300, "documents": ["d " * 300]}, 400, "maximum context length")
    refused({"model": EMBED, "query": "q", "documents": ["d"]}, 400, "this is an embedding model")
    refused({"model": MODEL, "query": "q", "documents": ["d"]}, 400, "generates text")
    refused({"model": RERANK, "query": "q", "documents": "d"}, 400, "documents")
