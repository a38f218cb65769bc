#!/bin/sh
# Encoder benchmark at full ViT-L/14 size (make bench-encoder):
#  - accuracy: hydb encode vs the PyTorch reference (float64) on two images
#    and two captions of a random full-size model;
#  - speed: images/s at batch 1 and 8, caption latency, peak RSS, for hydb
#    and for PyTorch (Debian's, 2 threads) in the same run, and hydb's
#    vision forward as a share of the sgemm peak measured alongside;
#  - engines: float32 (OpenBLAS) and bfloat16 (oneDNN) rows, each with its
#    own GEMM peak, run alternately (f32, bf16, f32, bf16) so that load from
#    other processes falls on both, best of the rounds;
#  - fidelity of bfloat16 against float32: cosine, largest |dradius| and
#    safe/unsafe label flips at the model's bounds, on the two images and
#    captions above and on the sample photos and captions of the quick start.
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

[ "${HYDB_BENCH_ENGINES:-0}" = 1 ] ||
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
# HYDB_BENCH_ENGINES=1 runs only the engines and fidelity sections (no
# PyTorch, no OpenBLAS core survey): minutes instead of most of an hour.
if [ "${HYDB_BENCH_ENGINES:-0}" != 1 ]; then
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

fi

# ---- the two engines ------------------------------------------------------
if ! "$BUILD/hydb" encode --model "$MODEL" --precision bf16 --ids $IDS1 \
	>/dev/null 2>"$T/bf16.err"; then
	echo "== bfloat16 engine: not available here: $(cat "$T/bf16.err")"
	exit 0
fi

# bf16-avx512 is bf16 with oneDNN held to AVX512_BF16 (DNNL_MAX_CPU_ISA),
# the kernels of a CPU without AMX (AMD Zen 4), on this one.
# HYDB_BENCH_BEFORE=1 adds bf16-before, the bf16 block of before
# (HYDB_FORWARD_LEGACY=4, encoder/forward.h; HYDB_BENCH_BEFORE_FLAGS
# chooses other flags, 8 for the attention of before, 2032 for the block
# before the caption attention, softmax, LayerNorm and scratch changes of
# flags 16 to 1024), to the rotation.
VARIANTS="f32 bf16 bf16-avx512"
[ "${HYDB_BENCH_BEFORE:-0}" = 1 ] && VARIANTS="$VARIANTS bf16-before"
echo "== engines (2 threads; $VARIANTS alternated, ${HYDB_BENCH_ROUNDS:-2} rounds, best of each)"
for round in $(seq "${HYDB_BENCH_ROUNDS:-2}"); do
	for p in $VARIANTS; do
		isa= legacy=
		[ $p = bf16-avx512 ] && isa=AVX512_CORE_BF16
		[ $p = bf16-before ] && legacy=${HYDB_BENCH_BEFORE_FLAGS:-4}
		env ${isa:+DNNL_MAX_CPU_ISA=$isa} \
			${legacy:+HYDB_FORWARD_LEGACY=$legacy} \
			"$BUILD/bench/bench_encoder" "$MODEL" \
			--batches 1,8 --captions 20 --threads 2 \
			--precision "${p%%-*}" >"$T/eng-$p-$round.txt"
	done
done
$PY - "$T" "${HYDB_BENCH_ROUNDS:-2}" $VARIANTS <<'PYEOF'
import sys
d, rounds, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def read(p):
    out = {}
    for line in open(p):
        k, v = line.split(None, 1)
        out[k] = v.strip()
    return out
rows = {}
for p in variants:
    runs = [read("%s/eng-%s-%d.txt" % (d, p, r + 1)) for r in range(rounds)]
    best = lambda k, f=max: f(float(x[k]) for x in runs)
    peak = "sgemm_peak_gflops" if p == "f32" else "gemm_peak_gflops"
    rows[p] = dict(
        engine="OpenBLAS " + runs[0]["blas_core"] if p == "f32" else
               "oneDNN " + runs[0].get("bf16_isa", "?") +
               (" (block of before)" if p == "bf16-before" else ""),
        b1=best("images_per_s_batch1"), b8=best("images_per_s_batch8"),
        cap=best("caption_ms", min), peak=best(peak),
        share=best("vision_peak_fraction_batch8"),
        other=best("vision_non_gemm_share_batch8", min) if p != "f32" else None,
        nonlin=best("vision_non_linear_share_batch8", min) if p != "f32" else None,
        rss=best("peak_rss_mb"))
