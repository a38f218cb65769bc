#!/bin/sh
# hydb query --vector-file runs many queries as one batch: .npy (n x D),
# .fvecs, JSON Lines (an array or {"vector": [...]} a line, a byte-order
# mark allowed) and one JSON array. Each query's results must equal those
# of the same query given alone with --vector, in the index and with
# --exact, and every bad file is named with its real reason.
set -eu
: "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
"$PY" -c "import numpy" 2>/dev/null || { echo "skip: numpy missing"; exit 77; }
T=$(mktemp -d /tmp/hydb-qbatch-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_query_batch: FAIL: $*"; exit 1; }

"$PY" - <<'PY'
import json, numpy as np
rng = np.random.default_rng(7)
def on_sheet(n, d, rmax):
    v = rng.normal(size=(n, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = rng.uniform(0.1, rmax, size=(n, 1))
    return (v * np.sinh(r)).astype(np.float32)
np.save("base.npy", on_sheet(2000, 12, 3.0))
q = on_sheet(25, 12, 3.0)
np.save("q.npy", q)
np.save("q64.npy", q.astype(np.float64))
with open("q.fvecs", "wb") as f:
    for row in q:
        np.array([12], dtype=np.int32).tofile(f)
        row.tofile(f)
with open("q.jsonl", "w", encoding="utf-8") as f:
    f.write("\ufeff")
    for i, row in enumerate(q):
        v = [float(x) for x in row]
        f.write(json.dumps(v if i % 2 else {"vector": v}) + "\n")
        if i == 3:
            f.write("   \n")
with open("one.json", "w") as f:
    json.dump([float(x) for x in q[4]], f, indent=1)
with open("vectors.txt", "w") as f:
    for row in q:
        f.write(json.dumps([float(x) for x in row]) + "\n")
with open("bad_dim.jsonl", "w") as f:
    f.write(json.dumps([0.1] * 12) + "\n" + json.dumps([0.1] * 11) + "\n")
np.save("t3.npy", np.zeros((2, 3, 12), np.float32))
PY
"$H" init db --dim 12 >/dev/null
"$H" import db base.npy --quiet

# the reference: each query alone
i=0
while IFS= read -r v; do
	"$H" query db --vector "$v" -k 5 --json | sed "s/^{\"query\":0,/{\"query\":$i,/" >>single.jsonl
	"$H" query db --vector "$v" -k 5 --json --exact | sed "s/^{\"query\":0,/{\"query\":$i,/" >>single_exact.jsonl
	i=$((i + 1))
done <vectors.txt
[ "$i" = 25 ] || fail "wrote $i reference queries"
for f in q.npy q64.npy q.fvecs q.jsonl vectors.txt; do
	"$H" query db --vector-file "$f" -k 5 --json >batch.jsonl || fail "$f: exit $?"
	cmp -s batch.jsonl single.jsonl || { diff batch.jsonl single.jsonl | head; fail "$f: batch differs from single queries"; }
	"$H" query db --vector-file "$f" -k 5 --json --exact >batch.jsonl
	cmp -s batch.jsonl single_exact.jsonl || fail "$f --exact: batch differs from single queries"
done
"$H" query db --vector-file one.json -k 5 --json >one.out
sed -n '/^{"query":4,/p' single.jsonl | sed 's/^{"query":4,/{"query":0,/' | cmp -s - one.out ||
	fail "one JSON array differs from the same query alone"
"$H" query db --vector-file q.npy -k 3 >table.txt
[ "$(grep -c '^query [0-9]*$' table.txt)" = 25 ] || fail "text output is not grouped by query"

# bad files: one line each, with the real reason, exit 2
bad() {
	want=$1
	shift
	st=0
	"$H" query db "$@" >/dev/null 2>err.txt || st=$?
	[ "$st" = 2 ] || fail "$* -> exit $st"
	[ "$(wc -l <err.txt)" = 1 ] || fail "$* -> $(cat err.txt)"
	grep -q -- "$want" err.txt || fail "$* -> '$(cat err.txt)' lacks '$want'"
}
mkdir adir
bad "adir: is a directory, not a vector file" --vector-file adir
bad "t3.npy: array is 3-D" --vector-file t3.npy
bad "bad_dim.jsonl: line 2: vector has 11 components, the database needs 12" --vector-file bad_dim.jsonl
bad "nothere.npy: No such file or directory" --vector-file nothere.npy
: >empty.jsonl
bad "empty.jsonl: holds no query vector" --vector-file empty.jsonl
st=0
"$H" query db --vector-file q.npy --sheet s.png >/dev/null 2>err.txt || st=$?
[ "$st" = 1 ] && grep -q "holds 25 queries" err.txt || fail "--sheet with 25 queries: exit $st $(cat err.txt)"
echo "test_query_batch: ok"
