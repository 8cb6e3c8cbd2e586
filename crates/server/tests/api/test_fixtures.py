"""llama.cpp's fixtures from scripts/reference, replayed over HTTP: teacher-forced next tokens
and the prompt token count of a rendered chat."""
import json
import os
import sys
import urllib.request

from conftest import MODEL, ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts", "reference"))
import inputs  # noqa: E402  (the oracle's own inputs: the conversations it rendered)


def post(server, path, body):
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def test_teacher_forced_next_tokens_match_llama_cpp(server, smollm2_fixture):
    """Each prefix (prompt + llama.cpp's first i tokens), completed greedily by one token, gives
    llama.cpp's token i. Consecutive prefixes extend each other, so the engine's reuse of the
    previous request's cache keeps this quick; reuse gives the same numbers as a fresh prefill."""
    total, agree, misses = 0, 0, []
    for case in smollm2_fixture["cases"]:
        for i, (token, text) in enumerate(zip(case["continuation"], case["continuation_text"])):
            prompt = case["prompt_ids"] + case["continuation"][:i]
            r = post(server, "/v1/completions", {"model": MODEL, "prompt": prompt, "max_tokens": 1,
                                                 "temperature": 0})
            total += 1
            if r["choices"][0]["text"] == text:
                agree += 1
            else:
                misses.append((case["prompt"][:30], i, text, r["choices"][0]["text"]))
    print(f"teacher-forced over HTTP: {agree}/{total} = {agree / total:.1%}; misses: {misses}")
    assert total == 32 * len(smollm2_fixture["cases"])
    assert agree / total >= 0.95, misses


def test_chat_prompt_tokens_equal_the_reference_rendering(client, smollm2_fixture):
    """usage.prompt_tokens of a chat request = llama.cpp's token count of the conversation as
    jinja2 renders it with the model's template."""
    rendered = [c for c in smollm2_fixture["cases"] if c["prompt"].startswith("<|im_start|>")]
    assert len(rendered) == len(inputs.SMOLLM2_CHATS)
    for chat, case in zip(inputs.SMOLLM2_CHATS, rendered):
        r = client.chat.completions.create(model=MODEL, messages=chat, max_tokens=1, temperature=0)
        assert r.usage.prompt_tokens == len(case["prompt_ids"])
