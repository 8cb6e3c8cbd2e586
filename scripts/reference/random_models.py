"""llama.cpp's logits for Ward's random-weight models of the real layouts (written by `ward synth`),
for crates/models/tests/logits_fixtures.rs: Qwen3 (wide heads, Q/K norms), Llama 3.1 (RoPE
frequency factors), Qwen2.5 (Q/K/V biases) and Gemma 3 (a sliding window far shorter than the
prompts, Q/K norms, post-norms), each in Q8_0 with a real vocabulary; and `tiny`, Llama in
Q4_K_M with its placeholder vocabulary. The test writes the same file again, checks its sha256
against the one recorded here, and holds Ward's logits to llama.cpp's, teacher-forced.

Run through make-fixtures.sh (which builds ward and fetches the vocabularies); writes
fixtures/logits-random-<shape>.json: for the Q8_0 shapes in the format of reference.py's logits
fixtures, for `tiny` every logit at every position of fixed token sequences (random Q4_K bits
make one token win everywhere, so a greedy continuation and its top 5 would say little).
Arguments: shape names, to regenerate only their fixtures.
"""
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile

import inputs
from reference import OUT, ROOT, continuation, last_logits, load, token_texts, tokenize

WARD = os.environ.get("WARD_BIN", os.path.join(ROOT, "target", "release", "ward"))
SEED = 11
QWEN_VOCAB = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
# The long note reaches positions where frequency factors turn the slow pairs far, and runs far
# past Gemma's window.
MODELS = {
    "tiny-qwen3": (QWEN_VOCAB, inputs.QWEN2_PROMPTS + [inputs.LONG_NOTE]),
    "tiny-llama3.1": ("llama-3-instruct.vocab.gguf", inputs.QWEN2_PROMPTS + [inputs.LONG_NOTE]),
    "tiny-qwen2.5": (QWEN_VOCAB, inputs.QWEN2_PROMPTS + [inputs.LONG_NOTE]),
    "tiny-gemma3": ("gemma-3-270m-q4_k_m.gguf", inputs.GEMMA_PROMPTS + [inputs.LONG_NOTE]),
}
# `tiny`: this many sequences of this many random ids from its 300-token vocabulary.
TINY_CASES, TINY_LEN = 3, 40


def synth(shape, vocab, tmp):
    """`ward synth`'s random model `shape` with the vocabulary of models/`vocab` (or its
    placeholder one), written into the directory `tmp`: its path and sha256."""
    path = os.path.join(tmp, f"{shape}.gguf")
    cmd = [WARD, "synth", shape, "--seed", str(SEED), "--out", path]
    if vocab:
        cmd += ["--vocab", os.path.join(ROOT, "models", vocab)]
    subprocess.run(cmd, check=True)
    with open(path, "rb") as f:
        return path, hashlib.sha256(f.read()).hexdigest()


def continuations(llm, shape, prompts):
    cases = []
    for text in prompts:
        ids = tokenize(llm, text, True)
        cont, tops = continuation(llm, ids)
        cases.append({"prompt": text, "prompt_ids": ids, "continuation": cont,
                      "continuation_text": token_texts(llm, cont), "top5": tops})
        print(f"{shape}: {len(ids)} prompt tokens -> {cont[:8]}…", file=sys.stderr)
    return cases


def every_logit(llm, n_vocab):
    """Every logit at every position of random sequences, fed one token at a time."""
    rng = random.Random(SEED)
    cases = []
    for _ in range(TINY_CASES):
        ids = [rng.randrange(n_vocab) for _ in range(TINY_LEN)]
        llm.reset()
        rows = []
        for t in ids:
            llm.eval([t])
            rows.append([round(float(x), 4) for x in last_logits(llm)])
        cases.append({"prompt_ids": ids, "logits": rows})
    return cases


def write(shape, vocab, prompts):
    with tempfile.TemporaryDirectory() as tmp:
        path, digest = synth(shape, vocab, tmp)
        if prompts is None:
            llm = load(path, n_ctx=512)
            cases = every_logit(llm, llm.n_vocab())
        else:
            llm = load(path, n_ctx=4096)
            cases = continuations(llm, shape, prompts)
        del llm
    with open(os.path.join(OUT, f"logits-random-{shape}.json"), "w") as f:
        json.dump({"shape": shape, "seed": SEED, "vocab": vocab, "sha256": digest,
                   "llama_cpp_python": __import__("llama_cpp").__version__, "cases": cases},
                  f, ensure_ascii=False)


def main(names):
    for shape, (vocab, prompts) in list(MODELS.items()) + [("tiny", (None, None))]:
        if not names or shape in names:
            write(shape, vocab, prompts)


if __name__ == "__main__":
    main(sys.argv[1:])
