"""Write the byte-level BPE tokenizer fixtures with llama.cpp (through llama-cpp-python).

Run through make-fixtures.sh (after scripts/fetch-models.sh has built the vocabularies). Outputs,
beside this file in fixtures/, in the format of tokenizer-smollm2.json (a list of {text, ids,
ids_with_special, ids_plain}) for inputs.TOKENIZER_STRINGS + inputs.BPE_TOKENIZER_STRINGS:
  tokenizer-qwen2.json              Qwen2.5-Coder-0.5B-Instruct (tokenizer.ggml.pre = qwen2)
  tokenizer-deepseek-r1-qwen.json   DeepSeek-R1-Distill-Qwen-7B's vocabulary (deepseek-r1-qwen)
  tokenizer-llama3.json             Llama 3 8B Instruct's vocabulary (llama-bpe)
  tokenizer-llama3-as-<pre>.json    Llama 3's vocabulary with tokenizer.ggml.pre changed to
                                    <pre> ("default": removed), for pre-tokenizers no small test
                                    model carries (and to show Qwen2's digit rule, which Qwen's
                                    own vocabulary hides: it has no multi-digit tokens); the
                                    tests make the same change in memory.
"""
import ctypes
import json
import os
import sys
import tempfile

import llama_cpp
from llama_cpp import Llama

import inputs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gguf_header  # noqa: E402  (scripts/gguf_header.py, shared with fetch-models.sh)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(HERE, "fixtures")
MODELS = os.path.join(ROOT, "models")

VOCABS = {
    "qwen2": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "deepseek-r1-qwen": "deepseek-r1-distill-qwen-7b.vocab.gguf",
    "llama3": "llama-3-instruct.vocab.gguf",
}
# Pre-tokenizers tested on Llama 3's vocabulary: name -> tokenizer.ggml.pre (None: no key).
SWAPS = {"qwen2": "qwen2", "qwen35": "qwen35", "deepseek-v3": "deepseek-v3", "default": None}

def header_with_pre(path, pre):
    """A vocabulary-only copy of a GGUF's header with tokenizer.ggml.pre set to `pre` (or
    removed), as bytes."""
    with open(path, "rb") as f:
        version, kvs, alignment = gguf_header.entries(f.read(64 << 20))
    raw = [r for key, r in kvs if key != b"tokenizer.ggml.pre"]
    if pre is not None:
        raw.append(gguf_header.entry("tokenizer.ggml.pre", gguf_header.STRING, pre))
    return gguf_header.vocabulary_file(version, raw, alignment)


def case(llm, text):
    """A fixture case: `text`'s ids with special tokens parsed (as the operator's text is read),
    without and with BOS, and with control tokens read as text (special=False, as a caller's
    text is read), with BOS."""
    data = text.encode("utf-8")
    return {"text": text, "ids": llm.tokenize(data, add_bos=False, special=True),
            "ids_with_special": llm.tokenize(data, add_bos=True, special=True),
            "ids_plain": llm.tokenize(data, add_bos=True, special=False)}


def write(name, path, strings):
    llm = Llama(model_path=path, vocab_only=True, verbose=False)
    cases = [case(llm, s) for s in strings]
    # The tests check that decoding is the exact inverse; say so here first if llama.cpp's own
    # pieces are not. (Straight from llama_token_to_piece: llama-cpp-python's detokenize cuts
    # pieces at 32 bytes.)
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    buf = (ctypes.c_char * 4096)()

    def piece(t):
        return bytes(buf[:llama_cpp.llama_token_to_piece(vocab, t, buf, len(buf), 0, True)])

    for c in cases:
        pieces = b"".join(piece(t) for t in c["ids"])
        if pieces != c["text"].encode("utf-8"):
            print(f"{name}: pieces of {c['text']!r} give {pieces!r}", file=sys.stderr)
    with open(os.path.join(OUT, f"tokenizer-{name}.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    print(f"{name}: {len(cases)} strings", file=sys.stderr)


def main():
    strings = inputs.TOKENIZER_STRINGS + inputs.BPE_TOKENIZER_STRINGS
    for name, file in VOCABS.items():
        write(name, os.path.join(MODELS, file), strings)
    for name, pre in SWAPS.items():
        with tempfile.NamedTemporaryFile(suffix=".gguf") as tmp:
            tmp.write(header_with_pre(os.path.join(MODELS, VOCABS["llama3"]), pre))
            tmp.flush()
            write(f"llama3-as-{name}", tmp.name, strings)


if __name__ == "__main__":
    main()
