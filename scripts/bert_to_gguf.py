"""A sentence-transformers BERT checkpoint (config.json, model.safetensors, WordPiece
tokenizer.json, the Pooling module's config) as a GGUF, written the way llama.cpp's
convert_hf_to_gguf.py writes it with `--outtype f16`: the same metadata in the same order, the
same tensor names, order and types (matrices F16, vectors and the position/type tables F32) and
the vocabulary in llama.cpp's "phantom space" form (a word-initial piece gets "▁", a "##"
continuation loses its "##"). Plain Python (struct, json, zipfile) so scripts/fetch-models.sh runs
it with the system python3; scripts/reference/embeddings.py checks it byte for byte against
llama.cpp's converter.

    bert_to_gguf.convert(read, metadata) -> bytes
        read(name) returns a member of the checkpoint ("config.json", "model.safetensors", ...);
        metadata holds what the converter derives from the Hub repository's name and the
        tokenizer's hash (general.name, general.organization, general.size_label,
        tokenizer.ggml.pre).

With `classifier_seed` in the metadata it writes a cross-encoder for reranking instead (rank
pooling, `bert.pooling_type = 4`): the checkpoint's own pooler becomes the classification
head's dense layer (`cls.weight`/`cls.bias`, tanh after it, as llama.cpp computes a reranker's
head) and a projection to one score drawn from that seed (`cls.output.*`) follows. The
projection is not trained: the file tests a reranker's arithmetic and API, not its ranking."""
import json
import random
import struct

import gguf_header as gh

F32, F16 = 0, 1
ALIGN = 32
NORMAL, UNKNOWN, CONTROL, UNUSED = 1, 2, 3, 5
POOLING = {"pooling_mode_mean_tokens": 1, "pooling_mode_cls_token": 2, "pooling_mode_lasttoken": 3}
RANK = 4


class ConvertError(ValueError):
    pass


def classifier(seed, n_embd):
    """The reranker's score projection: `n_embd` weights and a bias, from `seed`."""
    rng = random.Random(seed)
    return [rng.gauss(0.0, 0.2) for _ in range(n_embd)], 0.1


def tensor_name(hf, rank=False):
    """llama.cpp's name for a BertModel tensor, or None for one it drops (a reranker keeps the
    pooler as its head's dense layer)."""
    name = hf.removeprefix("bert.").removeprefix("roberta.")
    if rank and name in ("pooler.dense.weight", "pooler.dense.bias"):
        return "cls." + name.rsplit(".", 1)[1]
    if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
        return None
    # A sequence classifier's head (XLMRobertaForSequenceClassification: bge-reranker-v2-m3).
    for head, gguf_name in (("classifier.dense.", "cls."), ("classifier.out_proj.", "cls.output.")):
        if name.startswith(head) and name[len(head):] in ("weight", "bias"):
            return gguf_name + name[len(head):]
    fixed = {
        "embeddings.word_embeddings.weight": "token_embd.weight",
        "embeddings.position_embeddings.weight": "position_embd.weight",
        "embeddings.token_type_embeddings.weight": "token_types.weight",
        "embeddings.LayerNorm.weight": "token_embd_norm.weight",
        "embeddings.LayerNorm.bias": "token_embd_norm.bias",
    }
    if name in fixed:
        return fixed[name]
    parts = name.split(".")
    if parts[:2] != ["encoder", "layer"] or not parts[2].isdecimal():
        raise ConvertError(f"tensor {hf!r} is not part of a BertModel")
    per_layer = {
        "attention.self.query": "attn_q",
        "attention.self.key": "attn_k",
        "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down",
        "output.LayerNorm": "layer_output_norm",
    }
    inner, kind = ".".join(parts[3:-1]), parts[-1]
    if inner not in per_layer or kind not in ("weight", "bias"):
        raise ConvertError(f"tensor {hf!r} is not part of a BertModel")
    return f"blk.{parts[2]}.{per_layer[inner]}.{kind}"


