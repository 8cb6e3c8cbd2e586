#!/usr/bin/env python3
"""Write the fuzz targets' seed inputs into fuzz/seeds/TARGET/ (small, committed; see
fuzz_targets/*.rs for each target's input format). Rerun after changing a format; files of
other names there (inputs that once crashed a target) are left alone.

    python3 fuzz/make-seeds.py
"""
import hashlib, json, os, struct, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "scripts"))
import gguf_header as gh  # noqa: E402

seeds = os.path.join(root, "fuzz", "seeds")


def write(target, name, data):
    os.makedirs(os.path.join(seeds, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(seeds, target, name), "wb") as f:
        f.write(data)


# ---- gguf: tiny models of each architecture, loadable end to end ------------------------------
F32, Q8_0 = 0, 8


def tensor_bytes(ty, dims, seed):
    n = 1
    for d in dims:
        n *= d
    vals = [((i * 7919 + seed * 104729) % 200 - 100) / 400 for i in range(n)]
    if ty == F32:
        return struct.pack(f"<{n}f", *vals)
    out = b""  # Q8_0: blocks of 32, an f16 scale and 32 int8
    for b in range(0, n, 32):
        out += struct.pack("<e", 0.01) + bytes((v * 400) & 0xFF for v in range(b % 97, b % 97 + 32))
    return out


def gguf(metadata, tensors):
    """metadata: raw entries; tensors: (name, dims, type)."""
    infos, data = b"", b""
    for i, (name, dims, ty) in enumerate(tensors):
        body = tensor_bytes(ty, dims, i)
        nb = name.encode()
        infos += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims))
        infos += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, len(data))
        data += body + b"\0" * (-len(body) % 32)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)) + b"".join(metadata) + infos
    return head + b"\0" * (-len(head) % 32) + data


def bpe_vocab(pre):
    # Byte-level BPE: a few printable byte characters, a merge, and special tokens.
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + list("abcdeĠĊ") + ["ab", "Ġa"]
    types = [3, 3, 3] + [1] * (len(tokens) - 3)
    return [
        gh.entry("tokenizer.ggml.model", gh.STRING, "gpt2"),
        gh.entry("tokenizer.ggml.pre", gh.STRING, pre),
        gh.entry("tokenizer.ggml.tokens", gh.ARRAY, (gh.STRING, tokens)),
        gh.entry("tokenizer.ggml.token_type", gh.ARRAY, (gh.I32, types)),
        gh.entry("tokenizer.ggml.merges", gh.ARRAY, (gh.STRING, ["a b", "Ġ a"])),
        gh.entry("tokenizer.ggml.bos_token_id", gh.U32, 0),
        gh.entry("tokenizer.ggml.eos_token_id", gh.U32, 2),
    ], len(tokens)


def spm_vocab():
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "▁", "a", "b",
              "▁a", "ab"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [3, 3, 3, 2, 3, 3] + [1] * 5 + [6] * 256
    return [
        gh.entry("tokenizer.ggml.model", gh.STRING, "llama"),
        gh.entry("tokenizer.ggml.tokens", gh.ARRAY, (gh.STRING, tokens)),
        gh.entry("tokenizer.ggml.token_type", gh.ARRAY, (gh.I32, types)),
        gh.entry("tokenizer.ggml.scores", gh.ARRAY, (gh.F32, [-float(i) for i in range(len(tokens))])),
        gh.entry("tokenizer.ggml.bos_token_id", gh.U32, 2),
        gh.entry("tokenizer.ggml.eos_token_id", gh.U32, 1),
        gh.entry("tokenizer.ggml.add_space_prefix", gh.BOOL, False),
    ], len(tokens)


