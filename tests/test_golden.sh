#!/bin/sh
# Golden output of every command: each tests/golden/NAME.cmds holds command
# lines; they run in order in one scratch folder with a small database
# (db: 4 points on the axes, 2 labelled, plus a caption), the demo model
# (model.safetensors) and two photos, and the transcript ("$ command",
# its stdout and stderr, "[exit N]") must equal NAME.expected byte for byte,
# so that every change of a message, a table or an exit status is a
# deliberate one. HYDB_GOLDEN_UPDATE=1 rewrites the .expected files.
set -eu
: "${HYDB_BUILDDIR:?}" "${HYDB_SRCDIR:?}"
PY=${PYTHON3:-/usr/bin/python3}
"$PY" -c "import numpy, torch, PIL" 2>/dev/null || { echo "skip: numpy, torch or PIL missing"; exit 77; }
G="$HYDB_SRCDIR/tests/golden"
T=$(mktemp -d /tmp/hydb-golden-XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir "$T/bin"
ln -s "$HYDB_BUILDDIR/hydb" "$T/bin/hydb"
PATH="$T/bin:$PATH"
export PATH
unset HYDB_PATH HYDB_MODEL
export COLUMNS=100

fixture() {
	"$PY" "$HYDB_SRCDIR/tools/hydb-convert" --tiny model.safetensors --seed 1 >/dev/null
	"$PY" - <<'PY'
import json, numpy as np
from PIL import Image
rows = [
    {"key": "origin-ish", "vector": [0.0, 0.0, 0.0, 0.1], "label": "safe", "modality": "text",
     "caption": "near the origin"},
    {"key": "x1", "vector": [1.0, 0.0, 0.0, 0.0], "label": "safe", "modality": "image"},
    {"key": "y2", "vector": [0.0, 2.0, 0.0, 0.0], "label": "unsafe", "modality": "image"},
    {"key": "z3", "vector": [0.0, 0.0, 3.0, 0.0]},
]
with open("pts.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
np.save("q.npy", np.array([[0.9, 0, 0, 0], [0, 0, 2.5, 0]], np.float32))
import os
os.mkdir("photos")
Image.new("RGB", (64, 48), (200, 40, 40)).save("photos/red.png")
Image.new("RGB", (48, 64), (40, 40, 200)).save("photos/blue.png")
with open("photos/red.txt", "w") as f:
    f.write("a red square\n")
with open("labels.csv", "w") as f:
    f.write("x1,safe\ny2,unsafe\n")
PY
	hydb init db --dim 4 >/dev/null
	hydb import db pts.jsonl --quiet
}

status=0
for cmds in "$G"/*.cmds; do
	name=$(basename "$cmds" .cmds)
	mkdir "$T/$name"
	(cd "$T/$name" && fixture)
	out="$T/$name.out"
	: >"$out"
	while IFS= read -r line; do
		case $line in '' | '#'*) continue ;; esac
		printf '$ %s\n' "$line" >>"$out"
		st=0
		(cd "$T/$name" && sh -c "$line") >>"$out" 2>&1 || st=$?
		printf '[exit %d]\n' "$st" >>"$out"
	done <"$cmds"
	# The scratch folder and timings vary from run to run.
	sed -i -E -e "s|$T/$name|\$T|g" -e 's/in [0-9.]+s \([0-9.]+ rows\/s\)/in Ts (R rows\/s)/' "$out"
	if [ "${HYDB_GOLDEN_UPDATE:-0}" = 1 ]; then
		cp "$out" "$G/$name.expected"
	elif ! cmp -s "$out" "$G/$name.expected"; then
		echo "test_golden: $name: output differs from tests/golden/$name.expected:"
		diff -u "$G/$name.expected" "$out" | head -40
		status=1
	fi
done
[ "$status" = 0 ] && echo "test_golden: ok"
exit "$status"