def safetensors(data):
    """[(name, shape, f32 bytes)] in the file's order; only F32 tensors are accepted."""
    if len(data) < 8:
        raise ConvertError("model.safetensors is cut short")
    (n,) = struct.unpack_from("<Q", data)
    if n > len(data) - 8:
        raise ConvertError("model.safetensors: the header runs past the end of the file")
    header = json.loads(data[8:8 + n])
    base, out = 8 + n, []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, end = t["data_offsets"]
        count = 1
        for d in t["shape"]:
            count *= d
        if t["dtype"] == "I64" and name.endswith("position_ids"):
            continue
        if t["dtype"] != "F32" or end - start != 4 * count or base + end > len(data):
            raise ConvertError(f"model.safetensors: tensor {name!r} is not {t['shape']} F32 in the file")
        out.append((name, t["shape"], data[base + start:base + end]))
    return out


def to_f16(raw):
    out = bytearray()
    step = 1 << 20
    for at in range(0, len(raw), 4 * step):
        chunk = raw[at:at + 4 * step]
        values = struct.unpack(f"<{len(chunk) // 4}f", chunk)
        out += struct.pack(f"<{len(values)}e", *values)
    return bytes(out)


def vocabulary(tok_json):
    tj = json.loads(tok_json)
    model = tj["model"]
    if model.get("type") != "WordPiece" or model.get("continuing_subword_prefix") != "##":
        raise ConvertError("tokenizer.json is not a BERT WordPiece tokenizer")
    special = {t["id"] for t in tj["added_tokens"] if t["special"]}
    by_id = {i: t for t, i in model["vocab"].items()}
    tokens, types = [], []
    for i in range(max(by_id) + 1):
        if i not in by_id:
            tokens.append(f"[PAD{i}]"); types.append(UNUSED)
        elif i in special:
            tokens.append(by_id[i]); types.append(CONTROL)
        else:
            t = by_id[i]
            tokens.append(t[2:] if t.startswith("##") else "\u2581" + t); types.append(NORMAL)
    lowercase = bool((tj.get("normalizer") or {}).get("lowercase"))
    return tokens, types, {t: i for t, i in model["vocab"].items()}, lowercase


def protobuf(buf):
    """The (field number, value) pairs of one protobuf message: varints as ints, the
    length-delimited and fixed-width values as bytes."""
    i = 0

    def varint():
        nonlocal i
        v, shift = 0, 0
        while True:
            if i >= len(buf) or shift > 63:
                raise ConvertError("sentencepiece.bpe.model is not a SentencePiece model")
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while i < len(buf):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, varint()
        elif wire in (1, 2, 5):
            n = {1: 8, 5: 4}.get(wire) or varint()
            if i + n > len(buf):
                raise ConvertError("sentencepiece.bpe.model is cut short")
            yield field, buf[i:i + n]
            i += n
        else:
            raise ConvertError("sentencepiece.bpe.model is not a SentencePiece model")


def sentencepiece(data):
    """A SentencePiece ModelProto: its pieces [(text, score, type)], whether it is a unigram
    model, and the normalizer's add_dummy_prefix, remove_extra_whitespaces and
    precompiled_charsmap."""
    pieces, unigram = [], True
    normalizer = {"add_dummy_prefix": True, "remove_extra_whitespaces": True, "precompiled_charsmap": b""}
    for field, value in protobuf(data):
        if field == 1:  # a piece: 1 text, 2 score, 3 type (NORMAL by default)
            piece = {1: b"", 2: struct.pack("<f", 0.0), 3: NORMAL}
            piece.update(protobuf(value))
            pieces.append((piece[1].decode(), struct.unpack("<f", piece[2])[0], piece[3]))
        elif field == 2:  # trainer_spec: 3 model_type (1 = unigram, the default)
            unigram = dict(protobuf(value)).get(3, 1) == 1
        elif field == 3:  # normalizer_spec
            spec = dict(protobuf(value))
            normalizer["add_dummy_prefix"] = bool(spec.get(3, 1))
            normalizer["remove_extra_whitespaces"] = bool(spec.get(4, 1))
            normalizer["precompiled_charsmap"] = spec.get(2, b"")
    return pieces, unigram, normalizer