def model(arch, vocab, d, ff, ty, extra_keys=(), per_layer=(), biases=False):
    meta, n_vocab = vocab
    heads, kv, hd = 2, 1, d // 2
    p = lambda k: f"{arch}.{k}"  # noqa: E731
    meta = [gh.entry("general.architecture", gh.STRING, arch),
            gh.entry(p("block_count"), gh.U32, 1),
            gh.entry(p("embedding_length"), gh.U32, d),
            gh.entry(p("feed_forward_length"), gh.U32, ff),
            gh.entry(p("attention.head_count"), gh.U32, heads),
            gh.entry(p("attention.head_count_kv"), gh.U32, kv),
            gh.entry(p("context_length"), gh.U32, 64),
            gh.entry(p("attention.layer_norm_rms_epsilon"), gh.F32, 1e-6)] + list(extra_keys) + meta
    t = [("token_embd.weight", [d, n_vocab], ty), ("output_norm.weight", [d], F32)]
    b = lambda n: f"blk.0.{n}.weight"  # noqa: E731
    t += [(b("attn_norm"), [d], F32), (b("attn_q"), [d, heads * hd], ty), (b("attn_k"), [d, kv * hd], ty),
          (b("attn_v"), [d, kv * hd], ty), (b("attn_output"), [heads * hd, d], ty),
          (b("ffn_norm"), [d], F32), (b("ffn_gate"), [d, ff], ty), (b("ffn_up"), [d, ff], ty),
          (b("ffn_down"), [ff, d], ty)]
    t += [(b(n), dims, F32) for n, dims in per_layer]
    if biases:
        t += [(f"blk.0.attn_{x}.bias", [n], F32) for x, n in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd))]
    return gguf(meta, t)


write("gguf", "tiny-llama-f32.gguf", model("llama", bpe_vocab("llama-bpe"), 8, 16, F32))
write("gguf", "tiny-llama-q8_0.gguf", model("llama", bpe_vocab("smollm"), 32, 32, Q8_0))
write("gguf", "tiny-qwen2-bias.gguf", model("qwen2", bpe_vocab("qwen2"), 8, 16, F32, biases=True))
write("gguf", "tiny-qwen3.gguf", model("qwen3", bpe_vocab("qwen2"), 8, 16, F32,
                                       per_layer=[("attn_q_norm", [4]), ("attn_k_norm", [4])]))
write("gguf", "tiny-gemma3-spm.gguf", model(
    "gemma3", spm_vocab(), 8, 16, F32,
    extra_keys=[gh.entry("gemma3.attention.sliding_window", gh.U32, 4)],
    per_layer=[("attn_q_norm", [4]), ("attn_k_norm", [4]), ("post_attention_norm", [8]),
               ("post_ffw_norm", [8])]))
write("gguf", "vocab-only.gguf", gh.vocabulary_file(3, bpe_vocab("gpt-2")[0] + [
    gh.entry("tokenizer.chat_template", gh.STRING, "{% for m in messages %}{{ m.content }}{% endfor %}")]))

# ---- tokenizer: a byte choosing vocabulary and mode (see tokenizer.rs), then text or ids ------
texts = [
    "The patient's BP is 120/80 mmHg; HR 72 bpm.",
    "  leading spaces,\ttabs\nand\r\nnewlines  ",
    "<|im_start|>user\nWhat is sepsis?<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nhi<end_of_turn>\n<bos><eos>",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nx<|eot_id|>",
    "<｜User｜>hi<｜Assistant｜><think>\n",
    "1234567890 3.14159 -42 1e10 0x1F",
    "naïve café Ærø 東京 Привет مرحبا 🩺💊 👩‍⚕️",
    "\U0010FFFD12\U0010FFFD and \U0010FFFD\U0010FFFD and ▁▁ spaces",
    "don't I'll we've THEY'RE it's",
]
for i, text in enumerate(texts):
    write("tokenizer", f"text-{i}", bytes([i % 5 | (0x40 if i % 2 else 0) | (i % 8) << 3 & 0x38]) + text.encode())
for v in range(5):
    ids = [0, 1, 2, 100, 1000, 9999, 0x7FFFFFFF, 0xFFFFFFFF, 220, 128000, 151643]
    write("tokenizer", f"ids-{v}", bytes([0x80 | v]) + b"".join(struct.pack("<I", i) for i in ids))

# ---- template: a byte choosing the template (see template.rs), Unix time, the JSON (or, with
# the byte's top two bits set, template source) -----------------------------------------------
# Template order: models/templates/*.jinja sorted, then the test models' own (SmolLM2,
# Qwen2.5-Coder, the DeepSeek-R1-Qwen vocabulary).
jinja = sorted(f[:-6] for f in os.listdir(os.path.join(root, "models", "templates")) if f.endswith(".jinja"))
fx = json.load(open(os.path.join(root, "scripts", "reference", "fixtures", "templates-families.json")))
now = struct.pack("<I", fx["now"])
picked = {}
for case in fx["cases"]:
    key = (case["template"], case["conversation"])
    if case["template"] in jinja and key not in picked and len(picked) < 40:
        picked[key] = case
