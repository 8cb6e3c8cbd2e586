"""llama.cpp against itself: the fixtures' logits come from one-token-at-a-time greedy decoding;
this replays each case teacher-forced in batches (another of llama.cpp's own code paths) and
reports how far llama.cpp's logits move. Ward's tolerances in
crates/models/tests/logits_fixtures.rs are set against these figures.

    .venv-reference/bin/python scripts/reference/noise_floor.py smollm2 models/SmolLM2-135M-Instruct.Q4_1.gguf 512
"""
import json, os, sys

import numpy as np
from llama_cpp import Llama
name, path = sys.argv[1], sys.argv[2]
fx = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", f"logits-{name}.json")))
llm = Llama(model_path=path, n_ctx=2048, n_batch=int(sys.argv[3]), n_ubatch=int(sys.argv[3]), n_threads=2, verbose=False, logits_all=True, flash_attn=False)
worst_abs = worst_margin = 0; diffs=[]; agree=tot=0
for c in fx["cases"]:
    toks = c["prompt_ids"] + c["continuation"][:-1]
    llm.reset(); llm.eval(toks)
    n = len(c["prompt_ids"])
    for i, top in enumerate(c["top5"]):
        row = np.array(llm.scores[n - 1 + i])
        want = c["continuation"][i]
        worst_margin = max(worst_margin, row.max() - row[want])
        for tid, l in top:
            d = abs(row[tid] - l); diffs.append(d); worst_abs = max(worst_abs, d)
        tot += 1; agree += int(np.argmax(row) == want)
print(name, "batch", sys.argv[3], "worst |logit diff|", round(worst_abs,3), "mean", round(float(np.mean(diffs)),3), "worst margin", round(worst_margin,3), "argmax agree", agree, "/", tot)
