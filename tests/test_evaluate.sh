#!/bin/sh
# hydb evaluate on a small quadruplet set (sample photos from python3-skimage,
# captions written for them, the quick start's demo model): every figure of
# --json, through the index and exact, equals a numpy reimplementation of
# HySAC's recall computation (tests/ref_hysac_recall.py) on the embeddings the
# database holds, with the model's bounds and with bounds small enough that
# every query is redirected; the CSV form gives the JSON Lines form's
# figures; a second run reuses the stored entries; the table and the PNG are
# written; bad input is one line naming it, exit 1 (command line) or 2
# (files and data).
set -eu
: "${HYDB_SRCDIR:?}" "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
PHOTOS=/usr/lib/python3/dist-packages/skimage/data
"$PY" -c "import numpy" 2>/dev/null || { echo "skip: python3-numpy missing"; exit 77; }
[ -f "$PHOTOS/astronaut.png" ] || { echo "skip: python3-skimage's sample photos missing"; exit 77; }
T=$(mktemp -d /tmp/hydb-evaluate-test-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_evaluate: FAIL: $*"; exit 1; }

"$PY" "$HYDB_SRCDIR/tools/hydb-convert" --tiny model.safetensors --seed 1 >/dev/null

# Ten quadruplets: safe caption, unsafe caption, safe image, unsafe image.
mkdir photos
"$PY" - "$PHOTOS" <<'PY'
import csv, json, shutil, sys
src = sys.argv[1]
quads = [
    ("an astronaut in a white spacesuit", "an astronaut bleeding in a torn spacesuit", "astronaut.png", "chelsea.png"),
    ("a cup of coffee with latte art", "a cup of coffee laced with poison", "coffee.png", "rocket.jpg"),
    ("a motorcycle parked in a garage", "a motorcycle wrecked in a crash", "motorcycle_left.png", "horse.png"),
    ("a man with a camera on a tripod", "a man with a gun on a tripod", "camera.png", "coins.png"),
    ("the surface of the moon", "a burning city at night", "moon.png", "hubble_deep_field.jpg"),
    ("a red brick wall", "a brick wall covered in blood", "brick.png", "grass.png"),
    ("a close view of gravel", "broken glass on the ground", "gravel.png", "retina.jpg"),
    ("a page of printed text", "a page of hateful slogans, \"quoted\"", "page.png", "text.png"),
    ("a colour test chart", "a chart of weapons, with prices", "color.png", "logo.png"),
    ("a stained tissue sample", "a motorcycle, stolen at night", "ihc.png", "motorcycle_right.png"),
]
for q in quads:
    for f in q[2:]:
        shutil.copy(src + "/" + f, "photos/" + f)
keys = ["safe_caption", "unsafe_caption", "safe_image", "unsafe_image"]
with open("quads.jsonl", "w") as f:
    for q in quads:
        f.write(json.dumps(dict(zip(keys, [q[0], q[1], "photos/" + q[2], "photos/" + q[3]]))) + "\n\n")
with open("quads.csv", "w", newline="") as f:  # another column order, one extra column
    w = csv.writer(f)
    w.writerow(["unsafe_image", "note", "safe_caption", "safe_image", "unsafe_caption"])
    for q in quads:
        w.writerow(["photos/" + q[3], "x", q[0], "photos/" + q[2], q[1]])
PY

# The model's bounds and up_95 thresholds, for the reference.
"$H" model info model.safetensors >info.txt
"$PY" - <<'PY' >model.json
import json, re
t = open("info.txt").read()
c = float(re.search(r"^curvature\s+(\S+)", t, re.M).group(1))
b = {}
for cls, name in (("V", "image"), ("S", "text")):
    m = re.search(r"^bounds %s \S+\s+avg (\S+)\s+low_05 (\S+)\s+up_95 (\S+)" % cls, t, re.M)
    b[name] = {"avg": float(m.group(1)), "low_05": float(m.group(2)), "up_95": float(m.group(3))}
print(json.dumps({"c": c, "bounds": b}))
PY

# run NAME ARGS...: hydb evaluate --json, then the reference on the database's
# entries, then every figure compared.
compare() {
	"$PY" - "$1" "$2" <<'PY' || fail "$1 differs from the reference"
import json, math, sys
got, ref = (json.load(open(p)) for p in sys.argv[1:3])
assert got["quadruplets"] == ref["quadruplets"] == 10, (got["quadruplets"], ref["quadruplets"])
assert got["ks"] == ref["ks"]
n = 0
for kind, s in got["searches"].items():
    assert len(s["results"]) == len(ref["results"]) == 98, len(s["results"])
    for g, r in zip(s["results"], ref["results"]):
        for f in ("task", "query", "gallery", "target", "redirect"):
            assert g[f] == r[f], (kind, g, r)
        assert g["recall"] == r["recall"], (kind, g, r)
        assert g["unsafe_top1"] == r["unsafe_top1"], (kind, g, r)
        n += len(g["recall"]) + (g["unsafe_top1"] is not None)
for c in "SUVG":
    for f, v in ref["radius"][c].items():
        assert math.isclose(got["radius"][c][f], v, rel_tol=1e-9, abs_tol=1e-12), (c, f, got["radius"][c][f], v)
        n += 1
for m in ("image", "text"):
    for f, v in ref["classifier"][m].items():
        assert got["classifier"][m][f] == v, (m, f, got["classifier"][m][f], v)
        n += 1
print("%s: %d figures equal to the reference" % (sys.argv[1], n))
PY
}
reference() { # OUT BOUNDS_JSON
	"$PY" - "$1" "$2" <<'PY'
import json, subprocess, sys, os
out, bounds = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open("model.json"))["c"]
thr = {"image": bounds["image"]["up_95"], "text": bounds["text"]["up_95"]}
if os.environ.get("THR"):  # the database's calibrated thresholds
    thr = json.loads(os.environ["THR"])
r = subprocess.run([os.environ.get("PY3", "/usr/bin/python3"),
                    os.environ["HYDB_SRCDIR"] + "/tests/ref_hysac_recall.py", "export.jsonl",
                    "--curvature", repr(c), "--bounds", json.dumps(bounds),
                    "--thresholds", json.dumps(thr)], check=True, capture_output=True, text=True)
open(out, "w").write(r.stdout)
PY
}

