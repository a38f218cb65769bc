#!/bin/sh
# The command line refuses what it cannot mean, with one line and exit 1,
# and never acts on another database than the one named:
#  - every numeric option is parsed whole and in range (--ef -1 once
#    crashed, --ef -2 spun forever, --ef abc meant the default);
#  - a first argument spelled like a database that is not one is an error,
#    never a key with ./hydb.db as the database (a typo once deleted from
#    ./hydb.db);
#  - filters intersect: --safe-only is never weakened by --label, a repeated
#    --label or --modality means any of them, a contradiction is an error;
#  - --recall (the self-measured beam) is a fraction in (0, 1] and excludes
#    --ef and --exact;
#  - calibrate refuses what cannot be calibrated (one class, no matching
#    key, a directory as the labels file) and stores nothing then.
set -eu
: "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
T=$(mktemp -d /tmp/hydb-strict-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fails=0
fail() { echo "test_cli_strict: FAIL: $*"; fails=$((fails + 1)); }

# expect CODE PATTERN CMD...: exit code CODE, one stderr line matching PATTERN
expect() {
	code=$1 pat=$2
	shift 2
	st=0
	timeout 20 "$@" >out.txt 2>err.txt || st=$?
	[ "$st" -eq "$code" ] || { fail "$* -> exit $st, want $code ($(head -c 300 err.txt))"; return 0; }
	[ "$(wc -l <err.txt)" -le 1 ] || fail "$* -> more than one error line: $(cat err.txt)"
	if [ -z "$pat" ]; then
		[ ! -s err.txt ] || fail "$* -> unexpected stderr: $(cat err.txt)"
		return 0
	fi
	grep -q -- "$pat" err.txt || fail "$* -> stderr '$(cat err.txt)' lacks '$pat'"
}

"$PY" - <<'PY'
import json, random
random.seed(3)
with open('recs.jsonl', 'w') as f:
    for i in range(60):
        lab = ['safe', 'unsafe', 'unknown'][i % 3]
        mod = ['image', 'text'][(i // 3) % 2]
        r = 0.3 + (1.5 if lab == 'unsafe' else 0) + random.random() * 0.3
        v = [random.gauss(0, 1) for _ in range(4)]
        n = sum(x * x for x in v) ** .5
        f.write(json.dumps({"key": "k%d" % i, "vector": [x / n * r for x in v],
                            "label": lab, "modality": mod}) + "\n")
PY
"$H" init hydb.db --dim 4 >/dev/null
"$H" import hydb.db recs.jsonl --quiet
"$H" init my.db --dim 4 >/dev/null
"$H" import my.db recs.jsonl --quiet

# ---- numbers
for bad in -1 -2 -100 4294967295 18446744073709551617 abc 5x "" " 5" 0 100001 1e3; do
	expect 1 "hydb query: --ef: '$bad' is not an integer in 1..100000" "$H" query my.db --like k0 --ef "$bad"
done
for bad in -1 0 abc 2.5 100001; do
	expect 1 "hydb query: -k: '$bad' is not an integer" "$H" query my.db --like k0 -k "$bad"
done
expect 1 "hydb init: --dim: '-3' is not an integer in 1..65536" "$H" init x.db --dim -3
expect 1 "hydb init: --curvature: 'nan'" "$H" init x.db --dim 3 --curvature nan
expect 1 "hydb init: --curvature: '1x'" "$H" init x.db --dim 3 --curvature 1x
expect 1 "hydb init: --m: '-1'" "$H" init x.db --dim 3 --m -1
expect 1 "hydb init: --ef-construction: 'abc'" "$H" init x.db --dim 3 --ef-construction abc
[ ! -e x.db ] || fail "a refused init created x.db"
expect 1 "hydb stats: --bins: '0'" "$H" stats my.db --bins 0
expect 1 "hydb stats: --bins: '7x'" "$H" stats my.db --bins 7x
expect 1 "hydb get: --id: '-1'" "$H" get my.db --id -1
expect 1 "hydb delete: --id: 'x'" "$H" delete my.db --id x
expect 1 "hydb query: --min-radius: 'abc'" "$H" query my.db --like k0 --min-radius abc
expect 1 "hydb query: --max-radius: '-1'" "$H" query my.db --like k0 --max-radius -1
expect 1 "hydb query: --min-radius 2 is above --max-radius 1" "$H" query my.db --like k0 --min-radius 2 --max-radius 1
expect 1 "hydb traverse: --steps: '1'" "$H" traverse my.db --text x --steps 1
# the self-measured beam: --recall in (0, 1], not with --ef or --exact;
# hydb tune measures (60 records: below the size an import measures at)
for bad in 0 -0.5 1.5 abc nan; do
	expect 1 "hydb query: --recall: '$bad'" "$H" query my.db --like k0 --recall "$bad"
	expect 1 "hydb tune: --recall: '$bad'" "$H" tune my.db --recall "$bad"
done
expect 1 "hydb tune: --sample: '0'" "$H" tune my.db --sample 0
expect 1 "--recall picks the beam; --ef sets it" "$H" query my.db --like k0 --recall 0.9 --ef 20
expect 1 "--recall picks the index's beam; --exact" "$H" query my.db --like k0 --recall 0.9 --exact
expect 2 "not measured its recall yet" "$H" tune my.db --show
expect 0 "" "$H" tune my.db --recall 0.99
grep -q "^recall@10 0.99: ef " out.txt || fail "hydb tune printed no beam: $(cat out.txt)"
expect 0 "" "$H" tune my.db --show
expect 0 "" "$H" query my.db --like k0 --recall 0.99 -k 3
grep -q "k0 " out.txt || fail "--recall 0.99 did not find k0"
# the largest beam is accepted and answers
expect 0 "" "$H" query my.db --like k0 --ef 100000 -k 3
grep -q "k0 " out.txt || fail "--ef 100000 did not find k0"

expect 1 "--bound is used only with --redirect" "$H" query my.db --like k0 --bound 1
expect 1 "--exact uses no index" "$H" query my.db --like k0 --exact --ef 10

# ---- init tells what it did and never creates among other files
expect 0 "" "$H" init my.db --dim 4
grep -q "a database is already there (dim 4, curvature 1, 60 records); left as it was" out.txt ||
	fail "init on a populated database: $(cat out.txt)"
mkdir busy && touch busy/notes.txt
expect 1 "busy: directory holds other files and no database" "$H" init busy --dim 4
[ ! -e busy/data.mdb ] || fail "init created a database among other files"

# ---- a database path that is not one
before=$("$H" stats hydb.db --json | sed -n 's/^{"count":\([0-9]*\),.*/\1/p')
expect 2 "hydb delete: mydb-typo.db: no database there" "$H" delete mydb-typo.db k1
expect 2 "hydb get: typo.db: no database there" "$H" get typo.db k1
expect 2 "hydb stats: typo.db: no database there" "$H" stats typo.db
expect 2 "hydb query: typo.db: no database there" "$H" query typo.db --like k1
expect 2 "hydb calibrate: typo.db: no database there" "$H" calibrate typo.db --labels recs.jsonl
after=$("$H" stats hydb.db --json | sed -n 's/^{"count":\([0-9]*\),.*/\1/p')
[ "$before" = "$after" ] || fail "./hydb.db changed from $before to $after records"
mkdir notadb
expect 2 "notadb" "$H" stats notadb
expect 2 "notadb" "$H" delete notadb k1
touch plain
expect 2 "plain: not a database directory" "$H" delete plain k1
# a plain key still addresses ./hydb.db
expect 0 "" "$H" get k5
grep -q "^key  *k5$" out.txt || fail "get k5 in ./hydb.db: $(cat out.txt)"

# ---- deletes: one transaction, all or nothing unless --missing-ok
cp -r my.db del.db
expect 2 "hydb delete: key 'nope' not found; nothing was deleted" "$H" delete del.db k1 k2 nope
"$H" get del.db k1 >/dev/null 2>&1 || fail "a failed batch delete removed k1"
expect 0 "" "$H" delete del.db k1 k2 k2 nope --missing-ok
grep -q "deleted 2 records; 2 of the 4 named were repeats or not there" out.txt || fail "--missing-ok: $(cat out.txt)"
printf 'k3\n\nk4\r\nk5\n' >keys.txt
expect 0 "" "$H" delete del.db --keys-file keys.txt
grep -q "deleted 3 records" out.txt || fail "--keys-file: $(cat out.txt)"
expect 1 "not both" "$H" delete del.db k6 --keys-file keys.txt
mkdir keys.d
expect 2 "keys.d: is a directory, not a keys file" "$H" delete del.db --keys-file keys.d
n=$("$H" stats del.db --json | sed -n 's/^{"count":\([0-9]*\),.*/\1/p')
[ "$n" = 55 ] || fail "$n records left after deleting 5 of 60"
"$H" check del.db >check.txt 2>&1 || fail "hydb check after batch deletes: $(cat check.txt)"

# ---- filters
labels() { "$PY" -c 'import sys, json; print(" ".join(sorted({json.loads(l)[sys.argv[1]] for l in sys.stdin})))' "$1" <out.txt; }
expect 1 "conflicts with --label" "$H" query my.db --like k0 -k 60 --safe-only --label unsafe
expect 0 "" "$H" query my.db --like k0 -k 60 --json --label unsafe --label unknown
[ "$(labels label)" = "unknown unsafe" ] || fail "--label unsafe --label unknown gave: $(labels label)"
expect 0 "" "$H" query my.db --like k0 -k 60 --json --label unsafe --label safe --safe-only
[ "$(labels label)" = "safe" ] || fail "--safe-only weakened by --label: $(labels label)"
expect 0 "" "$H" query my.db --like k0 -k 60 --json --label safe --safe-only --modality text
[ "$(labels label) $(labels modality)" = "safe text" ] || fail "--safe-only --modality text: $(labels label) $(labels modality)"
expect 0 "" "$H" query my.db --like k0 -k 60 --json --modality text --modality image
[ "$(labels modality)" = "image text" ] || fail "repeated --modality: $(labels modality)"
[ "$(wc -l <out.txt)" = 60 ] || fail "repeated --modality kept $(wc -l <out.txt) of 60"
expect 1 "--label: unknown value 'bad'" "$H" query my.db --like k0 --label bad

# ---- calibrate
printf 'k0,safe\n' >one.csv
expect 2 "image entries need both safe and unsafe labels" "$H" calibrate my.db --labels one.csv
printf 'zz,safe\nyy,unsafe\n' >none.csv
expect 2 "nothing to calibrate" "$H" calibrate my.db --labels none.csv
mkdir labels.d
expect 2 "labels.d: is a directory" "$H" calibrate my.db --labels labels.d
"$H" query my.db --like k0 -k 60 --json >out.txt
[ "$(labels label)" = "safe unknown unsafe" ] || fail "a refused calibration re-labelled entries: $(labels label)"
printf 'k0,safe\nk1,unsafe\nk6,safe\nk7,unsafe\n' >ok.csv
expect 0 "" "$H" calibrate my.db --labels ok.csv
grep -q "accuracy 1.0000" out.txt || fail "calibration of separable labels: $(cat out.txt)"

[ "$fails" -eq 0 ] || { echo "test_cli_strict: $fails failures"; exit 1; }
echo "test_cli_strict: ok"
