#!/bin/sh
# Points far from the origin are stored and found (issue 12): 300 points at
# radii 5-15 and 40 at 16-19.9 in 16 dimensions (most of the latter with
# every component beyond half precision's 65504, which the index's walk
# copy once turned into infinities), 20 near the origin, in shuffled order.
# Every record must be the first answer to a search for its own vector at
# the default ef, the index's top 5 must be the exact top 5, and
# `hydb check` must search every node by its own vector and find no miss.
# Keys are taken from `hydb export`, not from the import's naming rule.
set -eu
: "${HYDB_BUILDDIR:?}"
PY=${PYTHON3:-/usr/bin/python3}
"$PY" -c "import numpy" 2>/dev/null || { echo "skip: numpy missing"; exit 77; }
T=$(mktemp -d /tmp/hydb-far-XXXXXX)
trap 'rm -rf "$T"' EXIT
exec "$PY" - "$HYDB_BUILDDIR/hydb" "$T" <<'PY'
import json, subprocess, sys
import numpy as np

hydb, t = sys.argv[1], sys.argv[2]
db = t + "/db"
D = 16
failures = []


def run(*args):
    return subprocess.run([hydb, *args], capture_output=True, text=True)


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


rng = np.random.default_rng(12)
r = np.concatenate([rng.uniform(5, 15, 300), rng.uniform(16, 19.9, 40),
                    rng.uniform(0.1, 2, 20)])
rng.shuffle(r)
u = rng.standard_normal((len(r), D))
u /= np.linalg.norm(u, axis=1, keepdims=True)
x = (u * np.sinh(r)[:, None]).astype(np.float32)
np.save(t + "/far.npy", x)
big = int((np.abs(x) > 65504).any(axis=1).sum())
check(big >= 40, f"only {big} rows have a component beyond 65504")

p = run("init", db, "--dim", str(D))
check(p.returncode == 0, f"init: {p.stderr}")
p = run("import", db, t + "/far.npy", "--quiet")
check(p.returncode == 0, f"import: {p.stderr}")
if failures:
    sys.exit(1)

# key of every row, matched by its vector
row_of = {x[i].tobytes(): i for i in range(len(x))}
key = [None] * len(x)
for line in run("export", db).stdout.splitlines():
    e = json.loads(line)
    key[row_of[np.array(e["vector"], dtype=np.float32).tobytes()]] = e["key"]
check(None not in key, "export lacks some rows")


def answer(*args):
    p = run("query", db, *args, "--json")
    check(p.returncode == 0, f"query {args}: {p.stderr}")
    return [json.loads(l)["key"] for l in p.stdout.splitlines()]


missed = [i for i in range(len(x)) if answer("--like", key[i], "-k", "1")[:1] != [key[i]]]
check(not missed, f"{len(missed)} of {len(x)} records miss themselves at the default ef "
      f"(radii {sorted(round(float(r[i]), 2) for i in missed)[:10]})")
# the issue's query: a beam larger than the database
top = answer("--like", key[22], "-k", "5", "--ef", "1000")
check(top[:1] == [key[22]], f"--ef 1000 for row 22 (radius {r[22]:.2f}) returns {top}")
for i in range(0, len(x), 36):
    got, want = answer("--like", key[i], "-k", "5"), answer("--like", key[i], "-k", "5", "--exact")
    check(got == want, f"row {i} (radius {r[i]:.2f}): index {got}, exact {want}")

p = run("check", db)
check(p.returncode == 0, f"check: exit {p.returncode}: {p.stdout[-500:]}")
want = f"searched {len(x)} index nodes by their own vector at ef 64: 0 not returned"
check(want in p.stdout, f"check does not report '{want}': {p.stdout[-500:]}")
if failures:
    sys.exit(1)
print(f"test_far: {len(x)} records ({big} with components beyond 65504, radii up to "
      f"{r.max():.2f}) each found by its own vector; top 5 exact; check clean")
PY
