#!/bin/sh
# hydb query --sheet: one tile per image result, as many across as results
# (wrapping after 8), each framed by its label (green safe, red unsafe,
# grey unknown) with rank, distance, radius and key under it; a source file
# that is gone gets a placeholder and a warning naming the record; results
# without any image are a data error (exit 2), after the results.
set -eu
: "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
"$PY" -c "import PIL" 2>/dev/null || { echo "skip: PIL missing"; exit 77; }
T=$(mktemp -d /tmp/hydb-sheet-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_sheet: FAIL: $*"; exit 1; }

"$PY" - "$T" <<'PY'
import json, sys
from PIL import Image
t = sys.argv[1]
Image.new("RGB", (60, 40), (250, 250, 0)).save(t + "/yellow.png")
Image.new("RGB", (40, 60), (0, 250, 250)).save(t + "/cyan.png")
rows = []
labels = ["safe", "unsafe", "unknown"]
for i in range(10):
    src = [t + "/yellow.png", t + "/cyan.png", t + "/gone.png"][i % 3]
    rows.append({"key": "img %d ünïcode and a rather long key that must be cut" % i,
                 "vector": [0.1 * (i + 1), 0, 0, 0], "modality": "image", "label": labels[i % 3],
                 "meta": {"path": src}})
rows.append({"key": "words", "vector": [0, 0.05, 0, 0], "modality": "text", "caption": "hi"})
with open("recs.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
PY
"$H" init db --dim 4 >/dev/null
"$H" import db recs.jsonl --quiet

"$H" query db --vector '[0,0,0,0]' -k 4 --exact --sheet s.png >out.txt 2>err.txt || fail "exit $?: $(cat err.txt)"
grep -q "^wrote s.png" err.txt || fail "no 'wrote' line: $(cat err.txt)"
[ "$(grep -c 'source image not found; a placeholder stands in its tile' err.txt)" = 1 ] ||
	fail "missing-source warning: $(cat err.txt)"
grep -q "img 2 ünïcode" err.txt || fail "the warning does not name the record"
"$PY" - <<'PY' || fail "sheet of 3 image results"
from PIL import Image
im = Image.open("s.png").convert("RGB")
cell_w, cell_h, pad = 224 + 8 + 8, 224 + 8 + 48 + 8, 8
assert im.size == (3 * cell_w + pad, cell_h + pad), im.size
want = [(40, 170, 70), (210, 50, 40), (150, 150, 150)]  # ranks 1..3: safe, unsafe, unknown
for k, rgb in enumerate(want):
    x0 = pad + k * cell_w
    assert im.getpixel((x0 + 1, pad + 1)) == rgb, (k, im.getpixel((x0 + 1, pad + 1)))
    mid = im.getpixel((x0 + 4 + 112, pad + 4 + 112))
    if k == 0:
        assert mid[0] > 200 and mid[1] > 200 and mid[2] < 60, mid  # yellow photo
    if k == 2:
        assert mid == (70, 70, 70) or mid == (30, 30, 30), mid   # placeholder, not a photo
    # text under the tile: some light pixels in the first text line
    band = [im.getpixel((x, pad + 8 + 224 + y)) for x in range(x0 + 4, x0 + 200) for y in range(2, 16)]
    assert any(sum(p) > 600 for p in band), "no text under tile %d" % k
PY
"$H" query db --vector '[0,0,0,0]' -k 10 --exact --modality image --sheet wide.png >/dev/null 2>&1 || fail "10 tiles"
"$PY" -c "
from PIL import Image
im = Image.open('wide.png')
assert im.size == (8 * 240 + 8, 2 * 288 + 8), im.size
" || fail "10 tiles do not wrap after 8"
st=0
"$H" query db --vector '[0,0,0,0]' -k 1 --modality text --sheet t.png >out.txt 2>err.txt || st=$?
[ "$st" = 2 ] || fail "text-only results: exit $st"
grep -q "words" out.txt || fail "text-only results were not printed"
grep -q "no image among the 1 results" err.txt || fail "text-only: $(cat err.txt)"
echo "test_sheet: ok"