# non-GEMM: time outside the engine's matmuls (attention's q k^T and P v
# count as matmuls); outside linear: all of attention counted outside too.
print("| engine | precision | images/s b1 | images/s b8 | caption ms | GEMM peak GFLOP/s | share of peak (b8) | non-GEMM share (b8) | outside linear layers (b8) | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|")
pct = lambda v: "-" if v is None else "%.1f%%" % (100 * v)
for p, r in rows.items():
    print("| %s | %s | %.2f | %.2f | %.1f | %.0f | %.0f%% | %s | %s | %.0f |" % (
        r["engine"], p.split("-")[0], r["b1"], r["b8"], r["cap"], r["peak"], 100 * r["share"],
        pct(r["other"]), pct(r["nonlin"]), r["rss"]))
f = rows["f32"]
for p in variants[1:]:
    b = rows[p]
    print("%s / f32: %.2fx at batch 1, %.2fx at batch 8, captions %.2fx faster" % (
        p, b["b1"] / f["b1"], b["b8"] / f["b8"], f["cap"] / b["cap"]))
PYEOF

echo "== fidelity of bf16 against f32 (the full-size random model)"
# The quick start's sample photos and captions, then the bench's two
# images and two token lists.
PHOTOS=/usr/lib/python3/dist-packages/skimage/data
set --
while IFS='|' read -r file caption; do
	[ -f "$PHOTOS/$file" ] && set -- "$@" "$PHOTOS/$file"
done <"$SRC/examples/demo-captions.txt"
sed 's/^[^|]*|//' "$SRC/examples/demo-captions.txt" >"$T/captions.txt"
for p in f32 bf16; do
	{
		while IFS= read -r c; do
			"$BUILD/hydb" encode --model "$MODEL" --precision $p --json --text "$c"
		done <"$T/captions.txt"
		"$BUILD/hydb" encode --model "$MODEL" --precision $p --json \
			--ids $IDS1 --ids $IDS2 --image "$T/a.png" "$T/b.png" "$@"
	} >"$T/fid-$p.jsonl"
done
# The model's up_95 bounds; a model without them (the random one) gets
# the median f32 radius of each modality instead, the bound with the most
# inputs near it.
BOUNDS=$("$BUILD/hydb" model info "$MODEL" | sed -n 's/^bounds [VS] (\([a-z]*\)).*up_95 \([0-9.eE+-]*\).*/\1=\2/p' | tr '\n' ' ')
$PY - "$T/fid-f32.jsonl" "$T/fid-bf16.jsonl" "$(($(wc -l <"$T/captions.txt") + 2))" $BOUNDS <<'PYEOF'
import json, sys
import numpy as np
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
n_text = int(sys.argv[3])
bounds = dict(kv.split("=") for kv in sys.argv[4:])
assert len(a) == len(b) and len(a) > n_text
where = "the model's bounds"
if len(bounds) < 2:
    rad = np.array([x["radius"] for x in a])
    bounds = {"text": "%.6g" % np.median(rad[:n_text]),
              "image": "%.6g" % np.median(rad[n_text:])}
    where = "the median f32 radius of each modality (this model has no bounds)"
worst_cos, worst_dr, flips = 1.0, 0.0, 0
print("| input | cosine | abs(d radius) | label f32 -> bf16 |")
print("|---|---|---|---|")
for i, (x, y) in enumerate(zip(a, b)):
    u, v = np.array(x["embedding"]), np.array(y["embedding"])
    cos = float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    dr = abs(x["radius"] - y["radius"])
    ub = float(bounds["text" if i < n_text else "image"])
    lab = lambda rad: "safe" if rad <= ub else "unsafe"
    flip = lab(x["radius"]) != lab(y["radius"])
    flips += flip
    worst_cos, worst_dr = min(worst_cos, cos), max(worst_dr, dr)
    name = x["input"].rsplit("/", 1)[-1][:44]
    print("| %s | %.7f | %.1e | %s -> %s%s |" % (name, cos, dr, lab(x["radius"]),
          lab(y["radius"]), " FLIP" if flip else ""))
print("%d captions, %d images: worst cosine %.7f, largest |dradius| %.1e, "
      "%d label flips at %s (%s)" % (
      n_text, len(a) - n_text, worst_cos, worst_dr, flips, where,
      ", ".join("%s %s" % kv for kv in sorted(bounds.items()))))
ok = worst_cos >= 0.9995 and worst_dr <= 0.005 and flips == 0
print("fidelity goal (cosine >= 0.9995, |dradius| <= 0.005, no flips): %s" %
      ("met" if ok else "NOT MET"))
PYEOF
