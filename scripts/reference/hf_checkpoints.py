"""Oracles for the Hugging Face checkpoints of models/registry.toml ([[checkpoint]], built by
scripts/fetch-models.sh into models/hf/): what transformers makes of each, and what llama.cpp's
converter writes for it. Writes fixtures/hf-<name>.json, read by
crates/models/tests/hf_checkpoints.rs.

Needs torch and transformers (CPU wheels), which the reference venv has not got: run it with a
python that has them, and with LLAMA_CPP_CONVERTER naming llama.cpp's convert_hf_to_gguf.py
(its gguf-py beside it):

    LLAMA_CPP_CONVERTER=/path/to/llama.cpp/convert_hf_to_gguf.py \
        /path/to/python-with-torch scripts/reference/hf_checkpoints.py

Per checkpoint:
  tokens   transformers' ids for each text of inputs.TOKENIZER_STRINGS (no special tokens added,
           then as the tokenizer adds them)
  logits   transformers' float32 logits over a chat prompt (CHAT): at every position the top 8
           and the logits of 16 fixed ids, and the greedy continuation of 8 tokens (ids, text)
  lora     for each adapter of it ([[checkpoint]] with adapter_of), the same logits of PEFT's
           merge_and_unload() in float32
  convert  sha256 and size of the converter's GGUF for each --outtype, run with the directory's
           name as general.name (what Ward names it)

A second pass runs llama.cpp itself on those GGUF files (as `ward convert` writes them, which the
Rust tests hold byte for byte equal to the converter's), under a python that has llama_cpp (the
reference venv):

    .venv-reference/bin/python scripts/reference/hf_checkpoints.py --llama-cpp

  llama_cpp        llama.cpp's logits over the same prompt, per output type, in the same form
  llama_quantize   sha256 and size of llama-quantize's output for each of its mixes
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
LLAMA_CPP_PASS = sys.argv[1:] == ["--llama-cpp"]
if not LLAMA_CPP_PASS:
    # This directory's tokenizers.py would stand in for the tokenizers package transformers needs.
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
    import tokenizers  # noqa: E402,F401
    import torch  # noqa: E402
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

    sys.path.insert(0, HERE)
    from inputs import TOKENIZER_STRINGS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
CHAT = [{"role": "system", "content": "You are a careful clinical assistant."},
        {"role": "user", "content": "Summarise: 68-year-old, HbA1c 8.2%, eGFR 41, on metformin 1 g bid."}]
OUTTYPES = ["bf16", "f16", "f32", "q8_0"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def logits_fixture(model, tok):
    prompt = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True)
    if not isinstance(prompt, list):  # transformers 5 returns a BatchEncoding
        prompt = prompt["input_ids"]
    n_vocab = model.config.vocab_size
    probe = [(i * 7919) % n_vocab for i in range(16)]
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0].float()
        greedy = model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False,
                                pad_token_id=0)[0][len(prompt):].tolist()
    positions = []
    for row in logits:
        top = torch.topk(row, 8)
        positions.append({"top": [[int(i), float(v)] for v, i in zip(top.values, top.indices)],
                          "probe": [float(row[i]) for i in probe]})
    return {"prompt": prompt, "probe_ids": probe, "positions": positions, "greedy": greedy,
            "greedy_text": tok.decode(greedy)}


def convert(converter, directory):
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(converter), "gguf-py"))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        meta = os.path.join(tmp, "metadata.json")
        with open(meta, "w") as f:
            json.dump({"general.name": os.path.basename(directory)}, f)
        for outtype in OUTTYPES:
            path = os.path.join(tmp, f"{outtype}.gguf")
            subprocess.run([sys.executable, converter, directory, "--outtype", outtype,
                            "--metadata", meta, "--outfile", path],
                           check=True, capture_output=True, env=env)
            out[outtype] = {"sha256": sha256(path), "bytes": os.path.getsize(path)}
    return out


def position_logits(rows, probe):
    """Top 8 and the probe ids' logits of each row."""
    out = []
    for row in rows:
        top = sorted(range(len(row)), key=lambda i: -row[i])[:8]
        out.append({"top": [[i, float(row[i])] for i in top], "probe": [float(row[i]) for i in probe]})
    return out


