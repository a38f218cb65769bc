#!/bin/sh
# The C forward pass against the PyTorch reference (tests/ref_hysac.py) on
# small random models: captions (as token ids) and images, Euclidean
# features and hyperboloid points, with and without a patch bias, in one
# batch and one image at a time, and converted HySAC checkpoints against
# their unmerged LoRA. Bounds: cosine >= 0.99999, max relative error <= 1e-4.
set -eu
PY=/usr/bin/python3
SRC=${HYDB_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${HYDB_BUILDDIR:-$(pwd)}
HYDB=$BUILD/hydb
REF=$SRC/tests/ref_hysac.py

if ! $PY -c 'import torch, numpy, PIL' 2>/dev/null; then
	echo "SKIP: python3-torch, numpy or PIL missing"
	exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/hydb-fwd.XXXXXX")
trap 'rm -rf "$T"' EXIT

# Three images of different sizes and formats; hydb preprocess gives the
# exact pixels the encoder sees, so this test checks the forward pass only.
$PY - "$T" <<'EOF'
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(7)
y, x = np.mgrid[0:90, 0:120]
grad = np.stack([x * 2, y * 2, (x + y)], -1).astype(np.uint8)
Image.fromarray(grad).save(d + "/grad.png")
noise = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
Image.fromarray(noise).save(d + "/noise.png")
Image.fromarray(grad[::-1]).save(d + "/flip.jpg", quality=95)
EOF
IMAGES="$T/grad.png $T/noise.png $T/flip.jpg"

cfg() { # model python-expression-over-config
	$PY -c "import json,sys; sys.path.insert(0,'$SRC/tests')
import ref_hysac as r; t,m=r.st_read('$1'); c=json.loads(m['hydb']); print($2)"
}

status=0
check() { # name model [hydb encode options]
	name=$1 model=$2
	shift 2
	size=$(cfg "$model" "c['vision']['image_size']")
	# BOS ... EOS; the second has padding after EOS, the third fills the
	# whole context.
	bos=$(cfg "$model" "c['text']['bos_id']")
	eos=$(cfg "$model" "c['text']['eos_id']")
	ctx=$(cfg "$model" "c['text']['context_length']")
	IDS1=$bos,5,9,77,$eos
	IDS2=$bos,300,12,$eos,$eos,$eos,$eos
	IDS3=$bos$(seq -s, 1 $((ctx - 2)) | sed 's/^/,/'),$eos
	pix=""
	for img in $IMAGES; do
		b=$(basename "$img")
		"$HYDB" preprocess "$img" -o "$T/$b.crop.png" --size "$size" \
			--tensor "$T/$b.npy"
		pix="$pix --pixels $T/$b.npy"
	done
	"$HYDB" encode --model "$model" --json --features "$@" \
		--ids $IDS1 --ids $IDS2 --ids $IDS3 --image $IMAGES >"$T/c.jsonl"
	# shellcheck disable=SC2086
	$PY "$REF" encode "$model" ${REFX:-} --ids $IDS1 --ids $IDS2 --ids $IDS3 \
		$pix >"$T/r.jsonl"
	echo "== $name"
	$PY "$REF" compare "$T/c.jsonl" "$T/r.jsonl" || status=1
}

$PY "$REF" make "$T/tiny.st" --seed 11
$PY "$REF" make "$T/tiny-bias.st" --seed 12 --patch-bias
check "tiny, batch of 3" "$T/tiny.st"
check "tiny with patch bias, one image per batch" "$T/tiny-bias.st" --batch 1

# HySAC checkpoints in both peft key layouts, converted (LoRA merged) by
# hydb-convert, against the reference running the checkpoint's LoRA
# unmerged: the merge must not change what the model computes.
if [ -f "$SRC/tests/make_hf_checkpoint.py" ]; then
	for layout in peft04 peft07; do
		d=$T/$layout
		HYDB_SRCDIR=$SRC $PY "$SRC/tests/make_hf_checkpoint.py" write "$d" \
			--layout $layout --seed 5 >/dev/null
		$PY "$SRC/tools/hydb-convert" --clip "$d/clip" --hysac \
			"$d/hysac_model.pth" --bounds "$d/hysac_bounds.json" \
			-o "$d.hydb" >/dev/null
		REFX="--hysac $d/hysac_model.pth" check \
			"HySAC $layout checkpoint, LoRA unmerged in the reference" "$d.hydb"
	done
fi

# An image from standard input (hydb_encode_image_memory) encodes like
# the same file.
"$HYDB" encode --model "$T/tiny.st" --json --image "$T/flip.jpg" --batch 1 |
	sed 's/^{"input":"[^"]*"//' >"$T/file.json"
"$HYDB" encode --model "$T/tiny.st" --json --image - <"$T/flip.jpg" |
	sed 's/^{"input":"[^"]*"//' >"$T/stdin.json"
cmp -s "$T/file.json" "$T/stdin.json" || { echo "FAIL: --image - differs"; status=1; }
[ -s "$T/stdin.json" ] || { echo "FAIL: --image - printed nothing"; status=1; }

# Errors: token outside the vocabulary, missing image -> exit 2.
if "$HYDB" encode --model "$T/tiny.st" --ids 598,600,599 2>"$T/err"; then
	echo "FAIL: token id 600 accepted"; status=1
fi
rc=0; "$HYDB" encode --model "$T/tiny.st" --image "$T/none.png" 2>"$T/err" || rc=$?
[ "$rc" = 2 ] || { echo "FAIL: missing image gave exit $rc"; status=1; }
rc=0; "$HYDB" encode --text x 2>"$T/err" </dev/null || rc=$?
[ "$rc" = 1 ] || [ -n "${HYDB_MODEL:-}" ] || { echo "FAIL: no model gave exit $rc"; status=1; }
exit $status
