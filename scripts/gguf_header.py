"""GGUF headers in plain Python (no packages, so scripts/fetch-models.sh can run it with the
system python3): walk a header's metadata entries, write entries, and assemble a
vocabulary-only file (metadata, no tensors). Used by fetch-models.sh to build the tokenizer
tests' vocabularies and by scripts/reference/tokenizers.py to swap a pre-tokenizer."""
import struct

U8, U32, I32, F32, BOOL, STRING, ARRAY = 0, 4, 5, 6, 7, 8, 9
# Byte sizes of the fixed-size value types.
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class HeaderError(ValueError):
    pass


def entries(data):
    """(version, [(key, the entry's raw bytes)], alignment) of the GGUF header at the start of
    `data`."""
    if data[:4] != b"GGUF":
        raise HeaderError("not a GGUF file")
    version, _n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    off = 24

    def string(off):
        (n,) = struct.unpack_from("<Q", data, off)
        return data[off + 8:off + 8 + n], off + 8 + n

    def skip(vtype, off):
        if vtype in FIXED:
            return off + FIXED[vtype]
        if vtype == STRING:
            return string(off)[1]
        if vtype == ARRAY:
            etype, count = struct.unpack_from("<IQ", data, off)
            off += 12
            if etype in FIXED:
                return off + FIXED[etype] * count
            for _ in range(count):
                off = skip(etype, off)
            return off
        raise HeaderError(f"unknown GGUF value type {vtype}")

    out, alignment = [], 32
    for _ in range(n_kv):
        start = off
        key, off = string(off)
        (vtype,) = struct.unpack_from("<I", data, off)
        if key == b"general.alignment" and vtype == U32:
            (alignment,) = struct.unpack_from("<I", data, off + 4)
        off = skip(vtype, off + 4)
        out.append((key, data[start:off]))
    if off > len(data):
        raise HeaderError("the GGUF header is cut short")
    return version, out, alignment


def entry(key, vtype, value):
    """One metadata entry's bytes; an array's `value` is (element type, items)."""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    def scalar(t, v):
        return {U32: lambda: struct.pack("<I", v), I32: lambda: struct.pack("<i", v),
                F32: lambda: struct.pack("<f", v), BOOL: lambda: struct.pack("<?", v),
                STRING: lambda: s(v)}[t]()

    if vtype == ARRAY:
        etype, items = value
        if etype == U8:  # bytes, as they are
            body = struct.pack("<IQ", etype, len(items)) + bytes(items)
        else:
            body = struct.pack("<IQ", etype, len(items)) + b"".join(scalar(etype, v) for v in items)
    else:
        body = scalar(vtype, value)
    return s(key) + struct.pack("<I", vtype) + body


def vocabulary_file(version, raw_entries, alignment=32):
    """A GGUF of these metadata entries and no tensors, padded to `alignment`."""
    out = b"GGUF" + struct.pack("<IQQ", version, 0, len(raw_entries)) + b"".join(raw_entries)
    return out + b"\0" * (-len(out) % alignment)


def value(raw):
    """The value of one entry from `entries`: a string, integer, float or bool, or a list of
    them (enough to read a vocabulary back)."""
    (n,) = struct.unpack_from("<Q", raw, 0)
    off = 8 + n
    (vtype,) = struct.unpack_from("<I", raw, off)
    formats = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
               10: "<Q", 11: "<q", 12: "<d"}

    def one(t, off):
        if t == STRING:
            (k,) = struct.unpack_from("<Q", raw, off)
            return raw[off + 8:off + 8 + k].decode(), off + 8 + k
        if t not in formats:
            raise HeaderError(f"cannot read a value of type {t}")
        return struct.unpack_from(formats[t], raw, off)[0], off + FIXED[t]

    if vtype != ARRAY:
        return one(vtype, off + 4)[0]
    etype, count = struct.unpack_from("<IQ", raw, off + 4)
    off += 16
    items = []
    for _ in range(count):
        v, off = one(etype, off)
        items.append(v)
    return items