# llama-quantize's mixes (llama_ftype values) checked against `ward convert --type NAME`.
MIXES = {"q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q2_k": 10, "q3_k_s": 11, "q3_k_m": 12,
         "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18}


def quantize_mixes(ward, directory):
    """sha256 and size of llama-quantize's output for each mix, quantizing the BF16 GGUF of the
    checkpoint (as `ward convert` and the converter write it) with no importance matrix."""
    import llama_cpp
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "bf16.gguf")
        subprocess.run([ward, "convert", directory, "--out", src], check=True, capture_output=True)
        for name, ftype in MIXES.items():
            dst = os.path.join(tmp, f"{name}.gguf")
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftype
            params.nthread = 2
            if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params) != 0:
                raise RuntimeError(f"llama-quantize {name} failed")
            out[name] = {"sha256": sha256(dst), "bytes": os.path.getsize(dst)}
    return out


def llama_cpp_pass(registry):
    import numpy as np
    from llama_cpp import Llama
    ward = os.environ.get("WARD_BIN", os.path.join(ROOT, "target", "release", "ward"))
    for entry in [e for e in registry.get("checkpoint", []) if "adapter_of" not in e]:
        path = os.path.join(HERE, "fixtures", f"hf-{entry['name']}.json")
        with open(path) as f:
            fixture = json.load(f)
        lx = fixture["logits"]
        fixture["llama_cpp"] = {}
        for outtype in ["bf16", "q8_0"]:
            with tempfile.TemporaryDirectory() as tmp:
                gguf = os.path.join(tmp, "model.gguf")
                subprocess.run([ward, "convert", os.path.join(ROOT, "models", entry["dir"]),
                                "--out", gguf, "--type", "none" if outtype == "bf16" else outtype],
                               check=True, capture_output=True)
                llm = Llama(model_path=gguf, n_ctx=512, n_batch=512, n_threads=2, seed=0,
                            verbose=False, flash_attn=False, logits_all=True)
                llm.eval(lx["prompt"])
                rows = np.array(llm.scores[:len(lx["prompt"])], dtype=np.float32).tolist()
                fixture["llama_cpp"][outtype] = position_logits(rows, lx["probe_ids"])
                del llm
        fixture["llama_quantize"] = quantize_mixes(ward, os.path.join(ROOT, "models", entry["dir"]))
        with open(path, "w") as f:
            json.dump(fixture, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{path}: llama.cpp logits added", file=sys.stderr)


def main():
    converter = os.environ.get("LLAMA_CPP_CONVERTER")
    with open(os.path.join(ROOT, "models", "registry.toml"), "rb") as f:
        registry = tomllib.load(f)
    if LLAMA_CPP_PASS:
        return llama_cpp_pass(registry)
    entries = registry.get("checkpoint", [])
    for entry in [e for e in entries if "adapter_of" not in e]:
        directory = os.path.join(ROOT, "models", entry["dir"])
        tok = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        fixture = {
            "checkpoint": entry["name"],
            "chat": CHAT,
            "dir": entry["dir"],
            "transformers": __import__("transformers").__version__,
            "torch": torch.__version__,
            "tokens": [{"text": t,
                        "ids": tok.encode(t, add_special_tokens=False),
                        "ids_with_specials": tok.encode(t)} for t in TOKENIZER_STRINGS],
            "logits": logits_fixture(model, tok),
        }
        if converter:
            fixture["convert"] = convert(converter, directory)
        fixture["lora"] = {}
        for adapter in [e for e in entries if e.get("adapter_of") == entry["name"]]:
            from peft import PeftModel
            base = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
            merged = PeftModel.from_pretrained(
                base, os.path.join(ROOT, "models", adapter["dir"])).merge_and_unload().eval()
            fixture["lora"][adapter["name"]] = logits_fixture(merged, tok)
        path = os.path.join(HERE, "fixtures", f"hf-{entry['name']}.json")
        with open(path, "w") as f:
            json.dump(fixture, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{path}: {len(fixture['tokens'])} texts, {len(fixture['logits']['positions'])} positions",
              file=sys.stderr)


if __name__ == "__main__":
    main()
