#!/bin/sh
# hydb traverse --cone against tests/ref_traversal.py, a numpy
# reimplementation of HySAC's safety traversal retrieval: the same text (or
# [ROOT]) at every step of the walk,
#   1. on hierarchies of text vectors (chains of generic-to-specific texts
#      along random directions, scattered texts, image entries that must be
#      ignored) for queries in every chain and between them;
#   2. on the sample photos and their captions, embedded by the quick start's
#      demo model, for an image query.
# Then the walk's shape (the answer grows more generic toward the origin,
# ending at [ROOT]) and bad input.
set -eu
: "${HYDB_SRCDIR:?}" "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
PHOTOS=/usr/lib/python3/dist-packages/skimage/data
"$PY" -c "import numpy" 2>/dev/null || { echo "skip: python3-numpy missing"; exit 77; }
T=$(mktemp -d /tmp/hydb-traverse-test-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_traverse_cone: FAIL: $*"; exit 1; }

# compare DB QUERY_JSON_ARRAY NAME [hydb options...]: every step equal.
compare() {
	db=$1 q=$2 name=$3
	shift 3
	"$H" export "$db" -o all.jsonl >/dev/null
	"$PY" -c '
import json, sys
with open("texts.jsonl", "w") as o:
    for line in open("all.jsonl"):
        r = json.loads(line)
        if r["modality"] == "text":
            o.write(json.dumps({"key": r["key"], "vector": r["vector"]}) + "\n")
' 
	printf '{"vector": %s}\n' "$q" >q.json
	"$PY" "$HYDB_SRCDIR/tests/ref_traversal.py" texts.jsonl q.json --steps 50 \
		--curvature "${CURV:-1}" >ref.jsonl
	"$H" traverse "$db" --vector "$q" --all-steps --json "$@" >got.jsonl
	"$PY" - "$name" <<'PY' >>matched.txt
import json, sys
got = [json.loads(l)["key"] for l in open("got.jsonl")]
ref = [json.loads(l)["key"] for l in open("ref.jsonl")]
same = sum(a == b for a, b in zip(got, ref))
if len(got) != 50 or len(ref) != 50 or same != 50:
    bad = [(i, a, b) for i, (a, b) in enumerate(zip(got, ref)) if a != b][:5]
    sys.exit("%s: %d of %d steps match; first differences %s" % (sys.argv[1], same, len(ref), bad))
print("%s: %d of %d steps match, %d distinct answers" % (sys.argv[1], same, len(ref), len(set(got))))
PY
}

# 1. Hierarchies: 12 chains of 5 texts from radius 0.3 to 2.7 along a
# direction, each a little off the chain's line; 40 scattered texts; 20
# images on the chains (not candidates).
"$PY" - <<'PY'
import json
import numpy as np
rng = np.random.default_rng(7)
d, rows, queries = 16, [], []
for c in range(12):
    u = rng.standard_normal(d); u /= np.linalg.norm(u)
    for j, r in enumerate([0.3, 0.8, 1.3, 1.9, 2.7]):
        v = np.sinh(r) * u + 0.002 * np.sinh(r) * rng.standard_normal(d)
        rows.append({"key": "chain%d/%d" % (c, j), "vector": v.tolist(), "modality": "text"})
    rows.append({"key": "img%d" % c, "vector": (np.sinh(2.0) * u).tolist(), "modality": "image"})
    queries.append((np.sinh(3.2) * u + 0.01 * rng.standard_normal(d)).tolist())
for k in range(40):
    v = rng.standard_normal(d); v *= np.sinh(rng.uniform(0.2, 2.5)) / np.linalg.norm(v)
    rows.append({"key": "free%d" % k, "vector": v.tolist(), "modality": "text"})
for k in range(8):
    rows.append({"key": "img_free%d" % k, "vector": (rng.standard_normal(d) * 0.8).tolist(), "modality": "image"})
    v = rng.standard_normal(d); queries.append((v * np.sinh(2.5) / np.linalg.norm(v)).tolist())
with open("tree.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
with open("queries.txt", "w") as f:
    for q in queries:
        f.write(json.dumps([round(x, 6) for x in q]) + "\n")
PY
"$H" init tree.db --dim 16 >/dev/null
"$H" import tree.db tree.jsonl >/dev/null
n=0
while read -r q; do
	n=$((n + 1))
	compare tree.db "$q" "tree query $n"
done <queries.txt
cat matched.txt

# The walk from a chain's far end: its own chain from specific to generic,
# then [ROOT] at the origin (weight 0).
q=$(head -1 queries.txt)
"$H" traverse tree.db --vector "$q" --json >walk.jsonl
"$PY" - <<'PY' || fail "walk shape: $(cat walk.jsonl)"
import json
keys = [json.loads(l)["key"] for l in open("walk.jsonl")]
chain = [k for k in keys if k.startswith("chain0/")]
assert keys[-1] == "[ROOT]", keys
assert len(chain) >= 3 and chain == sorted(chain, reverse=True), keys
PY

# 2. The demo model on the sample photos and captions.
if [ -f "$PHOTOS/astronaut.png" ]; then
	"$PY" "$HYDB_SRCDIR/tools/hydb-convert" --tiny model.safetensors --seed 1 >/dev/null
	mkdir photos
	for f in astronaut.png coffee.png chelsea.png rocket.jpg camera.png moon.png; do
		cp "$PHOTOS/$f" photos/
	done
	printf 'an astronaut\n' >photos/astronaut.txt
	printf 'a cup of coffee\n' >photos/coffee.txt
	printf 'a cat\n' >photos/chelsea.txt
	printf 'a rocket on a launch pad\n' >photos/rocket.txt
	printf 'a man with a camera\n' >photos/camera.txt
	printf 'the moon\n' >photos/moon.txt
	CURV=$("$H" model info model.safetensors --json |
		"$PY" -c 'import json,sys; print(repr(json.load(sys.stdin)["curvature"]))')
	"$H" ingest photos.db photos --model model.safetensors >/dev/null
	q=$("$H" encode --model model.safetensors --json --image photos/rocket.jpg |
		"$PY" -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.readline())["embedding"]))')
	compare photos.db "$q" "demo model, rocket.jpg"
	tail -1 matched.txt
	# an image given by path gives the same walk as its vector
	"$H" traverse photos.db photos/rocket.jpg --model model.safetensors --all-steps --json >byfile.jsonl
	cmp -s byfile.jsonl got.jsonl || fail "traverse IMAGE differs from traverse --vector of its embedding"
else
	echo "note: python3-skimage's photos missing; the demo-model part was skipped"
fi

# 3. Bad input: one line naming the problem, exit 1 for the command line.
for args in "--steps 1 --vector [1]" "--vector [1] --text x" "--vector [1] --bogus" ""; do
	set +e
	# shellcheck disable=SC2086
	"$H" traverse tree.db $args >out.txt 2>err.txt
	rc=$?
	set -e
	[ "$rc" -eq 1 ] && [ "$(wc -l <err.txt)" -eq 1 ] || fail "traverse $args: exit $rc, $(cat err.txt)"
done
set +e
"$H" traverse tree.db --vector '[1,2]' >out.txt 2>err.txt
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q 'dimension\|components' err.txt || fail "wrong dimension: exit $rc, $(cat err.txt)"
echo "test_traverse_cone: ok"
