#!/bin/sh
# --precision f32|bf16 on hydb encode, ingest and query (issue 19):
# * a database holds embeddings of one precision: ingest with the other is
#   refused (exit 2, one line, nothing stored), whether the model comes from
#   --model or from the database; a database made before precisions were
#   recorded counts as f32;
# * query --text/--image may use either precision on any database;
# * bf16 embeddings of the tiny model are within cosine 0.9995 and radius
#   0.005 of f32 ones;
# * where bf16 cannot run (no oneDNN in the build, or a CPU without
#   AVX512_BF16/AMX, forced here with oneDNN's DNNL_MAX_CPU_ISA) --precision
#   bf16 fails in one line saying so (exit 1), before anything is made;
# * a bad value is a usage error.
# The bf16 steps skip (the rest still runs) where this machine cannot run
# them; the test exits 77 only if none of them could.
set -eu
: "${HYDB_BUILDDIR:?}" "${HYDB_SRCDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=/usr/bin/python3
T=$(mktemp -d /tmp/hydb-precision-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "test_precision: FAIL: $*"; exit 1; }
count() { "$H" stats "$1" --json | sed -n 's/^{"count":\([0-9]*\),.*/\1/p'; }
# expect RC CMD...: run CMD (stdout to $T/out, stderr to $T/err), check RC
expect() {
	want=$1
	shift
	rc=0
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || { cat "$T/err"; fail "exit $rc, wanted $want: $*"; }
}
one_line() { [ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err"; fail "$1: not one line"; }; }

M=$T/tiny.st
$PY "$HYDB_SRCDIR/tools/hydb-convert" --tiny "$M" --seed 1 >/dev/null
mkdir "$T/img" "$T/img2"
cp "$HYDB_SRCDIR/tests/data/photo420.jpg" "$HYDB_SRCDIR/tests/data/rgb16.png" "$T/img/"
cp "$HYDB_SRCDIR/tests/data/exact224.png" "$T/img2/"

# Usage errors.
expect 1 "$H" encode --model "$M" --precision fp16 --text cat
grep -q "use f32 or bf16" "$T/err" || fail "bad --precision message"
expect 1 "$H" ingest "$T/db0" "$T/img" --model "$M" --precision 16

# Can bf16 run here?
bf16=yes
if ! "$H" encode --model "$M" --precision bf16 --text cat >/dev/null 2>"$T/err"; then
	one_line "unsupported bf16"
	grep -Eq "no bfloat16 engine|neither AVX512_BF16 nor AMX" "$T/err" ||
		{ cat "$T/err"; fail "bf16 refused without saying why"; }
	echo "note: bf16 cannot run here: $(cat "$T/err")"
	bf16=no
fi

# f32 database: the precision is recorded, bf16 ingest refused.
cd "$T"
expect 0 "$H" ingest db img --model "$M" --quiet
n=$(count db)
if [ $bf16 = yes ]; then
	expect 2 "$H" ingest db img2 --model "$M" --precision bf16 --quiet
	one_line "mixed ingest"
	grep -q "made with --precision f32; refusing to add --precision bf16" "$T/err" ||
		{ cat "$T/err"; fail "mixed ingest message"; }
	[ "$(count db)" = "$n" ] || fail "refused ingest stored something"
	# The model recorded in the database, precision from the flag.
	expect 2 "$H" ingest db img2 --precision bf16 --quiet
	grep -q "refusing to add --precision bf16" "$T/err" || fail "mixed ingest (recorded model)"
	# Queries may use either precision.
	expect 0 "$H" query db --text "a photo" --precision bf16 -k 2 --json
	[ "$(wc -l <"$T/out")" = 2 ] || fail "bf16 query on an f32 database"
fi
expect 0 "$H" ingest db img2 --model "$M" --quiet --precision f32
[ "$(count db)" -gt "$n" ] || fail "f32 ingest into an f32 database stored nothing"

if [ $bf16 = yes ]; then
	# bf16 database: f32 ingest refused, bf16 accepted.
	expect 0 "$H" ingest db16 img --model "$M" --precision bf16 --quiet
	n=$(count db16)
	expect 2 "$H" ingest db16 img2 --model "$M" --quiet
	grep -q "made with --precision bf16; refusing to add --precision f32" "$T/err" ||
		{ cat "$T/err"; fail "f32 into bf16 message"; }
	[ "$(count db16)" = "$n" ] || fail "refused ingest stored something"
	expect 0 "$H" ingest db16 img2 --model "$M" --precision bf16 --quiet
	[ "$(count db16)" -gt "$n" ] || fail "bf16 ingest into a bf16 database"

	# bf16 against f32 embeddings of the same inputs.
	for p in f32 bf16; do
		expect 0 "$H" encode --model "$M" --precision $p --json \
			--text "a photo of a cat" --text "two dogs on a beach" \
			--image img/photo420.jpg img/rgb16.png img2/exact224.png
		mv "$T/out" "$T/$p.jsonl"
	done
	$PY - "$T/f32.jsonl" "$T/bf16.jsonl" <<'EOF' || fail "bf16 too far from f32"
import json, sys
import numpy as np
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 5, (len(a), len(b))
for x, y in zip(a, b):
    u, v = np.array(x["embedding"]), np.array(y["embedding"])
    cos = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
    dr = abs(x["radius"] - y["radius"])
    print("bf16 vs f32: cosine %.7f |dradius| %.2e" % (cos, dr))
    assert cos >= 0.9995 and dr <= 0.005, (cos, dr)
    assert x["embedding"] != y["embedding"], "bf16 gave the f32 result"
EOF

	# A CPU without bf16: oneDNN's own switch hides the instructions.
	expect 1 env DNNL_MAX_CPU_ISA=AVX512_CORE "$H" encode --model "$M" --precision bf16 --text cat
	one_line "no bf16 CPU"
	grep -q "neither AVX512_BF16 nor AMX; use precision f32" "$T/err" ||
		{ cat "$T/err"; fail "no bf16 CPU message"; }
	expect 1 env DNNL_MAX_CPU_ISA=AVX512_CORE "$H" ingest db3 img --model "$M" --precision bf16
	one_line "no bf16 CPU, ingest"
	[ ! -e db3 ] || fail "refused bf16 ingest made a database"
fi
echo "test_precision: ok (bf16 $bf16)"
[ $bf16 = yes ] || exit 77