chosen = sorted(picked.values(), key=lambda c: (c["conversation"], c["template"]))
conversations = {}
for case in chosen:
    conversations.setdefault(case["conversation"], case)
for i, (name, case) in enumerate(sorted(conversations.items())):
    messages = [{"role": m["role"], "content": m.get("content") or "", **{k: m[k] for k in
                ("tool_calls", "tool_call_id", "reasoning_content") if k in m}} for m in case["messages"]]
    body = json.dumps({"messages": messages, "tools": case["tools"], "kwargs": case["kwargs"]},
                      ensure_ascii=False, separators=(",", ":"))
    # Each conversation through another template (ten in all), some as a trusted caller's.
    head = i % 10 | (0x20 if i % 3 == 2 else 0)
    write("template", f"conv-{name}", bytes([head]) + now + body.encode())
for i, src in enumerate([
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}{% if not loop.last %}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    "{{ bos_token }}{{ tools | tojson(indent=2) }}{{ strftime_now('%d %b %Y %H:%M') }}"
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}",
    "{% set x = messages | map(attribute='content') | join(', ') %}{{ x.upper().split(',') }}"
    "{{ messages[-1].content[::-1] }}{{ '%s' | format(eos_token) }}{{ (1, 2) | list | length }}",
]):
    write("template", f"source-{i}", bytes([0xC0]) + now + src.encode())
for name in ("qwen3", "llama3.1-instruct"):
    with open(os.path.join(root, "models", "templates", f"{name}.jinja"), "rb") as f:
        write("template", f"source-{name}", bytes([0xC0]) + now + f.read())

# ---- request: bodies for both routes; SECRET wherever a caller writes text --------------------
requests = [
    {"model": "m", "messages": [{"role": "system", "content": "SECRET system"},
                                {"role": "user", "content": "SECRET question"}],
     "max_tokens": 128, "temperature": 0, "seed": 42, "stop": ["SECRET", "\n\n"], "n": 2},
    {"model": "SECRET", "prompt": "SECRET prompt", "max_tokens": 32, "logprobs": 3,
     "stop": "SECRET", "stream": True, "stream_options": {"include_usage": True}},
    {"model": "m", "prompt": [1, 2, 3], "logit_bias": {"50256": -100, "SECRET": 5}, "top_k": 40,
     "min_p": 0.05, "repetition_penalty": 1.1, "frequency_penalty": 0.5, "presence_penalty": -0.5,
     "stop_token_ids": [2], "ignore_eos": True, "cache_salt": "SECRET", "best_of": 1},
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "SECRET"}]},
                                {"role": "assistant", "content": None, "reasoning_content": "SECRET",
                                 "tool_calls": [{"id": "SECRET", "type": "function", "function": {
                                     "name": "lookup", "arguments": "{\"q\": \"SECRET\"}"}}]},
                                {"role": "tool", "tool_call_id": "SECRET", "content": "SECRET"}],
     "tools": [{"type": "function", "function": {"name": "lookup", "description": "SECRET",
                                                 "parameters": {"type": "object", "properties": {
                                                     "q": {"type": "string", "description": "SECRET"}},
                                                     "required": ["q"]}}}],
     "tool_choice": {"type": "function", "function": {"name": "lookup"}},
     "chat_template_kwargs": {"enable_thinking": False, "SECRET": "SECRET"}},
    {"model": "m", "messages": [{"role": "developer", "content": "SECRET"}], "logprobs": True,
     "top_logprobs": 5, "response_format": {"type": "json_schema", "json_schema": {"name": "SECRET",
     "schema": {"type": "object", "properties": {"SECRET": {"enum": ["SECRET", 1, None]}},
                "required": ["SECRET"], "$defs": {"d": {"const": "SECRET"}}}}}},
    {"model": "m", "messages": [{"role": "user", "content": "SECRET"}],
     "response_format": {"type": "json_object"}, "tools": [], "tool_choice": "auto", "top_p": 0.9},
]
for i, body in enumerate(requests):
    write("request", f"body-{i}.json", json.dumps(body, ensure_ascii=False))

