"""llama.cpp's logits for Ward's random-weight models of the real layouts (written by `ward synth`
with a real vocabulary), for crates/models/tests/random_models.rs: Qwen3 (wide heads, Q/K norms)
and Llama 3.1 (RoPE frequency factors). The test writes the same file again, checks its sha256
against the one recorded here, and holds Ward's logits to llama.cpp's, teacher-forced.

Run through make-fixtures.sh (which builds ward and fetches the vocabularies); writes
fixtures/logits-random-<shape>.json in the format of reference.py's logits fixtures.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import inputs
from reference import OUT, ROOT, continuation, load, token_texts, tokenize

WARD = os.environ.get("WARD_BIN", os.path.join(ROOT, "target", "release", "ward"))
SEED = 11
MODELS = {
    "tiny-qwen3": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "tiny-llama3.1": "llama-3-instruct.vocab.gguf",
}


def synth(shape, vocab, tmp):
    """`ward synth`'s random model `shape` with the vocabulary of models/`vocab`, written into
    the directory `tmp`: its path and sha256."""
    path = os.path.join(tmp, f"{shape}.gguf")
    subprocess.run([WARD, "synth", shape, "--seed", str(SEED), "--out", path,
                    "--vocab", os.path.join(ROOT, "models", vocab)], check=True)
    with open(path, "rb") as f:
        return path, hashlib.sha256(f.read()).hexdigest()


def main():
    for shape, vocab in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path, digest = synth(shape, vocab, tmp)
            llm = load(path, n_ctx=4096)
            cases = []
            # The long note reaches positions where frequency factors turn the slow pairs far.
            for text in inputs.QWEN2_PROMPTS + [inputs.LONG_NOTE]:
                ids = tokenize(llm, text, True)
                cont, tops = continuation(llm, ids)
                cases.append({"prompt": text, "prompt_ids": ids, "continuation": cont,
                              "continuation_text": token_texts(llm, cont), "top5": tops})
                print(f"{shape}: {len(ids)} prompt tokens -> {cont[:8]}…", file=sys.stderr)
            del llm
        with open(os.path.join(OUT, f"logits-random-{shape}.json"), "w") as f:
            json.dump({"shape": shape, "seed": SEED, "vocab": vocab, "sha256": digest,
                       "llama_cpp_python": __import__("llama_cpp").__version__, "cases": cases},
                      f, ensure_ascii=False)


if __name__ == "__main__":
    main()
