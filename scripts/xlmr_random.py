"""A tiny XLM-RoBERTa checkpoint with random weights over a real SentencePiece unigram
vocabulary: bge-m3's architecture (XLM-RoBERTa, CLS pooling, normalised) at test size. There is
no XLM-RoBERTa model on PyPI, so the test model is this: its weights drawn from a seed in plain
Python, its vocabulary the Japanese unigram model that SentencePiece's own source package tests
with (a precompiled NFKC charsmap, like XLM-RoBERTa's). The files are what a Hugging Face
`save_pretrained` of an XLMRobertaModel with a sentence-transformers CLS pooling module holds;
scripts/bert_to_gguf.py converts them as llama.cpp's converter does, and
scripts/reference/embeddings.py checks that (byte for byte against llama.cpp's converter) and
computes the oracles (llama.cpp on the GGUF, transformers on these files).

    xlmr_random.checkpoint(spm_data, seed) -> {file name: bytes}
"""
import json
import random
import struct

import bert_to_gguf

HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 64, 2, 4, 128, 512
PAD = 1  # fairseq's <pad>: XLM-RoBERTa's positions start after it


def tensors(vocab_size, rng, reranker):
    """[(name, shape, values)] of an XLMRobertaModel, or of an
    XLMRobertaForSequenceClassification with one label (bge-reranker-v2-m3's head: a dense
    layer with tanh on the first token, then the score) if `reranker`."""
    def normal(shape, std):
        n = 1
        for d in shape:
            n *= d
        return [rng.gauss(0.0, std) for _ in range(n)]

    def layer_norm(prefix):
        return [(f"{prefix}.weight", [HIDDEN], [1.0 + rng.gauss(0.0, 0.1) for _ in range(HIDDEN)]),
                (f"{prefix}.bias", [HIDDEN], normal([HIDDEN], 0.02))]

    def dense(prefix, n_out, n_in):
        return [(f"{prefix}.weight", [n_out, n_in], normal([n_out, n_in], 0.08)),
                (f"{prefix}.bias", [n_out], normal([n_out], 0.02))]

    out = [("embeddings.word_embeddings.weight", [vocab_size, HIDDEN], normal([vocab_size, HIDDEN], 0.1)),
           ("embeddings.position_embeddings.weight", [POSITIONS + PAD + 1, HIDDEN],
            normal([POSITIONS + PAD + 1, HIDDEN], 0.1)),
           ("embeddings.token_type_embeddings.weight", [1, HIDDEN], normal([1, HIDDEN], 0.1))]
    out += layer_norm("embeddings.LayerNorm")
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for part in ("query", "key", "value"):
            out += dense(f"{p}.attention.self.{part}", HIDDEN, HIDDEN)
        out += dense(f"{p}.attention.output.dense", HIDDEN, HIDDEN)
        out += layer_norm(f"{p}.attention.output.LayerNorm")
        out += dense(f"{p}.intermediate.dense", FFN, HIDDEN)
        out += dense(f"{p}.output.dense", HIDDEN, FFN)
        out += layer_norm(f"{p}.output.LayerNorm")
    if not reranker:
        return out + dense("pooler.dense", HIDDEN, HIDDEN)
    return [("roberta." + name, shape, values) for name, shape, values in out] \
        + dense("classifier.dense", HIDDEN, HIDDEN) + dense("classifier.out_proj", 1, HIDDEN)


def safetensors(named):
    header, blobs, offset = {}, [], 0
    # Sorted by name, as the safetensors library writes them (and llama.cpp converts them).
    for name, shape, values in sorted(named, key=lambda t: t[0]):
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def checkpoint(spm_data, seed, reranker=False):
    pieces, _, _ = bert_to_gguf.sentencepiece(spm_data)
    vocab_size = len(pieces) + 2  # fairseq's <pad> before the pieces, <mask> after them
    config = {
        "architectures": ["XLMRobertaForSequenceClassification" if reranker else "XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": vocab_size, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "intermediate_size": FFN, "hidden_act": "gelu",
        "max_position_embeddings": POSITIONS + PAD + 1, "type_vocab_size": 1,
        "layer_norm_eps": 1e-05, "pad_token_id": PAD, "bos_token_id": 0, "eos_token_id": 2,
        "position_embedding_type": "absolute", "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
    }
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    if reranker:
        config.update({"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}})
    dumps = lambda v: json.dumps(v, indent=2).encode()
    files = {
        "config.json": dumps(config),
        "model.safetensors": safetensors(tensors(vocab_size, random.Random(seed), reranker)),
        "sentencepiece.bpe.model": spm_data,
        "tokenizer_config.json": dumps({**specials, "model_max_length": POSITIONS,
                                        "tokenizer_class": "XLMRobertaTokenizer"}),
        "special_tokens_map.json": dumps(specials),
        "modules.json": dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]),
        "1_Pooling/config.json": dumps({"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": True,
                                        "pooling_mode_mean_tokens": False}),
    }
    if reranker:  # a cross-encoder has no sentence-transformers modules
        for name in ("modules.json", "1_Pooling/config.json"):
            del files[name]
    return files
