#!/bin/sh
# hydb import loses nothing silently (issue 12): a file rewritten within the
# same second or replaced by `cp -p` is imported again; sub/a.npy and a.npy
# get different keys and replacements are reported; a missing or bad file
# names the files not tried; 64-bit item ids survive export and import; a
# point beyond the largest radius is refused with its file and row, one of
# radius 15 is stored and found; numeric options are parsed strictly.
"${PYTHON3:-/usr/bin/python3}" -c "import numpy" 2>/dev/null || { echo "skip: numpy missing"; exit 77; }
: "${HYDB_BUILDDIR:?}"
exec "${PYTHON3:-/usr/bin/python3}" - <<'PY'
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HYDB = os.path.join(os.environ["HYDB_BUILDDIR"], "hydb")
D = 4
failures = []


def run(*args, cwd=None):
    return subprocess.run([HYDB, *args], capture_output=True, text=True, cwd=cwd)


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def records(db):
    p = run("export", db)
    assert p.returncode == 0, p.stderr
    return {r["key"]: r for r in map(json.loads, p.stdout.splitlines())}


def vectors(db, base, n):
    """Rows base#0..n-1 as float32, or None when any is missing."""
    recs = records(db)
    keys = [f"{base}#{i}" for i in range(n)]
    if not all(k in recs for k in keys):
        return None
    return np.float32([recs[k]["vector"] for k in keys])


def same(a, b):
    return a is not None and np.array_equal(a, b)


def init(tmp, name, c=1.0):
    db = os.path.join(tmp, name)
    p = run("init", db, "--dim", str(D), "--curvature", repr(c))
    assert p.returncode == 0, p.stderr
    return db


def rows(seed, n=3):
    return np.random.default_rng(seed).uniform(-1, 1, (n, D)).astype(np.float32)


def one_line(p):
    return p.stderr.strip().count("\n") == 0 and p.stderr.strip() != ""


def resume_cases(tmp):
    db = init(tmp, "resume")
    a = os.path.join(tmp, "a.npy")
    np.save(a, rows(1))
    ref = os.path.join(tmp, "ref")
    open(ref, "w").close()
    os.utime(a, (1_700_000_000, 1_700_000_000))
    p = run("import", db, a, "--quiet")
    check(p.returncode == 0, f"first import: {p.stderr}")
    # Rewritten within the same second: same size, same mtime.
    np.save(a, rows(2))
    os.utime(a, (1_700_000_000, 1_700_000_000))
    p = run("import", db, a)
    check(same(vectors(db, a, 3), rows(2)), "a same-second rewrite is imported again (new vectors stored)")
    check("changed since the last import, importing again from row 0" in p.stderr,
          f"a same-second rewrite is announced: {p.stderr.strip()}")
    check("replaced 3 existing records" in p.stderr, f"its replacements are reported: {p.stderr.strip()}")
    # Replaced by cp -p from a file with the same size and mtime.
    c = os.path.join(tmp, "c.npy")
    np.save(c, rows(3))
    os.utime(c, (1_700_000_000, 1_700_000_000))
    subprocess.run(["cp", "-p", c, a], check=True)
    p = run("import", db, a, "--quiet")
    check(p.returncode == 0 and same(vectors(db, a, 3), rows(3)), "a `cp -p` replacement is imported again")
    p = run("import", db, a)
    check("imported 0 rows" in p.stderr and "replaced" not in p.stderr,
          f"an unchanged file is still a no-op: {p.stderr.strip()}")


def key_cases(tmp):
    work = os.path.join(tmp, "work")
    os.makedirs(os.path.join(work, "sub"))
    db = init(tmp, "keys")
    np.save(os.path.join(work, "a.npy"), rows(4))
    np.save(os.path.join(work, "sub", "a.npy"), rows(5))
    check(run("import", db, "a.npy", "--quiet", cwd=work).returncode == 0, "import a.npy")
    p = run("import", db, "sub/a.npy", cwd=work)
    recs = records(db)
    check(len(recs) == 6 and "a.npy#0" in recs and "sub/a.npy#2" in recs,
          f"a.npy and sub/a.npy do not collide: {sorted(recs)}")
    check("replaced" not in p.stderr, f"no replacement claimed: {p.stderr.strip()}")
    check("a.npy#1" in recs and np.array_equal(np.float32(recs["a.npy#1"]["vector"]), rows(4)[1]),
          "a.npy's rows are intact after importing sub/a.npy")
    # The same file named three ways is one set of keys.
    p = run("import", db, "./a.npy", os.path.join(work, "a.npy"), "sub/../a.npy", "--quiet", cwd=work)
    check(p.returncode == 0 and len(records(db)) == 6, "./a.npy, $PWD/a.npy, sub/../a.npy keep the keys a.npy#N")
    # The same key base from another directory replaces, and says so.
    other = os.path.join(tmp, "other")
    os.makedirs(other)
    np.save(os.path.join(other, "a.npy"), rows(6))
    p = run("import", db, "a.npy", cwd=other)
    check(len(records(db)) == 6 and "a.npy: replaced 3 existing records (e.g. 'a.npy#0')" in p.stderr,
          f"a replacement is reported per file: {p.stderr.strip()}")
    # JSON Lines keys come from the file: duplicates and existing keys count.
    jl = os.path.join(tmp, "dup.jsonl")
    with open(jl, "w") as f:
        for k in ("a.npy#0", "x", "x"):
            f.write(json.dumps({"key": k, "vector": [0.1] * D}) + "\n")
    p = run("import", db, jl, "--quiet")
    check("replaced 2 existing records" in p.stderr, f"in-file duplicates and stored keys are counted: {p.stderr.strip()}")
    p = run("import", db, jl, jl, "--restart", "--quiet")
    check("all files: replaced 6 existing records" in p.stderr, f"a summary over files: {p.stderr.strip()}")


