"""Two independent decoders of GGUF's weight formats, for crates/kernels/tests/quant_oracle.rs.

Ward's quant kernels are otherwise tested against Ward's own dequantizer and activation
quantizer, so a misreading of a block layout shared by both would pass. Here:

- the `gguf` package's numpy dequantizers (gguf-py, written apart from ggml's C) decode random
  blocks of every weight type Ward computes with;
- ggml itself, through ctypes on llama-cpp-python's shared libraries, decodes the same blocks
  (`to_float`; the two must agree, or this script stops), quantizes an activation vector to the
  weight type's `vec_dot_type` (`from_float` of that type, the x86 build's SIMD quantizer that
  Ward means to match bit for bit), and takes each row's dot product with it (`vec_dot`).

The blocks are random bytes (every bit pattern of a quantized block is a legal block), except
the f16 scale fields, which are set to finite values of both signs and many magnitudes: zero,
subnormal, tiny and large. The float types get random finite values with zeros and subnormals.

Run through make-fixtures.sh, or on its own with a python that has llama-cpp-python 0.3.36,
numpy and gguf; writes fixtures/quants-ggml.json.
"""
import base64
import ctypes
import importlib.metadata
import importlib.util
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
SEED = 20240522
ROWS = 3

# Ward's weight types, in the order of WeightType::ALL, with the width of the rows drawn:
# several blocks each (3 super-blocks of 256, 7 blocks of 32, odd widths for the float types).
WIDTHS = {
    "F32": 40, "F16": 72, "BF16": 40,
    "Q4_0": 224, "Q4_1": 224, "Q5_0": 224, "Q5_1": 224, "Q8_0": 224,
    "Q2_K": 768, "Q3_K": 768, "Q4_K": 768, "Q5_K": 768, "Q6_K": 768,
}
# Byte offsets of each type's f16 scales (d, and dmin where it has one) in a block.
F16_FIELDS = {
    "Q4_0": [0], "Q5_0": [0], "Q8_0": [0], "Q4_1": [0, 2], "Q5_1": [0, 2],
    "Q4_K": [0, 2], "Q5_K": [0, 2], "Q2_K": [80, 82], "Q3_K": [108], "Q6_K": [208],
}
# Scale magnitudes: zero, the smallest subnormal f16, a subnormal, tiny, realistic, large.
SCALES = [0.0, 2.0 ** -24, 3.0e-6, 1.0e-4, 2.0e-3, 0.01, 0.07, 0.5, 3.0, 1000.0]


# What the CPU backend was built with (its quantizers and dot products differ by ISA).
CPU_FEATURES = ["avx", "avx2", "fma", "f16c", "avx512", "avx512_vnni", "avx512_bf16", "neon"]


# --- ggml through ctypes, with the struct layouts of ggml.h and ggml-cpu.h ---

TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class TypeTraits(ctypes.Structure):  # struct ggml_type_traits (ggml.h)
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", TO_FLOAT),
                ("from_float_ref", FROM_FLOAT)]


