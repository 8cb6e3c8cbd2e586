#!/usr/bin/env python3
"""Mutation check of Ward's test suite (issue #22, item 5): break the code on purpose, one place
at a time, and see whether the tests notice.

    scripts/mutants.py [--only NAME...] [--worktree DIR] [--timeout S] [--baseline] [--list]

The mutations are in scripts/mutants.toml (name, file, old, new, why, test). Each one is applied
in a separate git worktree (default /work/mutants-wt, made with `git worktree add --detach` at
the main checkout's HEAD when absent), never in the main checkout: the worktree has its own
target/, so other builds are untouched, and its models/ links to the main checkout's downloaded
models, where the tests look for them (tests/common `root()` is the checkout they are built in).
For each mutation: replace `old` by `new`, build and run `cargo test --release <test>` (or, for
`pytest:<path>::<test>`, build target/release/ward and run that API test with WARD_BIN set to it,
with the main checkout's .venv-test), and put the file back, always (try/finally, Ctrl-C too).

    caught        the tests failed (a test run past --timeout counts as caught: it hung)
    missed        the tests passed: the suite does not see this bug
    not-compiled  the mutant does not build: a bad mutation, fix it in mutants.toml
    stale         `old` is not found exactly once in the worktree's file (worktree at another
                  commit than the snippet was written for)
    no-tests      the selection ran no test at all (a bad `test`)
    error         pytest itself failed (collection or usage error), or --baseline failed

One line per mutation, then "N caught, N missed, N did not compile of N", and a JSON report
(default mutants-report.json in the worktree; each run's output in mutants-logs/ beside it).
Every cargo invocation holds /tmp/ward-cargo.lock (flock(2), the lock `flock
/tmp/ward-cargo.lock cargo …` takes), so it waits for, and never overlaps, other builds; the
timeout starts once the lock is held.

How long (measured on the 2-core build machine): the 31 mutations of mutants.toml took about
15 minutes, 10 to 80 s each, in a worktree whose target/ had been seeded with a copy of the main
checkout's (`cp -a target/release WORKTREE/target/`); a cold worktree first compiles the whole
dependency tree in release mode (another 10-15 minutes).
--baseline first runs each distinct test selection on the unbroken code (another ~30 minutes):
a selection that fails there cannot say anything about a mutation.
"""
import argparse
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path

LOCK = "/tmp/ward-cargo.lock"
HERE = Path(__file__).resolve().parent


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


# The main checkout: the one whose .git the worktrees share (the script may run from either).
MAIN = Path(git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=HERE)).parent


def load(path):
    with open(path, "rb") as f:
        mutations = tomllib.load(f)["mutation"]
    for m in mutations:
        missing = {"name", "file", "old", "new", "why", "test"} - m.keys()
        if missing:
            sys.exit(f"{path}: mutation {m.get('name', '?')} lacks {sorted(missing)}")
    return mutations


def prepare_worktree(wt):
    """The worktree at wt, created at the main checkout's HEAD if absent, with models linked."""
    if not (wt / ".git").exists():
        print(f"creating worktree {wt} at HEAD")
        git("worktree", "add", "--detach", str(wt), "HEAD", cwd=MAIN)
    # Downloaded models and checkpoints are git-ignored: link each one the worktree lacks.
    for entry in (MAIN / "models").iterdir():
        link = wt / "models" / entry.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(entry)
    if git("status", "--porcelain", "--untracked-files=no", cwd=wt):
        sys.exit(f"{wt} has changed files (a run killed with SIGKILL?): "
                 f"`git -C {wt} checkout -- .` puts them back")
    here, main = git("rev-parse", "HEAD", cwd=wt), git("rev-parse", "HEAD", cwd=MAIN)
    if here != main:
        print(f"note: the worktree is at {here[:10]}, the main checkout at {main[:10]} "
              f"(`git -C {wt} checkout --detach {main[:10]}` to move it)")
    return here