# ---- json_schema: a schema, NUL, a document ---------------------------------------------------
pairs = [
    ({"type": "object"}, '{"a": [1, -2.5e3, 0, "x\\n\\u00e9", true, false, null, {"b": {}}], "c": []}'),
    ({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                       "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 2},
                                       "note": {"type": ["string", "null"]}, "ok": {"type": "boolean"}},
      "required": ["name", "age"]}, '{"age":3,"name":"B","tags":["x","y"],"note":null,"ok":false}'),
    ({"$defs": {"dose": {"type": "object", "properties": {"mg": {"type": "number"}}, "required": ["mg"]}},
      "type": "object", "properties": {"kind": {"const": "dose"}, "dose": {"$ref": "#/$defs/dose"},
                                       "level": {"enum": [1, 12, "high"]}}, "required": ["kind", "dose"]},
     '{"kind":"dose","dose":{"mg":2.5},"level":12}'),
    ({"type": "object", "properties": {"v": {"anyOf": [{"type": "object", "additionalProperties": False},
                                                      {"type": "null"}, {"type": "array", "minItems": 1}]}}},
     '{\n  "v": [\n    {"é": "€"}\n  ]\n}'),
    ({"type": "object", "properties": {"name": {"const": "lookup"}, "arguments": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
      "required": ["name", "arguments"]}, '{"name": "lookup", "arguments": {"q": "BP \\"high\\""}}'),
]
for i, (schema, doc) in enumerate(pairs):
    write("json_schema", f"pair-{i}", json.dumps(schema).encode() + b"\0" + doc.encode())

# ---- audit_verify: PATH, NUL, PATH.1, NUL, PATH.2, NUL, PATH.3, NUL, checkpoints -----------
# Sealed as crates/server/src/audit/seal.rs seals: a compact JSON body ending with seq, epoch
# (keyed logs) and prev, then "mac": HMAC-SHA256 of the body under the key of its epoch (the
# target's key is 32 bytes of 7), or plain sha256 unkeyed. The key evolves after a checkpoint.
import hmac  # noqa: E402

KEY0 = bytes([7] * 32)
GENESIS = "0" * 64


def evolve(key):
    return hmac.new(key, b"ward-audit-evolve", hashlib.sha256).digest()


def seal(entry, seq, prev, key=None, epoch=None):
    body = dict(entry, seq=seq)
    if key is not None:
        body["epoch"] = epoch
    body["prev"] = prev
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    mac = (hmac.new(key, text.encode(), hashlib.sha256) if key else hashlib.sha256(text.encode())).hexdigest()
    return text[:-1] + f',"mac":"{mac}"}}', mac


def log(n, keyed, checkpoint_after=None):
    lines, cps, prev, key, epoch = [], [], GENESIS, (KEY0 if keyed else None), 0
    for seq in range(n):
        entry = {"time": "2026-11-29T02:38:09.123Z", "event": "open"} if seq == 0 else {
            "time": "2026-11-29T02:38:10.000Z", "event": "request", "request_id": f"r{seq}",
            "status": 200, "prompt_sha256": "ab" * 32}
        line, prev = seal(entry, seq, prev, key, epoch)
        lines.append(line)
        if keyed and seq == checkpoint_after:
            cp = {"time": "2026-11-29T02:39:09.000Z", "log": "/var/log/ward/audit.log",
                  "entries": seq + 1, "head_seq": seq, "head": prev}
            cps.append(seal(cp, len(cps), cps[-1][1] if cps else GENESIS, key, epoch))
            key, epoch = evolve(key), epoch + 1
    return lines, "".join(c + "\n" for c, _ in cps)


def files(path, rotated=(), checkpoints=""):
    pieces = [path] + list(rotated) + [""] * (3 - len(rotated)) + [checkpoints]
    return "\0".join(pieces)


keyed, cps = log(6, True, checkpoint_after=2)
text = lambda lines: "".join(l + "\n" for l in lines)  # noqa: E731
write("audit_verify", "keyed-checkpointed", files(text(keyed), checkpoints=cps))
write("audit_verify", "keyed-rotated", files(text(keyed[4:]), [text(keyed[:4])], cps))
write("audit_verify", "keyed-torn", files(text(keyed) + keyed[0][:40], checkpoints=cps))
write("audit_verify", "keyed-edited", files(text(keyed).replace("r3", "rX"), checkpoints=cps))
unkeyed, _ = log(4, False)
write("audit_verify", "unkeyed", files(text(unkeyed)))
write("audit_verify", "unkeyed-retention-gap", files(text(unkeyed[2:]), ["", text(unkeyed[:2])]))

