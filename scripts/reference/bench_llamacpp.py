"""llama.cpp's prefill and decode speed, measured the way `ward bench` measures Ward's:
a prompt of ordinary vocabulary tokens evaluated in one batch, then greedy decode one token at a
time. Prints one JSON line like `ward bench --json`."""
import argparse
import json
import os
import random
import time

import numpy as np
from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--prompt-tokens", type=int, default=512)
ap.add_argument("--gen-tokens", type=int, default=128)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()

llm = Llama(model_path=a.model, n_ctx=a.prompt_tokens + a.gen_tokens + 8, n_batch=512, n_ubatch=512,
            n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
rng = random.Random(1234)
n_vocab = llm.n_vocab()
# llama_token_attr: NORMAL = 1 << 2; skip unknown, unused, control, user-defined and byte tokens.
normal = [i for i in range(n_vocab) if llm._model.token_get_attr(i) & 4 and not llm._model.token_get_attr(i) & 0b111011]
prompt = [rng.choice(normal) for _ in range(a.prompt_tokens)]
t0 = time.perf_counter()
llm.eval(prompt)
prefill = time.perf_counter() - t0
tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))))
t1 = time.perf_counter()
for _ in range(a.gen_tokens):
    llm.eval([tok])
    tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))))
decode = time.perf_counter() - t1
print(json.dumps({"model": os.path.basename(a.model), "threads": a.threads, "engine": "llama.cpp",
                  "prefill_tok_s": a.prompt_tokens / prefill, "decode_tok_s": a.gen_tokens / decode}))