@contextmanager
def cargo_lock():
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run(cmd, cwd, env, log, timeout):
    """Run cmd with its output appended to log; its exit code, or None past the timeout."""
    with open(log, "a") as out:
        out.write(f"$ {shlex.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            out.write(f"\n[mutants.py: timed out after {timeout} s]\n")
            return None
        finally:
            if proc.poll() is None:  # timed out, or Ctrl-C: stop the whole process group
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def cargo(args, wt, env, log, timeout):
    with cargo_lock():
        return run(["cargo", *args], wt, env, log, timeout)


def tests_ran(log):
    """How many Rust tests the log's `test result:` lines report as run."""
    text = Path(log).read_text(errors="replace")
    return sum(int(p) + int(f) for p, f in
               re.findall(r"^test result: \w+\. (\d+) passed; (\d+) failed", text, re.M))


def check(test, wt, env, log, timeout):
    """Build and run one test selection in wt: (outcome, detail)."""
    if test.startswith("pytest:"):
        if cargo(["build", "--release", "-p", "ward"], wt, env, log, timeout) != 0:
            return "not-compiled", "cargo build --release -p ward failed"
        python = MAIN / ".venv-test" / "bin" / "python"
        cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", test.removeprefix("pytest:")]
        rc = run(cmd, wt, {**env, "WARD_BIN": str(wt / "target" / "release" / "ward")}, log, timeout)
        return {None: ("caught", "timeout"), 0: ("missed", ""), 1: ("caught", ""),
                5: ("no-tests", "pytest collected nothing")}.get(rc, ("error", f"pytest exit {rc}"))
    args = ["test", "--release", *shlex.split(test)]
    if cargo([*args, "--no-run"], wt, env, log, timeout) != 0:
        return "not-compiled", "cargo test --no-run failed"
    rc = cargo(args, wt, env, log, timeout)
    if rc is None:
        return "caught", "timeout"
    if rc != 0:
        return "caught", ""
    return ("missed", "") if tests_ran(log) > 0 else ("no-tests", "no Rust test ran")


def mutate(m, wt, env, log, timeout):
    """Apply m in wt, check it, and put the file back whatever happens."""
    path = wt / m["file"]
    original = path.read_bytes()
    text = original.decode()
    if text.count(m["old"]) != 1:
        return "stale", f"`old` found {text.count(m['old'])} times in {m['file']}"
    try:
        path.write_bytes(text.replace(m["old"], m["new"]).encode())
        return check(m["test"], wt, env, log, timeout)
    finally:
        # Written anew (a fresh mtime), so cargo rebuilds the crate from the real source.
        path.write_bytes(original)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    ap.add_argument("--worktree", type=Path, default=Path("/work/mutants-wt"))
    ap.add_argument("--mutations", type=Path, default=HERE / "mutants.toml")
    ap.add_argument("--report", type=Path, help="JSON report (default: WORKTREE/mutants-report.json)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per build or test run")
    ap.add_argument("--baseline", action="store_true",
                    help="first run each test selection on the unbroken code")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    opts = ap.parse_args()

    mutations = load(opts.mutations)
    if opts.only:
        unknown = set(opts.only) - {m["name"] for m in mutations}
        if unknown:
            sys.exit(f"no such mutation: {', '.join(sorted(unknown))}")
        mutations = [m for m in mutations if m["name"] in opts.only]
    if opts.list:
        for m in mutations:
            print(f"{m['name']:40} {m['file']:45} {m['test']}")
        return

    # SIGTERM ends the run like Ctrl-C: the `finally` blocks restore the file.
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    wt = opts.worktree.resolve()
    commit = prepare_worktree(wt)
    logs = wt / "mutants-logs"
    logs.mkdir(exist_ok=True)
    report_path = opts.report or wt / "mutants-report.json"
    # Builds go to the worktree's own target/; tests find models and fixtures in the worktree.
    env = {k: v for k, v in os.environ.items() if k not in ("CARGO_TARGET_DIR", "WARD_ROOT", "WARD_BIN")}
    env["CARGO_TARGET_DIR"] = str(wt / "target")

    results, broken, interrupted = [], {}, False

    def save():
        counts = {}
        for r in results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        report = {"commit": commit, "worktree": str(wt), "summary": counts, "mutations": results}
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        return counts

    try:
        if opts.baseline:
            for test in dict.fromkeys(m["test"] for m in mutations):
                log = logs / f"baseline-{re.sub(r'[^A-Za-z0-9_.-]+', '_', test)}.log"
                log.unlink(missing_ok=True)
                outcome, detail = check(test, wt, env, log, opts.timeout)
                ok = outcome == "missed"  # the unbroken code passes
                print(f"baseline  {'ok' if ok else 'FAILED':6} {test}" + ("" if ok else f"  ({outcome} {detail}; {log})"))
                if not ok:
                    broken[test] = str(log)
        for m in mutations:
            log = logs / f"{m['name']}.log"
            log.unlink(missing_ok=True)
            start = time.monotonic()
            if m["test"] in broken:
                outcome, detail = "error", f"the baseline of this selection fails ({broken[m['test']]})"
            else:
                outcome, detail = mutate(m, wt, env, log, opts.timeout)
            seconds = round(time.monotonic() - start)
            results.append({"name": m["name"], "file": m["file"], "test": m["test"], "why": m["why"],
                            "outcome": outcome, "detail": detail, "seconds": seconds, "log": str(log)})
            print(f"{outcome:12} {m['name']:40} {seconds:5d} s  {m['test']}" + (f"  ({detail})" if detail else ""),
                  flush=True)
            save()
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the mutated file is restored; the report holds the mutations done")
    counts = save()
    n = len(results)
    print(f"{counts.get('caught', 0)} caught, {counts.get('missed', 0)} missed, "
          f"{counts.get('not-compiled', 0)} did not compile of {n}")
    other = {k: v for k, v in counts.items() if k not in ("caught", "missed", "not-compiled")}
    if other:
        print("also: " + ", ".join(f"{v} {k}" for k, v in sorted(other.items())))
    print(f"report: {report_path}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
