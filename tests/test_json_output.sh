#!/bin/sh
# Every --json output of every command parses as JSON, one object a line,
# whatever the keys, captions, texts and file names hold: quotes,
# backslashes, control characters, non-ASCII text, and a file name that is
# not UTF-8 (written as U+FFFD). Printing them raw once broke the line.
set -eu
: "${HYDB_BUILDDIR:?}" "${HYDB_SRCDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
"$PY" -c "import numpy, torch" 2>/dev/null || { echo "skip: numpy or torch missing"; exit 77; }
T=$(mktemp -d /tmp/hydb-json-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fails=0
fail() { echo "test_json_output: FAIL: $*"; fails=$((fails + 1)); }

# check NAME: stdin holds JSON Lines; each must parse, and WANT (a Python
# expression over the parsed list `rows`) must hold
check() {
	name=$1 want=$2
	"$PY" -c '
import json, sys
rows = []
for n, line in enumerate(sys.stdin, 1):
    try:
        rows.append(json.loads(line))
    except ValueError as e:
        sys.exit("line %d does not parse (%s): %r" % (n, e, line[:200]))
if not rows:
    sys.exit("no output")
if not eval(sys.argv[1]):
    sys.exit("assertion failed: %s on %r" % (sys.argv[1], rows[:3]))
' "$want" || fail "$name"
}

"$PY" "$HYDB_SRCDIR/tools/hydb-convert" --tiny model.safetensors --seed 1 >/dev/null
DIM=$("$H" model info model.safetensors --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["embed_dim"])')
CURV=$("$H" model info model.safetensors --json | "$PY" -c 'import json,sys; print(repr(json.load(sys.stdin)["curvature"]))')
"$PY" - "$DIM" <<'PY'
import json, random, sys
d = int(sys.argv[1])
random.seed(5)
odd = ['quote " inside', 'back\\slash', 'tab\there', 'line\nbreak', 'bell\x07', 'naïve café 東京 🚀', '\u2028sep']
with open("odd.jsonl", "w", encoding="utf-8") as f:
    for i, s in enumerate(odd * 3):
        v = [random.gauss(0, 0.1) for _ in range(d)]
        f.write(json.dumps({"key": "%s #%d" % (s, i), "vector": v, "caption": "caption: " + s,
                            "modality": ["image", "text"][i % 2], "label": ["safe", "unsafe"][i // 2 % 2],
                            "meta": {"note": s}}) + "\n")
with open("labels.csv", "w", encoding="utf-8") as f:
    for i, s in enumerate(odd * 3):
        if "\n" not in s:  # the labels file is one key a line
            f.write("%s #%d,%s\n" % (s, i, ["safe", "unsafe"][i // 2 % 2]))
PY
"$H" init db --dim "$DIM" --curvature "$CURV" >/dev/null
"$H" import db odd.jsonl --quiet
cp /dev/null q.json

"$H" query db --like 'quote " inside #0' -k 21 --json | check "query --json" 'len(rows) == 21 and any(r["key"] == "line\nbreak #3" for r in rows) and any(r["caption"] == "caption: naïve café 東京 🚀" for r in rows)'
"$H" query db --like 'back\slash #1' -k 3 --json --redirect --bound 0.01 | check "query --redirect --json" '"redirected_from" in rows[0]'
"$H" get db 'tab	here #2' --json | check "get --json" 'rows[0]["key"] == "tab\there #2" and rows[0]["meta"] == {"note": "tab\there"}'
"$H" stats db --json | check "stats --json" 'rows[0]["count"] == 21'
"$H" export db | check "export" 'len(rows) == 21 and {r["key"] for r in rows} >= {"bell\x07 #4"}'
"$H" model info model.safetensors --json --tensors | check "model info --json" 'rows[0]["embed_dim"] > 0'
"$H" calibrate db --labels labels.csv --json --dry-run | check "calibrate --json" 'all("threshold" in r for r in rows)'
"$H" encode --model model.safetensors --text 'say "hi" \ now' --text 'ünïcödé	tab' --json | check "encode --json" 'rows[0]["input"] == "say \"hi\" \\ now" and rows[1]["input"] == "ünïcödé\ttab"'
"$H" classify db --text 'a "quoted" \ caption' --model model.safetensors --json | check "classify --json" 'rows[0]["input"] == "a \"quoted\" \\ caption"'
"$H" traverse db --text 'a cat "on" a mat' --model model.safetensors --json --steps 5 | check "traverse --json" 'all("caption" in r and r["caption"].startswith("caption: ") for r in rows)'
# a file name that is not UTF-8
"$PY" - <<'PY'
from PIL import Image
Image.new("RGB", (40, 30), (200, 30, 30)).save(b"red\xff\"q.png", format="PNG")
PY
"$H" encode --model model.safetensors --image "$(printf 'red\377"q.png')" --json | check "encode --image non-UTF-8 name" 'rows[0]["input"] == "red\ufffd\"q.png"'
"$H" classify db "$(printf 'red\377"q.png')" --model model.safetensors --json | check "classify non-UTF-8 name" 'rows[0]["input"] == "red\ufffd\"q.png"'

[ "$fails" -eq 0 ] || { echo "test_json_output: $fails failures"; exit 1; }
echo "test_json_output: ok"