def missing_cases(tmp):
    db = init(tmp, "missing")
    a = os.path.join(tmp, "m_a.npy")
    b = os.path.join(tmp, "m_b.fvecs")
    np.save(a, rows(7))
    with open(b, "wb") as f:
        for r in rows(8):
            f.write(np.int32(D).tobytes() + r.tobytes())
    missing = os.path.join(tmp, "missing.npy")
    p = run("import", db, a, missing, b, "--quiet")
    check(p.returncode == 2 and one_line(p) and "missing.npy" in p.stderr and "nothing was imported" in p.stderr,
          f"a missing file is refused up front: {p.stderr.strip()}")
    check(len(records(db)) == 0, "nothing is stored when a named file is missing")
    for name, body, why in (("notes.txt", b"{}\n", "unknown format"), ("short.npy", b"\x93NUMPY", "npy")):
        bad = os.path.join(tmp, name)
        open(bad, "wb").write(body)
        p = run("import", db, a, bad, b, "--quiet")
        check(p.returncode == 2 and one_line(p) and name in p.stderr and why in p.stderr.lower()
              and len(records(db)) == 0, f"{name} refused up front: {p.stderr.strip()}")
    check(run("import", db, os.path.join(tmp, "notes.txt"), "--format", "jsonl", "--quiet").returncode == 2,
          "--format jsonl reads a .txt (and finds its empty object bad)")
    # A bad row midway in a fixed-size file: it is found while the rows are
    # ordered by radius, before any row of the file is stored; the files
    # after it are named.
    bad = os.path.join(tmp, "m_nan.npy")
    x = rows(9, 10)
    x[7, 1] = np.nan
    np.save(bad, x)
    c = os.path.join(tmp, "m_c.npy")
    np.save(c, rows(13))
    p = run("import", db, a, bad, b, c, "--batch", "5", "--quiet")
    recs = records(db)
    check(p.returncode == 2 and one_line(p), f"a bad row: exit 2, one line: {p.stderr.strip()}")
    check("m_nan.npy: row 7" in p.stderr and f"not tried: {b} {c}" in p.stderr,
          f"the bad row and the files not tried are named: {p.stderr.strip()}")
    check("stored before" not in p.stderr, f"no part of it is said to be stored: {p.stderr.strip()}")
    check(len(recs) == 3 and not any(k.startswith(bad) for k in recs),
          f"the files before it stay, no row of it is stored: {len(recs)} records")


def item_cases(tmp):
    db = init(tmp, "items")
    big = 230281971600714726
    jl = os.path.join(tmp, "items.jsonl")
    with open(jl, "w") as f:
        f.write('{"key": "i1", "vector": [0.1, 0.2, 0.3, 0.4], "item": %d}\n' % big)
        f.write('{"key": "i2", "vector": [0.1, 0.2, 0.3, 0.5], "item": 18446744073709551615}\n')
        f.write('{"key": "i3", "vector": [0.1, 0.2, 0.3, 0.6], "item": 7.0}\n')
    p = run("import", db, jl, "--quiet")
    check(p.returncode == 0, f"items import: {p.stderr}")
    out = run("export", db).stdout
    check(f'"item":{big}' in out and '"item":18446744073709551615' in out and '"item":7' in out,
          "export prints the 64-bit items exactly")
    ex = os.path.join(tmp, "exported.jsonl")
    open(ex, "w").write(out)
    db2 = init(tmp, "items2")
    check(run("import", db2, ex, "--quiet").returncode == 0, "the export imports")
    out2 = run("export", db2).stdout
    check(f'"item":{big}' in out2 and '"item":18446744073709551615' in out2,
          f"export -> import keeps {big} exactly")
    g = run("get", db2, "i1")
    check(f"item      {big}" in g.stdout, "hydb get shows the exact item")
    for val, why in (("-3", "negative"), ("1.5", "not an integer"), ("18446744073709551616", "beyond"),
                     ("1e19", "plain digits"), ('"12"', "string")):
        bad = os.path.join(tmp, "baditem.jsonl")
        with open(bad, "w") as f:
            f.write('{"key": "b", "vector": [0.1, 0.1, 0.1, 0.1]}\n')
            f.write('{"key": "b2", "vector": [0.1, 0.1, 0.1, 0.1], "item": %s}\n' % val)
        before = run("export", db).stdout
        p = run("import", db, bad, "--quiet")
        check(p.returncode == 2 and one_line(p) and "baditem.jsonl: line 2" in p.stderr and "item" in p.stderr
              and why in p.stderr and run("export", db).stdout == before,
              f"item {val} refused: {p.stderr.strip()}")