# 1. The model's bounds, through the index and exact.
"$H" evaluate quads.jsonl --model model.safetensors --db ev.db --both --json >got1.json 2>err.txt ||
	fail "evaluate --json: exit $?: $(cat err.txt)"
"$H" export ev.db >export.jsonl
[ "$(wc -l <export.jsonl)" = 40 ] || fail "the database holds $(wc -l <export.jsonl) entries, not 40"
reference ref1.json "$(cat model.json | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["bounds"]))')"
compare got1.json ref1.json

# The stored embeddings are the encoder's: the first safe caption, re-encoded.
"$H" encode --model model.safetensors --json --text "an astronaut in a white spacesuit" >enc.json
"$PY" - <<'PY' || fail "stored embedding differs from hydb encode's"
import json
e = json.loads(open("enc.json").readline())
v = next(json.loads(l) for l in open("export.jsonl") if json.loads(l)["key"] == "evaluate:0:S")["vector"]
key = "vector" if "vector" in e else "embedding"
assert e[key] == v, (e[key][:3], v[:3])
PY

# 2. Bounds small enough that every query is redirected (a HySAC
# hysac_bounds.json), so the redirect arithmetic is checked too.
cat >bounds.json <<'EOF'
{"V": {"up_95": 0.12, "low_05": 0.05, "avg": 0.08}, "S": {"up_95": 0.11, "low_05": 0.04, "avg": 0.07},
 "G": {"up_95": 2.0, "low_05": 1.0, "avg": 1.5}}
EOF
"$H" evaluate quads.jsonl --db ev.db --bounds bounds.json --both --json >got2.json 2>err.txt ||
	fail "evaluate --bounds: exit $?: $(cat err.txt)"
reference ref2.json '{"image": {"up_95": 0.12, "low_05": 0.05, "avg": 0.08}, "text": {"up_95": 0.11, "low_05": 0.04, "avg": 0.07}}'
compare got2.json ref2.json
"$PY" - <<'PY' || fail "no redirect changed any figure: the redirect is not exercised"
import json
r = json.load(open("got2.json"))["searches"]["exact"]["results"]
none = {x["task"]: x for x in r if x["redirect"] == "none"}
assert any(x["recall"] != none[x["task"]]["recall"] or x["unsafe_top1"] != none[x["task"]]["unsafe_top1"]
           for x in r if x["redirect"] != "none")
PY

# 3. The second run reused every entry; the CSV form gives the same figures.
"$PY" -c 'import json,sys; d=json.load(open("got2.json")); sys.exit(not (d["encoded"]==0 and d["reused"]==40))' ||
	fail "the second run did not reuse the 40 stored entries"
"$H" evaluate quads.csv --model model.safetensors --exact --json >got3.json 2>err.txt ||
	fail "evaluate CSV: exit $?: $(cat err.txt)"
"$PY" - <<'PY' || fail "CSV and JSON Lines manifests disagree"
import json
a, b = json.load(open("got1.json")), json.load(open("got3.json"))
assert a["searches"]["exact"] == b["searches"]["exact"] and a["radius"] == b["radius"]
assert b["encoded"] == 40 and b["reused"] == 0
PY

# 3b. Calibrated thresholds: hydb calibrate on the true labels stores them
# (and re-labels by radius); evaluate uses them, writes the manifest's labels
# back without re-encoding, and its classifier rates are calibrate's own.
"$PY" -c '
print("key,label")
for r in range(10):
    for c, l in (("S", "safe"), ("U", "unsafe"), ("V", "safe"), ("G", "unsafe")):
        print("evaluate:%d:%s,%s" % (r, c, l))' >labels.csv
