"""Write Ward's correctness fixtures with llama.cpp (through llama-cpp-python) and jinja2.

Run through make-fixtures.sh, which makes the venv (arguments: model names, to regenerate only
their fixtures). Outputs, beside this file in fixtures/:
  tokenizer-<model>.json  ids for TOKENIZER_STRINGS, with and without BOS, and with control
                          tokens read as plain text
  logits-<model>.json     prompt ids, llama.cpp's 32-token greedy continuation, and its top-5
                          logits at every continuation position
  templates.json          reference renderings of CONVERSATIONS for each chat template
"""
import json
import os
import sys

import jinja2
import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_cpp import Llama

import inputs
from tokenizers import case as tokenizer_case  # scripts/reference/tokenizers.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(HERE, "fixtures")
N_CONT = 32
TOP = 5

MODELS = {
    "smollm2": os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3": os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf"),
    "qwen2": os.path.join(ROOT, "models", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
}
# The tokenizer fixtures of these come from tokenizers.py, with strings of their own.
TOKENIZED_ELSEWHERE = {"qwen2"}


def load(path, n_ctx=2048):
    # Defaults of llama.cpp's CPU path: F16 KV cache; flash attention off so the reference uses
    # the plain softmax(QK)V graph.
    return Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_threads=2, seed=0, verbose=False,
                 flash_attn=False, logits_all=False)


def tokenize(llm, text, add_special):
    return llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)


def last_logits(llm):
    """Logits of the last evaluated token, read from the llama.cpp context itself."""
    ptr = llm._ctx.get_logits_ith(-1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32)


def continuation(llm, prompt_ids):
    """llama.cpp's greedy continuation, one token at a time, with top-5 logits at each step."""
    llm.reset()
    llm.eval(prompt_ids)
    cont, tops = [], []
    for _ in range(N_CONT):
        logits = last_logits(llm)
        order = np.argsort(-logits, kind="stable")[:TOP]
        tops.append([[int(i), float(logits[i])] for i in order])
        tok = int(order[0])
        cont.append(tok)
        llm.eval([tok])
    return cont, tops


def token_texts(llm, ids):
    """Each token's own text as llama.cpp detokenizes it (specials as ""), for tests that
    compare generated text token by token; bytes of a partial character become U+FFFD."""
    return [llm.detokenize([t]).decode("utf-8", errors="replace") for t in ids]


def render(template, messages, add_generation_prompt, bos, eos):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token=bos, eos_token=eos)


def main(names):
    os.makedirs(OUT, exist_ok=True)
    templates = []
    for name, path in MODELS.items():
        if names and name not in names:
            continue
        llm = load(path)
        if name not in TOKENIZED_ELSEWHERE:
            toks = [tokenizer_case(llm, s) for s in inputs.TOKENIZER_STRINGS]
            with open(os.path.join(OUT, f"tokenizer-{name}.json"), "w") as f:
                json.dump(toks, f, ensure_ascii=False, indent=0)

        if name in ("smollm2", "qwen2"):
            plain, chats = {"smollm2": (inputs.SMOLLM2_PROMPTS, inputs.SMOLLM2_CHATS),
                            "qwen2": (inputs.QWEN2_PROMPTS, inputs.QWEN2_CHATS)}[name]
            prompts = [(p, tokenize(llm, p, True)) for p in plain]
            template = llm.metadata["tokenizer.chat_template"]
            for chat in chats:
                text = render(template, chat, True, "", "<|im_end|>")
                prompts.append((text, tokenize(llm, text, False)))
        else:
            prompts = [(p, tokenize(llm, p, True)) for p in inputs.GEMMA_PROMPTS + [inputs.LONG_NOTE]]
        cases = []
        for text, ids in prompts:
            cont, tops = continuation(llm, ids)
            cases.append({"prompt": text, "prompt_ids": ids, "continuation": cont,
                          "continuation_text": token_texts(llm, cont), "top5": tops})
            print(f"{name}: {len(ids)} prompt tokens -> {llm.detokenize(cont)!r}", file=sys.stderr)
        with open(os.path.join(OUT, f"logits-{name}.json"), "w") as f:
            json.dump({"model": os.path.basename(path), "llama_cpp_python": __import__("llama_cpp").__version__,
                       "cases": cases}, f, ensure_ascii=False)

        if name == "smollm2":
            templates.append(("smollm2", template, "", "<|im_end|>"))
        del llm

    if names:
        return
    with open(os.path.join(ROOT, "models", "templates", "gemma3-it.jinja")) as f:
        templates.append(("gemma3-it", f.read(), "<bos>", "<eos>"))
    rendered = []
    for tname, source, bos, eos in templates:
        for i, conv in enumerate(inputs.CONVERSATIONS):
            for agp in (True, False):
                rendered.append({"template": tname, "messages": conv, "add_generation_prompt": agp,
                                 "bos_token": bos, "eos_token": eos,
                                 "rendered": render(source, conv, agp, bos, eos)})
    with open(os.path.join(OUT, "templates.json"), "w") as f:
        json.dump({"templates": {t[0]: t[1] for t in templates}, "cases": rendered}, f, ensure_ascii=False, indent=0)


if __name__ == "__main__":
    # Model names to regenerate only their fixtures (templates.json needs a full run).
    main(sys.argv[1:])
