#!/bin/sh
# Encoder benchmark at full ViT-L/14 size (make bench-encoder):
#  - accuracy: hydb encode vs the PyTorch reference (float64) on two images
#    and two captions of a random full-size model;
#  - speed: images/s at batch 1 and 8, caption latency, peak RSS, for hydb
#    and for PyTorch (Debian's, 2 threads) in the same run, and hydb's
#    vision forward as a share of the sgemm peak measured alongside.
# The 1.7 GB model is generated once into $HYDB_BENCH_MODEL (default
# /tmp/hydb-bench-vitl.st), never into the tree.
set -eu
PY=/usr/bin/python3
SRC=${HYDB_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${HYDB_BUILDDIR:-$(pwd)}
REF=$SRC/tests/ref_hysac.py
MODEL=${HYDB_BENCH_MODEL:-/tmp/hydb-bench-vitl.st}
T=$(mktemp -d "${TMPDIR:-/tmp}/hydb-bench-enc.XXXXXX")
trap 'rm -rf "$T"' EXIT

if [ ! -s "$MODEL" ]; then
	echo "generating a random ViT-L/14 model into $MODEL"
	$PY "$REF" make "$MODEL.tmp" --size vit-l --seed 1
	mv "$MODEL.tmp" "$MODEL"
fi

echo "== accuracy at full size (C float32 vs PyTorch float64)"
$PY - "$T" <<'PYEOF'
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
y, x = np.mgrid[0:300, 0:400]
Image.fromarray(np.stack([x % 256, y % 256, (x * y) % 256], -1).astype(np.uint8)).save(d + "/a.png")
rng = np.random.default_rng(3)
Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(d + "/b.png")
PYEOF
for i in a b; do
	"$BUILD/hydb" preprocess "$T/$i.png" -o "$T/$i.crop.png" --tensor "$T/$i.npy"
done
IDS1=49406,320,1125,539,320,2368,269,49407
IDS2=49406,1237,2368,3465,525,518,4919,4120,320,7314,49407
"$BUILD/hydb" encode --model "$MODEL" --json --features --ids $IDS1 \
	--ids $IDS2 --image "$T/a.png" "$T/b.png" >"$T/c.jsonl"
$PY "$REF" encode "$MODEL" --threads 2 --ids $IDS1 --ids $IDS2 \
	--pixels "$T/a.npy" --pixels "$T/b.npy" >"$T/r.jsonl"
$PY "$REF" compare "$T/c.jsonl" "$T/r.jsonl" || echo "ACCURACY OUT OF BOUNDS"

echo "== OpenBLAS cores: sgemm GFLOP/s (ViT-L MLP shape, 2 threads), best of 3 rounds"
for round in 1 2 3; do
	for core in Prescott Haswell SkylakeX Cooperlake; do
		OPENBLAS_CORETYPE=$core "$BUILD/bench/bench_encoder" "$MODEL" \
			--batches 0 --captions 0 --threads 2 |
			sed -n "s/^sgemm_peak_gflops /$core /p"
	done
done | sort -k1,1 -k2,2nr | awk '$1 != last { print "  " $1, $2; last = $1 }'

echo "== speed (2 cores; other load on the machine lowers every figure)"
"$BUILD/bench/bench_encoder" "$MODEL" --batches 1,8 --captions 20 \
	--threads 2 >"$T/hydb.txt"
# Debian's PyTorch as installed (its OpenBLAS picks its own core), and the
# same with the core hydb chose, so that the kernel choice is not all that
# is being compared.
$PY "$REF" bench "$MODEL" --batches 1,8 --captions 3 --repeat 1 \
	--threads 2 >"$T/torch.txt"
CORE=$(sed -n 's/^blas_core \([A-Za-z0-9]*\).*/\1/p' "$T/hydb.txt")
OPENBLAS_CORETYPE=$CORE $PY "$REF" bench "$MODEL" --batches 1,8 \
	--captions 3 --repeat 1 --threads 2 >"$T/torch-core.txt"
$PY - "$T/hydb.txt" "$T/torch.txt" "$T/torch-core.txt" "$CORE" <<'PYEOF'
import sys
def read(p):
    out = {}
    for line in open(p):
        k, v = line.split(None, 1)
        out[k] = v.strip()
    return out
h, t, tc = read(sys.argv[1]), read(sys.argv[2]), read(sys.argv[3])
core = sys.argv[4]
print("BLAS core: %s; sgemm peak %s GFLOP/s" % (h["blas_core"], h["sgemm_peak_gflops"]))
print("%-20s %10s %10s %6s %12s %6s" % ("", "hydb", "torch", "ratio",
                                        "torch+" + core, "ratio"))
for k in ("images_per_s_batch1", "images_per_s_batch8", "captions_per_s",
          "caption_ms", "peak_rss_mb"):
    a, b, c = float(h[k]), float(t[k]), float(tc[k])
    print("%-20s %10.3f %10.3f %6.2f %12.3f %6.2f" % (k, a, b, a / b, c, a / c))
for b in ("1", "8"):
    print("vision forward at batch %s: %s GFLOP/s = %.0f%% of sgemm peak "
          "(%.0f%% per CPU second)" % (
              b, h["vision_gflops_batch" + b],
              100 * float(h["vision_peak_fraction_batch" + b]),
              100 * float(h["vision_cpu_fraction_batch" + b])))
PYEOF