def query_keys(db, *args):
    p = run("query", db, *args, "--json")
    return [json.loads(l)["key"] for l in p.stdout.splitlines() if l.strip()], p


def radius_cases(tmp):
    c = 0.7
    db = init(tmp, "radius", c)
    base = os.path.join(tmp, "base.npy")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((300, D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    r = rng.uniform(0.1, 14.0, 300)
    np.save(base, (x * (np.sinh(math.sqrt(c) * r) / math.sqrt(c))[:, None]).astype(np.float32))
    check(run("import", db, base, "--quiet").returncode == 0, "300 points up to radius 14")
    far = os.path.join(tmp, "far.npy")
    a = rows(11)
    a[1, 2] = 1e20
    np.save(far, a)
    before = run("export", db).stdout
    p = run("import", db, far, "--quiet")
    check(p.returncode == 2 and one_line(p) and "far.npy: row 1" in p.stderr and "radius" in p.stderr
          and run("export", db).stdout == before, f"a row of 1e20 is refused, nothing stored: {p.stderr.strip()}")
    jl = os.path.join(tmp, "far.jsonl")
    with open(jl, "w") as f:
        f.write(json.dumps({"key": "far", "vector": [1e20, 0, 0, 0]}) + "\n")
    p = run("import", db, jl, "--quiet")
    check(p.returncode == 2 and one_line(p) and "far.jsonl: line 1" in p.stderr and "radius" in p.stderr,
          f"a JSON row of 1e20 is refused: {p.stderr.strip()}")
    # Radius 15 (sqrt(c)*15 = 12.5 <= 20) is stored and found.
    v = np.zeros(D)
    v[0] = math.sinh(math.sqrt(c) * 15.0) / math.sqrt(c)
    r15 = os.path.join(tmp, "r15.jsonl")
    with open(r15, "w") as f:
        f.write(json.dumps({"key": "r15", "vector": [float(t) for t in v]}) + "\n")
    p = run("import", db, r15, "--quiet")
    check(p.returncode == 0, f"radius 15 accepted: {p.stderr.strip()}")
    rad = json.loads(run("get", db, "r15", "--json").stdout)["radius"]
    check(abs(rad - 15.0) < 1e-3, f"radius 15 stored as {rad}")
    keys, q = query_keys(db, "--like", "r15", "--exact", "-k", "3")
    check(keys[:1] == ["r15"], f"query --like r15 --exact finds it: {keys} {q.stderr.strip()}")
    keys, q = query_keys(db, "--like", "r15", "-k", "3")
    check(keys[:1] == ["r15"], f"the index query finds it: {keys} {q.stderr.strip()}")
    # Poincare points at the edge of float32 are accepted (radius ~17.3/sqrt(c));
    # float64 points nearer the edge are refused as such.
    edge32 = np.zeros((1, D), dtype=np.float32)
    edge32[0, 0] = np.nextafter(np.float32(1.0), np.float32(0.0)) / np.float32(math.sqrt(c))
    p32 = os.path.join(tmp, "edge32.npy")
    np.save(p32, edge32)
    p = run("import", db, p32, "--from", "poincare", "--quiet")
    check(p.returncode == 0, f"a float32 point at the ball's edge is accepted: {p.stderr.strip()}")
    edge64 = np.zeros((2, D))
    edge64[1, 0] = (1 - 1e-12) / math.sqrt(c)
    p64 = os.path.join(tmp, "edge64.npy")
    np.save(p64, edge64)
    before = run("export", db).stdout
    p = run("import", db, p64, "--from", "poincare", "--quiet")
    check(p.returncode == 2 and one_line(p) and "edge64.npy: row 1" in p.stderr and "edge of the Poincare ball" in p.stderr
          and run("export", db).stdout == before, f"a float64 point nearer the edge is refused: {p.stderr.strip()}")


def option_cases(tmp):
    db = init(tmp, "opts")
    a = os.path.join(tmp, "o.npy")
    np.save(a, rows(12))
    for bad in ("-1", "abc", "5x", "0", "100001", " 5", "", "1e3"):
        p = run("import", db, a, "--batch", bad)
        check(p.returncode == 1 and one_line(p) and "--batch" in p.stderr,
              f"--batch '{bad}' refused with exit 1: {p.stderr.strip()}")
    check(len(records(db)) == 0, "nothing imported with a bad --batch")
    check(run("import", db, a, "--batch", "100000", "--quiet").returncode == 0, "--batch 100000 accepted")


def main():
    tmp = tempfile.mkdtemp(prefix="hydb-import-safety-")
    try:
        for case in (resume_cases, key_cases, missing_cases, item_cases, radius_cases, option_cases):
            try:
                case(tmp)
            except Exception as e:  # one broken case must not hide the others
                check(False, f"{case.__name__} stopped: {e!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"test_import_safety: {len(failures)} checks failed")
        sys.exit(1)
    print("test_import_safety: all checks passed")


main()
PY
