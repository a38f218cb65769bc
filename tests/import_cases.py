"""hydb import: every bad input gets a one-line error naming the input and the
reason, exit status 2, and leaves the store byte-for-byte unchanged (compared
through `hydb export`). Good inputs in each format import to the same
vectors; --with-time and --from poincare convert exactly; a killed import
resumes."""
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HYDB = os.path.join(os.environ["HYDB_BUILDDIR"], "hydb")
D = 13  # odd: exercises SIMD tails
C = 0.7
failures = []


def run(*args):
    return subprocess.run([HYDB, *args], capture_output=True, text=True)


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def export(db):
    return run("export", db).stdout


def points(n, seed, rmax=4.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    r = rng.uniform(0.1, rmax, n)
    return (x * (np.sinh(math.sqrt(C) * r) / math.sqrt(C))[:, None]).astype(np.float32)


def write_npy(path, a):
    np.save(path, a)


def write_fvecs(path, a):
    with open(path, "wb") as f:
        for row in a:
            f.write(struct.pack("<i", len(row)))
            f.write(np.asarray(row, dtype="<f4").tobytes())


def bad_case(db, name, path, want_in_msg, extra=()):
    before = export(db)
    p = run("import", db, path, "--quiet", *extra)
    err = p.stderr.strip()
    lines = err.splitlines()
    check(p.returncode == 2, f"{name}: exit status {p.returncode}, expected 2 ({err})")
    check(len(lines) == 1, f"{name}: error is not one line: {err!r}")
    check(os.path.basename(path) in err, f"{name}: error does not name the input: {err}")
    check(want_in_msg.lower() in err.lower(), f"{name}: error lacks '{want_in_msg}': {err}")
    check(export(db) == before, f"{name}: the store changed")
    print(f"ok  {name}: {err}")


def main():
    tmp = tempfile.mkdtemp(prefix="hydb-import-")
    here = os.getcwd()
    try:
        cases(tmp)
    finally:
        os.chdir(here)
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} import checks failed")
        sys.exit(1)
    print("import: all checks passed")