def xlmr_vocabulary(spm_data, vocab_size):
    """XLM-RoBERTa's vocabulary as llama.cpp's converter realigns it: fairseq's <s>, <pad>,
    </s>, <unk> first, then the SentencePiece pieces after its own three specials (each one
    place later), the last place left to [PAD…] (<mask>'s)."""
    pieces, unigram, normalizer = sentencepiece(spm_data)
    if not unigram:
        raise ConvertError("sentencepiece.bpe.model is not a unigram model")
    n = max(vocab_size, len(pieces))
    tokens = [f"[PAD{i}]" for i in range(n)]
    scores, types = [-10000.0] * n, [UNUSED] * n
    for i, (text, score, kind) in enumerate(pieces):
        tokens[i], scores[i], types[i] = text, score, kind
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + tokens[3:-1]
    scores = [0.0] * 4 + scores[3:-1]
    types = [CONTROL, CONTROL, CONTROL, UNKNOWN] + types[3:-1]
    return tokens, scores, types, normalizer


def convert(read, metadata):
    config = json.loads(read("config.json"))
    xlmr = config.get("model_type") == "xlm-roberta"
    if config.get("model_type") not in ("bert", "xlm-roberta") or config.get("hidden_act") != "gelu" \
            or config.get("position_embedding_type", "absolute") != "absolute":
        raise ConvertError("config.json does not describe a plain BERT or XLM-RoBERTa (absolute positions, GELU)")
    rank_seed = metadata.get("classifier_seed")
    pooling = None
    try:
        modules = json.loads(read("modules.json"))
    except KeyError:  # not a sentence-transformers model (a cross-encoder)
        modules = []
    for module in modules:
        if module["type"].endswith("Pooling"):
            pool_cfg = json.loads(read(f"{module['path']}/config.json"))
            pooling = next((v for k, v in POOLING.items() if pool_cfg.get(k)), None)
            if pooling is None:
                raise ConvertError("the Pooling module is not mean, CLS or last-token pooling")
    # XLM-RoBERTa's positions start after its padding token: the converter drops the table's
    # rows before that, and the context shrinks by as many.
    position_offset = 1 + config["pad_token_id"] if xlmr else 0
    if xlmr:
        tokens, scores, types, normalizer = xlmr_vocabulary(read("sentencepiece.bpe.model"),
                                                             config["vocab_size"])
    else:
        tokens, types, vocab, lowercase = vocabulary(read("tokenizer.json"))
        tok_cfg = json.loads(read("tokenizer_config.json"))
        ids = {k: vocab[tok_cfg[f"{k}_token"]] for k in ("cls", "sep", "unk", "pad", "mask")}

    kvs = [gh.entry("general.architecture", gh.STRING, "bert"),
           gh.entry("general.type", gh.STRING, "model")]
    for key in ("general.name", "general.organization", "general.size_label"):
        if key in metadata:
            kvs.append(gh.entry(key, gh.STRING, metadata[key]))
    u32 = lambda k, v: gh.entry(k, gh.U32, v)
    kvs += [u32("bert.block_count", config["num_hidden_layers"]),
            u32("bert.context_length", config["max_position_embeddings"] - position_offset),
            u32("bert.embedding_length", config["hidden_size"]),
            u32("bert.feed_forward_length", config["intermediate_size"]),
            u32("bert.attention.head_count", config["num_attention_heads"]),
            gh.entry("bert.attention.layer_norm_epsilon", gh.F32, config["layer_norm_eps"]),
            u32("general.file_type", 1),
            gh.entry("bert.attention.causal", gh.BOOL, False)]
    if any(a.endswith("ForSequenceClassification") for a in config.get("architectures", [])):
        # The converter names the labels and writes no pooling type (llama-server ranks with
        # the head when asked to rerank).
        labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        kvs.append(gh.entry("bert.classifier.output_labels", gh.ARRAY, (gh.STRING, labels)))
    if rank_seed is not None:
        pooling = RANK
    if pooling is not None:
        kvs.append(u32("bert.pooling_type", pooling))
    kvs.append(u32("general.quantization_version", 2))
    if xlmr:
        # What the converter's _xlmroberta_set_vocab and gguf.SpecialVocab write for bge-m3
        # (tokenizer.json's specials and its "<s> $A </s>" template).
        kvs += [gh.entry("tokenizer.ggml.model", gh.STRING, "t5"),
                gh.entry("tokenizer.ggml.pre", gh.STRING, "default"),
                gh.entry("tokenizer.ggml.tokens", gh.ARRAY, (gh.STRING, tokens)),
                gh.entry("tokenizer.ggml.scores", gh.ARRAY, (gh.F32, scores)),
                gh.entry("tokenizer.ggml.token_type", gh.ARRAY, (gh.I32, types)),
                gh.entry("tokenizer.ggml.add_space_prefix", gh.BOOL, normalizer["add_dummy_prefix"]),
                u32("tokenizer.ggml.token_type_count", config.get("type_vocab_size", 1)),
                gh.entry("tokenizer.ggml.remove_extra_whitespaces", gh.BOOL,
                         normalizer["remove_extra_whitespaces"])]
        if normalizer["precompiled_charsmap"]:  # the converter writes it only if there is one
            kvs.append(gh.entry("tokenizer.ggml.precompiled_charsmap", gh.ARRAY,
                                (gh.U8, normalizer["precompiled_charsmap"])))
        kvs += [u32("tokenizer.ggml.bos_token_id", 0),
                u32("tokenizer.ggml.eos_token_id", 2),
                u32("tokenizer.ggml.unknown_token_id", 3),
                u32("tokenizer.ggml.seperator_token_id", 2),
                u32("tokenizer.ggml.padding_token_id", 1),
                u32("tokenizer.ggml.mask_token_id", len(tokens) - 1),
                gh.entry("tokenizer.ggml.add_bos_token", gh.BOOL, True),
                gh.entry("tokenizer.ggml.add_eos_token", gh.BOOL, True),
                gh.entry("tokenizer.ggml.add_sep_token", gh.BOOL, True)]
    else:
        kvs += [u32("tokenizer.ggml.token_type_count", config.get("type_vocab_size", 1)),
                gh.entry("tokenizer.ggml.model", gh.STRING, "bert"),
                gh.entry("tokenizer.ggml.pre", gh.STRING, metadata["tokenizer.ggml.pre"]),
                gh.entry("tokenizer.ggml.tokens", gh.ARRAY, (gh.STRING, tokens)),
                gh.entry("tokenizer.ggml.token_type", gh.ARRAY, (gh.I32, types)),
                u32("tokenizer.ggml.bos_token_id", ids["cls"]),
                u32("tokenizer.ggml.eos_token_id", ids["sep"]),
                u32("tokenizer.ggml.unknown_token_id", ids["unk"]),
                u32("tokenizer.ggml.seperator_token_id", ids["sep"]),
                u32("tokenizer.ggml.padding_token_id", ids["pad"]),
                u32("tokenizer.ggml.mask_token_id", ids["mask"]),
                gh.entry("tokenizer.ggml.add_bos_token", gh.BOOL, True),
                gh.entry("tokenizer.ggml.add_eos_token", gh.BOOL, True),
                gh.entry("tokenizer.ggml.add_sep_token", gh.BOOL, False),
                gh.entry("tokenizer.ggml.normalizer.lowercase", gh.BOOL, lowercase)]

    tensors = [(tensor_name(hf, rank_seed is not None), shape, raw)
               for hf, shape, raw in safetensors(read("model.safetensors"))]
    if position_offset:
        tensors = [(name, [shape[0] - position_offset, shape[1]], raw[position_offset * shape[1] * 4:])
                   if name == "position_embd.weight" else (name, shape, raw) for name, shape, raw in tensors]
    if rank_seed is not None:
        weights, bias = classifier(rank_seed, config["hidden_size"])
        tensors += [("cls.output.weight", [1, len(weights)], struct.pack(f"<{len(weights)}f", *weights)),
                    ("cls.output.bias", [1], struct.pack("<f", bias))]
    infos, blobs, offset = [], [], 0
    for name, shape, raw in tensors:
        if name is None:
            continue
        # Matrices become F16, except the position and token-type tables (as llama.cpp).
        if len(shape) == 2 and name not in ("position_embd.weight", "token_types.weight"):
            ggml_type, blob = F16, to_f16(raw)
        else:
            ggml_type, blob = F32, raw
        dims = list(reversed(shape))
        info = struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(dims))
        info += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ggml_type, offset)
        infos.append(info)
        pad = -len(blob) % ALIGN
        blobs.append(blob + b"\0" * pad)
        offset += len(blob) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kvs)) + b"".join(kvs) + b"".join(infos)
    return head + b"\0" * (-len(head) % ALIGN) + b"".join(blobs)