# ---- dictionaries: words libFuzzer splices into inputs (fuzz/dicts/TARGET.dict) ----------------
def dict_file(target, words):
    os.makedirs(os.path.join(root, "fuzz", "dicts"), exist_ok=True)
    def quote(w):
        return '"' + "".join(c if 0x20 <= ord(c) < 0x7f and c not in '"\\' else
                             "".join(f"\\x{b:02x}" for b in c.encode()) for c in w) + '"'
    with open(os.path.join(root, "fuzz", "dicts", f"{target}.dict"), "w") as f:
        f.write(f"# {target}: written by fuzz/make-seeds.py\n")
        f.writelines(quote(w) + "\n" for w in dict.fromkeys(words))


json_words = ["{", "}", "[", "]", ",", ":", '"', '\\"', "\\u", "\\ud83e\\udd7a", "true", "false",
              "null", "-0", "1e99", "-2.5E-07", "0.5", '""', "{}", "[]"]
schema_words = ["type", "object", "array", "string", "number", "integer", "boolean", "properties",
                "required", "items", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "$ref",
                "#/$defs/", "$defs", "definitions", "additionalProperties"]
dict_file("json_schema", json_words + [f'"{w}"' for w in schema_words] + ["\0"])
request_words = ["model", "messages", "prompt", "role", "content", "system", "developer", "user",
                 "assistant", "tool", "text", "type", "stream", "stream_options", "include_usage",
                 "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p",
                 "repetition_penalty", "frequency_penalty", "presence_penalty", "seed", "stop", "n",
                 "logprobs", "top_logprobs", "logit_bias", "stop_token_ids", "ignore_eos",
                 "response_format", "json_object", "json_schema", "schema", "tools", "tool_choice",
                 "function", "name", "parameters", "arguments", "tool_calls", "tool_call_id",
                 "reasoning_content", "chat_template_kwargs", "enable_thinking", "echo", "suffix",
                 "best_of", "cache_salt", "auto", "required", "none", "SECRET"]
dict_file("request", json_words + [f'"{w}"' for w in request_words + schema_words])
template_words = ["{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "for", "in", "endfor", "if",
                  "elif", "else", "endif", "set", "loop.index0", "loop.last", "messages", "tools",
                  "add_generation_prompt", "bos_token", "eos_token", "|tojson", "|trim", "|length",
                  "|join", "|map", "|selectattr", "|list", "|reverse", "raise_exception(",
                  "strftime_now(", ".startswith(", ".split(", ".strip(", "[::-1]", "[-1]", "~", "is defined",
                  "is none", "is string", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
                  "<tool_call>", "<|eot_id|>", "<start_of_turn>", "<｜Assistant｜>"]
dict_file("template", json_words + template_words + [f'"{w}"' for w in request_words])
dict_file("tokenizer", ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<bos>", "<eos>",
                        "<start_of_turn>", "<end_of_turn>", "<|begin_of_text|>", "<|eot_id|>",
                        "<|start_header_id|>", "<｜User｜>", "<｜Assistant｜>", "<think>",
                        "<tool_call>", "<|fim_prefix|>", "\U0010FFFD", "▁", "'s", "'re", " ",
                        "\n\n", "\r\n", "\t", "123", "é", "👩‍⚕️", "\u200d", "\ufeff"])
dict_file("gguf", ["GGUF", "general.architecture", "general.alignment", "llama", "qwen2", "qwen3",
                   "gemma3", "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                   "tokenizer.ggml.token_type", "tokenizer.ggml.scores", "tokenizer.ggml.pre",
                   "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token", "gpt2", "llama-bpe",
                   "qwen2", "smollm", "block_count", "embedding_length", "context_length",
                   "attention.head_count", "rope.freq_base", "token_embd.weight", "output.weight",
                   "blk.0.attn_q.weight", "rope_freqs.weight", "split.count"])
dict_file("audit_verify", ['"seq":', '"epoch":', '"prev":"', ',"mac":"', '"event":"', "retention", "open",
                           "audit_resumed", '"entries":', '"head_seq":', '"head":"', '"time":"',
                           "0" * 64, "ff" * 32, "18446744073709551615", "\n", "\0", "{", "}"])