def cases(tmp):
    # Rows of .npy/.fvecs are keyed by their path relative to the current
    # directory: from here, tmp/good.npy's rows are good.npy#N.
    os.chdir(tmp)
    db = os.path.join(tmp, "db")
    assert run("init", db, "--dim", str(D), "--curvature", str(C)).returncode == 0
    base = points(50, 1)
    good = os.path.join(tmp, "good.npy")
    write_npy(good, base)
    p = run("import", db, good, "--quiet")
    check(p.returncode == 0, "good npy import failed: " + p.stderr)
    got = [json.loads(l) for l in export(db).splitlines()]
    check(len(got) == 50, f"expected 50 records, got {len(got)}")
    v = np.array([r["vector"] for r in sorted(got, key=lambda r: int(r["key"].split("#")[1]))],
                 dtype=np.float32)
    check(np.array_equal(v, base), "npy vectors did not round-trip bit-exactly")

    # same data through fvecs and JSON Lines and float64 npy
    db2 = os.path.join(tmp, "db2")
    run("init", db2, "--dim", str(D), "--curvature", str(C))
    fv = os.path.join(tmp, "same.fvecs")
    write_fvecs(fv, base)
    check(run("import", db2, fv, "--quiet").returncode == 0, "fvecs import failed")
    f8 = os.path.join(tmp, "same64.npy")
    write_npy(f8, base.astype(np.float64))
    check(run("import", db2, f8, "--quiet").returncode == 0, "float64 npy import failed")
    jl = os.path.join(tmp, "same.jsonl")
    with open(jl, "w") as f:
        for i, row in enumerate(base):
            f.write(json.dumps({"key": f"j{i}", "vector": [float(x) for x in row],
                                "caption": "ünïcode caption", "modality": "text",
                                "label": "unsafe", "meta": {"i": i}}) + "\n")
    check(run("import", db2, jl, "--quiet").returncode == 0, "jsonl import failed")
    recs = {r["key"]: r for r in map(json.loads, export(db2).splitlines())}
    check(len(recs) == 150, f"expected 150 records in db2, got {len(recs)}")
    for i in (0, 17, 49):
        a = recs[f"same.fvecs#{i}"]["vector"]
        b = recs[f"same64.npy#{i}"]["vector"]
        c = recs[f"j{i}"]["vector"]
        check(np.array_equal(np.float32(a), base[i]) and np.array_equal(np.float32(b), base[i])
              and np.array_equal(np.float32(c), base[i]), f"row {i} differs between formats")
    j = recs["j3"]
    check(j["caption"] == "ünïcode caption" and j["modality"] == "text" and j["label"] == "unsafe"
          and j["meta"] == {"i": 3}, f"jsonl fields lost: {j}")

    # --with-time and --from poincare
    x = points(5, 2)
    x0 = np.sqrt(1 / C + (x.astype(np.float64) ** 2).sum(1))
    wt = os.path.join(tmp, "withtime.npy")
    write_npy(wt, np.hstack([x0[:, None], x.astype(np.float64)]))
    check(run("import", db2, wt, "--quiet", "--with-time").returncode == 0, "--with-time failed")
    ball = x.astype(np.float64) / (1 + np.sqrt(1 + C * (x.astype(np.float64) ** 2).sum(1)))[:, None]
    pc = os.path.join(tmp, "ball.npy")
    write_npy(pc, ball)
    check(run("import", db2, pc, "--quiet", "--from", "poincare").returncode == 0, "--from poincare failed")
    recs = {r["key"]: r for r in map(json.loads, export(db2).splitlines())}
    for i in range(5):
        a = np.float64(recs[f"withtime.npy#{i}"]["vector"])
        b = np.float64(recs[f"ball.npy#{i}"]["vector"])
        check(np.allclose(a, x[i], rtol=1e-6, atol=1e-6), f"--with-time row {i} wrong")
        check(np.allclose(b, x[i], rtol=1e-5, atol=1e-5), f"--from poincare row {i} wrong: {b} vs {x[i]}")

    # --- bad inputs -----------------------------------------------------------
    p = os.path.join(tmp, "wrongdim.npy")
    write_npy(p, points(3, 3)[:, :D - 1])
    bad_case(db, "wrong dimension (npy)", p, "columns")
    p = os.path.join(tmp, "wrongdim.fvecs")
    write_fvecs(p, points(3, 3)[:, :D - 2])
    bad_case(db, "wrong dimension (fvecs)", p, "components")
    p = os.path.join(tmp, "wrongdim.jsonl")
    with open(p, "w") as f:
        f.write(json.dumps({"key": "a", "vector": [0.1] * D}) + "\n")
        f.write(json.dumps({"key": "b", "vector": [0.1] * (D + 1)}) + "\n")
    bad_case(db, "wrong dimension (jsonl line 2)", p, "line 2")
    for pos in (0, 7, D - 1):  # first, middle, SIMD tail
        for val, word in ((np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")):
            a = points(4, 4)
            a[2, pos] = val
            p = os.path.join(tmp, f"nonfinite{pos}.npy")
            write_npy(p, a)
            bad_case(db, f"{word} at component {pos}", p, word)
    a = points(4, 5).astype(np.float64)
    a[1, 3] = 1e39  # finite in float64, infinite as float32
    p = os.path.join(tmp, "overflow.npy")
    write_npy(p, a)
    bad_case(db, "float32 overflow", p, "overflow")
    x0 = np.sqrt(1 / C + (x.astype(np.float64) ** 2).sum(1))
    p = os.path.join(tmp, "sheet.npy")
    write_npy(p, np.hstack([-x0[:, None], x.astype(np.float64)]))
    bad_case(db, "wrong sheet (--with-time)", p, "sheet", ("--with-time",))
    p = os.path.join(tmp, "offhyp.npy")
    write_npy(p, np.hstack([1.5 * x0[:, None], x.astype(np.float64)]))
    bad_case(db, "off the hyperboloid (--with-time)", p, "hyperboloid", ("--with-time",))
    p = os.path.join(tmp, "outside.npy")
    write_npy(p, np.full((2, D), 1.0))
    bad_case(db, "outside the Poincare ball", p, "ball", ("--from", "poincare"))
    raw = open(good, "rb").read()
    for cut in (5, 100, len(raw) - 1):
        p = os.path.join(tmp, f"trunc{cut}.npy")
        open(p, "wb").write(raw[:cut])
        bad_case(db, f"truncated npy ({cut} bytes)", p, "trunc")
    fraw = open(fv, "rb").read()
    p = os.path.join(tmp, "trunc.fvecs")
    open(p, "wb").write(fraw[:-3])
    bad_case(db, "truncated fvecs", p, "trunc")
    for n, (line, why) in enumerate((('{"key": "a", "vector": [1, 2', "column"),
                                      ('{"key": "a"}', "vector"),
                                      ('["not", "an object"]', "object"),
                                      ('{"key": "", "vector": []}', "key"),
                                      ('{"key": "a", "vector": [1, "x"]}', "component"),
                                      ('{"key": "a", "vector": %s, "label": "maybe"}' % json.dumps([0.1] * D), "label"))):
        p = os.path.join(tmp, f"malformed{n}.jsonl")
        with open(p, "w") as f:
            f.write(json.dumps({"key": "fine", "vector": [0.1] * D}) + "\n\n")
            f.write(line + "\n")
        bad_case(db, f"malformed JSON ({why})", p, "line 3")
    p = os.path.join(tmp, "bigkey.jsonl")
    with open(p, "w") as f:
        f.write(json.dumps({"key": "k" * 5000, "vector": [0.1] * D}) + "\n")
    bad_case(db, "oversized key", p, "key")
    p = os.path.join(tmp, "bigcap.jsonl")
    with open(p, "w") as f:
        f.write(json.dumps({"key": "k", "vector": [0.1] * D, "caption": "c" * 70000}) + "\n")
    bad_case(db, "oversized caption", p, "caption")
    p = os.path.join(tmp, "badutf8.jsonl")
    with open(p, "wb") as f:
        f.write(b'{"key": "k", "vector": ' + json.dumps([0.1] * D).encode() + b', "caption": "caf\xc3("}\n')
    bad_case(db, "invalid UTF-8 in a caption", p, "UTF-8")
    p = os.path.join(tmp, "nul.jsonl")
    with open(p, "w") as f:
        f.write(json.dumps({"key": "k", "vector": [0.1] * D, "caption": "a\u0000b"}) + "\n")
    bad_case(db, "NUL in a caption", p, "NUL")

    # a database made by a newer format version
    newer = os.path.join(tmp, "newer")
    shutil.copytree(db, newer)
    subprocess.run(["/usr/bin/python3", "-c", NEWER_PY, newer], check=True)
    q = run("stats", newer)
    check(q.returncode == 2 and "format version 9;" in q.stderr, f"newer format: {q.returncode} {q.stderr}")
    print("ok  newer format version:", q.stderr.strip())

    # resume: kill an import midway, rerun, the result equals a clean import
    big = points(30000, 6)
    bp = os.path.join(tmp, "big.npy")
    write_npy(bp, big)
    db3 = os.path.join(tmp, "db3")
    run("init", db3, "--dim", str(D), "--curvature", str(C))
    proc = subprocess.Popen([HYDB, "import", db3, bp, "--batch", "500", "--quiet"])
    t0 = time.time()
    while time.time() - t0 < 30:
        s = run("stats", db3, "--json")
        if s.returncode == 0 and json.loads(s.stdout)["count"] >= 1000:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_killed = json.loads(run("stats", db3, "--json").stdout)["count"]
    check(n_killed % 500 == 0, f"a killed import left a partial batch: {n_killed}")
    r = run("import", db3, bp)
    check(r.returncode == 0 and ("resuming after" in r.stderr or n_killed == 30000),
          f"resume failed: {r.stderr}")
    n_after = json.loads(run("stats", db3, "--json").stdout)["count"]
    check(n_after == 30000, f"after resume: {n_after} records")
    r = run("import", db3, bp)
    check("imported 0 rows" in r.stderr, f"re-import should be a no-op: {r.stderr}")
    print(f"ok  resume: killed at {n_killed} rows, finished with {n_after}")
    check("0 store problems, 0 index problems" in run("check", db3).stdout, "check after resume")


# Rewrites the stored format version to 9 in every copy of the meta leaf
# (LMDB keeps older page versions around), as a newer hydb would have.
NEWER_PY = r'''
import sys, os
p = os.path.join(sys.argv[1], "data.mdb")
b = open(p, "rb").read()
assert b"format_version1" in b
open(p, "wb").write(b.replace(b"format_version1", b"format_version9"))
'''

if __name__ == "__main__":
    main()