class TypeTraitsCpu(ctypes.Structure):  # struct ggml_type_traits_cpu (ggml-cpu.h)
    _fields_ = [("from_float", FROM_FLOAT), ("vec_dot", VEC_DOT),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


def load_ggml():
    lib = os.path.join(os.path.dirname(importlib.util.find_spec("llama_cpp").origin), "lib")
    base = ctypes.CDLL(os.path.join(lib, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(os.path.join(lib, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    base.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    base.ggml_get_type_traits.argtypes = [ctypes.c_int]
    base.ggml_version.restype = ctypes.c_char_p
    base.ggml_commit.restype = ctypes.c_char_p
    cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TypeTraitsCpu)
    cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    cpu.ggml_cpu_init()  # fills the f16 tables the CPU backend's conversions read
    for feature in CPU_FEATURES:
        getattr(cpu, f"ggml_cpu_has_{feature}").restype = ctypes.c_int
    return base, cpu


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


# --- the rows ---

def f16_bytes(rng):
    """One f16 scale: a magnitude from SCALES, jittered, of either sign."""
    v = rng.choice(SCALES) * rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0])
    return np.array([v], dtype=np.float16).view(np.uint8)


def random_row(name, width, rng):
    if name in ("F32", "F16", "BF16"):
        # Mixed magnitudes, with zeros of both signs and (f32/bf16) subnormals among them.
        v = rng.standard_normal(width) * 10.0 ** rng.integers(-3, 3, width)
        v[::9] = 0.0
        v[4::9] = -0.0
        if name == "F16":
            v[7] = 3.0e-6  # an f16 subnormal
            return v.astype(np.float16).view(np.uint8)
        v[7] = 1.0e-39  # an f32 subnormal
        f = v.astype(np.float32)
        if name == "F32":
            return f.view(np.uint8)
        # bf16: the top half of each f32, truncated (any bf16 bit pattern is as good).
        return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    qt = T[name]
    block_len, block_bytes = quants.GGML_QUANT_SIZES[qt]
    blocks = rng.integers(0, 256, (width // block_len, block_bytes), dtype=np.uint8)
    for block in blocks:
        for off in F16_FIELDS[name]:
            block[off:off + 2] = f16_bytes(rng)
    return blocks.reshape(-1)


def rint(v):
    """Round half to even, as ggml's x86 quantizers and nearest_int do."""
    return np.rint(v).astype(np.int64)


def scale_edge_block(rng):
    """32 values on which the two Q8_0 scales ggml has written disagree: its x86 quantizer
    multiplies by 127/amax, quantize_row_q8_0_ref by 1/(amax/127); where those differ by an ulp,
    values just off a half-way point round to different integers."""
    f = np.float32
    while True:
        amax = f(rng.uniform(0.5, 100.0))
        simd, ref = f(127) / amax, f(1) / (amax / f(127))
        if simd == ref:
            continue
        # Near each (k + ½)/id, the f32 values whose rounding depends on which id is used.
        edges = []
        for k in range(126):
            v = f((k + 0.5) / simd)
            for _ in range(8):
                if rint(v * simd) != rint(v * ref):
                    edges.append(v)
                    break
                v = np.nextafter(v, f(np.inf) if v * simd < k + 0.5 else f(-np.inf))
        if len(edges) >= 8:
            block = np.resize(np.array(edges, dtype=f), 32)
            block[0] = amax
            block[1::2] *= -1
            return block


def activations(width, rng):
    """x: normal values whose scale differs from block to block of 32, an outlier and a block
    of zeros (what a Q8 quantizer sees in a real model), and rounding edges. For the quantized
    formats: block 0 has amax exactly 127 (scale 1 for Q8_0, Q8_1 and, as the block's −127,
    Q8_K) and values k + ½, so every rounding is a tie; block 1 comes from scale_edge_block. For
    the float types: values half-way between two f16 or two bf16 values."""
    x = rng.standard_normal(width) * np.repeat(10.0 ** rng.uniform(-2, 1, -(-width // 32)), 32)[:width]
    x[width // 3] *= 40.0
    if width < 224:
        ties = [1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8,
                -(2 + 2.0 ** -10), 3 * 2.0 ** -20 * (1 + 2.0 ** -8)]
        x[:len(ties)] = ties
        return x.astype(np.float32)
    x[:32] = np.arange(32) - 15.5
    x[0] = -127.0
    x[32:64] = scale_edge_block(rng)
    x[96:128] = 0.0
    return x.astype(np.float32)


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def main():
    base, cpu = load_ggml()
    rng = np.random.default_rng(SEED)
    types, exact = {}, {}
    for name, width in WIDTHS.items():
        qt = T[name]
        traits = base.ggml_get_type_traits(int(qt)).contents
        cpu_traits = cpu.ggml_get_type_traits_cpu(int(qt)).contents
        act = T(cpu_traits.vec_dot_type)
        # Block sizes from ggml: gguf 0.19.0 still lists Q8_1 as 40 bytes (f32 d and s), ggml's
        # block_q8_1 is 36 (f16 d and s). The weight types' sizes must agree.
        assert (traits.blck_size, traits.type_size) == quants.GGML_QUANT_SIZES[qt], name
        act_traits = base.ggml_get_type_traits(int(act)).contents
        x = activations(width, rng)
        xq = np.zeros(width // act_traits.blck_size * act_traits.type_size, dtype=np.uint8)
        cpu.ggml_get_type_traits_cpu(int(act)).contents.from_float(ptr(x), ptr(xq), width)
        rows = []
        exact[name] = True
        for _ in range(ROWS):
            row = random_row(name, width, rng)
            ours = quants.dequantize(row, qt).astype(np.float32).reshape(-1)
            if traits.to_float:
                theirs = np.zeros(width, dtype=np.float32)
                traits.to_float(ptr(row), ptr(theirs), width)
            else:  # F32 has no to_float: ggml reads its bytes as they are
                theirs = row.view(np.float32)
            # Both decoders must agree: to the bit, or within one f32 rounding of the value.
            if not np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)):
                exact[name] = False
                np.testing.assert_allclose(ours, theirs, rtol=2.0 ** -22, atol=1e-30,
                                           err_msg=f"{name}: gguf and ggml decode differently")
            dot = np.zeros(1, dtype=np.float32)
            cpu_traits.vec_dot(width, ptr(dot), 0, ptr(row), 0, ptr(xq), 0, 1)
            rows.append({"bytes": b64(row), "values": b64(ours), "vec_dot": float(dot[0])})
        print(f"{name}: width {width}, vec_dot_type {act.name}, gguf == ggml to_float bit-exact: "
              f"{exact[name]}")
        types[name] = {"cols": width, "vec_dot_type": act.name, "x": b64(x),
                       "x_quantized": b64(xq), "rows": rows}
    fixture = {
        "about": "Random blocks of every Ward weight type, decoded by gguf-py's numpy "
                 "dequantizers and by ggml (which agree), with ggml's activation quantizer and "
                 "vec_dot. Written by scripts/reference/quant_oracle.py.",
        "fields": {
            "cols": "values per row",
            "vec_dot_type": "the activation format ggml multiplies this weight type with",
            "x": "base64 of the activation row, little-endian f32, with rounding edges "
                 "(see activations() in the script)",
            "x_quantized": "base64 of ggml's from_float(x) for vec_dot_type (type_traits_cpu)",
            "rows[].bytes": "base64 of one row of blocks as a GGUF file holds it",
            "rows[].values": "base64 of gguf.quants.dequantize(bytes), little-endian f32 "
                             "(ggml's to_float gives the same; F32 has none, its bytes are "
                             "its values)",
            "rows[].vec_dot": "ggml's vec_dot(bytes, x_quantized) (type_traits_cpu), f32",
        },
        "seed": SEED,
        "gguf": importlib.metadata.version("gguf"),
        "llama_cpp_python": importlib.metadata.version("llama_cpp_python"),
        "ggml": f"{base.ggml_version().decode()} ({base.ggml_commit().decode()})",
        "ggml_cpu": [f for f in CPU_FEATURES if getattr(cpu, f"ggml_cpu_has_{f}")()],
        "to_float_bit_exact": exact,
        "types": types,
    }
    path = os.path.join(OUT, "quants-ggml.json")
    with open(path, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