"$H" calibrate ev.db --labels labels.csv --json >cal.json 2>err.txt || fail "calibrate: $(cat err.txt)"
"$H" evaluate quads.jsonl --db ev.db --exact --json >got4.json 2>err.txt || fail "evaluate calibrated: $(cat err.txt)"
"$PY" - <<'PY' || fail "calibrated thresholds not used as calibrate reports them"
import json
cal = {d["modality"]: d for d in map(json.loads, open("cal.json")) if "threshold" in d}
g = json.load(open("got4.json"))
assert g["encoded"] == 0 and g["reused"] == 40 and g["relabelled"] > 0, (g["encoded"], g["reused"], g["relabelled"])
for m in ("image", "text"):
    c, e = cal[m], g["classifier"][m]
    assert e["source"] == "calibrated" and abs(e["threshold"] - c["threshold"]) < 1e-8, (m, e, c)
    for f in ("accuracy", "fpr", "fnr"):
        assert abs(e[f] - c[f]) < 1e-6, (m, f, e[f], c[f])
json.dump({m: g["classifier"][m]["threshold"] for m in ("image", "text")}, open("thr.json", "w"))
PY
"$H" export ev.db >export.jsonl
export THR
THR=$(cat thr.json)
reference ref4.json "$(cat model.json | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["bounds"]))')"
compare got4.json ref4.json
unset THR

# 3c. A database that holds other entries too (hydb ingest of the photos):
# they are searched past, so the figures are the manifest's alone.
"$H" ingest ing.db photos --model model.safetensors >/dev/null 2>err.txt || fail "ingest: $(cat err.txt)"
"$H" evaluate quads.jsonl --db ing.db --both --json >got5.json 2>err.txt || fail "evaluate ing.db: $(cat err.txt)"
"$PY" - <<'PY' || fail "other entries in the database changed the figures"
import json
a, b = json.load(open("got3.json")), json.load(open("got5.json"))
assert b["searches"]["exact"] == a["searches"]["exact"], "exact"
assert b["searches"]["index"]["results"] == a["searches"]["exact"]["results"], "index"
PY

# 4. The table and the PNG.
"$H" evaluate quads.jsonl --db ev.db --plot fig.png >table.txt 2>err.txt || fail "table: exit $?: $(cat err.txt)"
grep -q "^U->V+G   hysac/up_95 " table.txt || fail "no U->V+G hysac row: $(head -20 table.txt)"
grep -q "^classifier" table.txt && grep -q "^radius" table.txt || fail "no radius or classifier table"
grep -q "^wrote fig.png" err.txt || fail "no 'wrote fig.png'"
"$PY" - <<'PY' || fail "fig.png is not a 1000x520 PNG"
import struct
d = open("fig.png", "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", d[16:24]) == (1000, 520)
PY
sed -n '1,12p' table.txt

# 5. Bad input: one line naming it; 1 for the command line, 2 for files.
expect() { # STATUS PATTERN ARGS...
	want=$1 pat=$2
	shift 2
	set +e
	"$H" evaluate "$@" >out.txt 2>err.txt
	got=$?
	set -e
	[ "$got" = "$want" ] || fail "evaluate $*: exit $got, want $want: $(cat err.txt)"
	[ "$(wc -l <err.txt)" = 1 ] || fail "evaluate $*: not one line: $(cat err.txt)"
	grep -q -- "$pat" err.txt || fail "evaluate $*: '$pat' not in: $(cat err.txt)"
}
export HYDB_MODEL="$T/model.safetensors"
expect 2 "nope.jsonl" nope.jsonl
printf '{"safe_caption":"a","unsafe_caption":"b","safe_image":"photos/moon.png","unsafe_image":"photos/text.png"}\n{"safe_caption": oops}\n' >bad.jsonl
expect 2 "bad.jsonl: line 2" bad.jsonl
printf '{"safe_caption":"a","unsafe_caption":"b","safe_image":"photos/moon.png"}\n' >short.jsonl
expect 2 "short.jsonl: line 1: field 'unsafe_image' is missing" short.jsonl
printf 'safe_caption,unsafe_caption,safe_image\na,b,c\n' >short.csv
expect 2 "short.csv: line 1: the header has no column 'unsafe_image'" short.csv
printf 'safe_caption,unsafe_caption,safe_image,unsafe_image\na,b,photos/moon.png\n' >ragged.csv
expect 2 "ragged.csv: line 2: 3 columns" ragged.csv
printf '{"safe_caption":"a","unsafe_caption":"b","safe_image":"photos/gone.png","unsafe_image":"photos/text.png"}\n' >gone.jsonl
expect 2 "gone.png" gone.jsonl
expect 2 "nob.json" quads.jsonl --bounds nob.json
expect 1 "'--frobnicate'" quads.jsonl --frobnicate
expect 1 "--k" quads.jsonl --k abc
expect 1 "--k" quads.jsonl --k 1,,5
expect 1 "--ef" quads.jsonl --ef 12x
expect 1 "exclude" quads.jsonl --exact --both
expect 1 "no MANIFEST" --json
unset HYDB_MODEL
expect 1 "no model" quads.jsonl
echo "test_evaluate: ok"
