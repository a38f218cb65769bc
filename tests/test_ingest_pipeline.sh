#!/bin/sh
# hydb ingest stores each image exactly as hydb encode (hydb_encode_image_files)
# embeds it, for a model whose image_mean/image_std are not CLIP's (issue 13,
# defect 2: ingest had its own preprocessing with CLIP's constants and its own
# projection, so such a model's ingested images were other points).
#
# A tiny model is written with the converter's own functions and a
# preprocessor config of unusual mean and std; four images (noise of
# different shapes, a PNG with alpha, a JPEG) are ingested, and every stored
# vector and radius must equal hydb encode's for the same file to float
# tolerance, and the PyTorch reference's on pixels normalised with the
# model's constants. With CLIP's constants the vectors differ by far more.
set -eu
: "${HYDB_BUILDDIR:?}" "${HYDB_SRCDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
"$PY" -c "import numpy, torch, PIL" 2>/dev/null || { echo "skip: numpy, torch or PIL missing"; exit 77; }
T=$(mktemp -d /tmp/hydb-ingest-pipeline-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "test_ingest_pipeline: FAIL: $*"; exit 1; }
cd "$T"

HYDB_SRCDIR="$HYDB_SRCDIR" "$PY" - <<'PY'
import importlib.machinery, importlib.util, os, sys
import numpy as np
from PIL import Image
sys.dont_write_bytecode = True  # the source tree may be read-only
src = os.path.join(os.environ["HYDB_SRCDIR"], "tools", "hydb-convert")
loader = importlib.machinery.SourceFileLoader("hydb_convert", src)
conv = importlib.util.module_from_spec(importlib.util.spec_from_loader("hydb_convert", loader))
loader.exec_module(conv)
corpus = os.path.join(os.environ["HYDB_SRCDIR"], "tools", "tiny_corpus.txt")
hf_cfg, clip, merges, hysac, bounds = conv.tiny_checkpoint(3, "peft04", corpus)
# Far from CLIP's (0.481, 0.458, 0.408) / (0.269, 0.261, 0.276).
prep = {"image_mean": [0.2, 0.65, 0.9], "image_std": [0.12, 0.45, 0.3]}
cfg, tensors = conv.convert(hf_cfg, clip, merges, prep, (hysac, 1.0, "tiny"),
                            bounds, "tiny-own-norm", "tiny")
conv.write_model("model.safetensors", cfg, tensors, merges, "f32")
rng = np.random.default_rng(7)
os.mkdir("imgs")
def noise(h, w, c):
    return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
Image.fromarray(noise(240, 320, 3)).save("imgs/wide.png")
Image.fromarray(noise(300, 200, 3)).save("imgs/tall.png")
Image.fromarray(noise(224, 224, 4), "RGBA").save("imgs/alpha.png")
Image.fromarray(noise(180, 260, 3)).save("imgs/photo.jpg", quality=90)
PY

"$H" model info model.safetensors | grep -q '^image mean  *0.2 0.64999998 0.89999998$' ||
	fail "the model does not carry its own image_mean: $("$H" model info model.safetensors)"
"$H" ingest db imgs --model model.safetensors --quiet >ingest.out 2>&1 ||
	fail "ingest failed: $(cat ingest.out)"
"$H" export db >export.jsonl
"$H" encode --model model.safetensors --json --image "$PWD"/imgs/*.png "$PWD"/imgs/*.jpg \
	>encode.jsonl || fail "encode failed"

"$PY" - <<'PY' || fail "stored vectors differ from hydb encode's (see above)"
import json, sys
import numpy as np
stored = {}
for line in open("export.jsonl"):
    r = json.loads(line)
    if r["modality"] == "image":
        stored[r["meta"]["path"]] = (np.array(r["vector"]), r["radius"])
encoded = [json.loads(l) for l in open("encode.jsonl")]
assert len(encoded) == 4 and len(stored) == 4, (len(encoded), len(stored))
bad = 0
for e in encoded:
    v, r = stored[e["input"]]
    want = np.array(e["embedding"])
    err = np.max(np.abs(v - want) / (1e-3 + np.abs(want)))
    rerr = abs(r - e["radius"]) / e["radius"]
    print(f"{e['input'].rsplit('/', 1)[1]}: vector rel. error {err:.2e}, radius rel. error {rerr:.2e}")
    bad += not (err < 1e-4 and rerr < 1e-5)
sys.exit(1 if bad else 0)
PY

# And the pipeline itself uses the model's mean and std: the stored points
# equal the PyTorch reference (tests/ref_hysac.py) run on the encoder's crop
# (hydb preprocess) normalised with the model's constants as Hugging Face
# does (rescale in double, round to float32, normalise in float32). Bounds
# as tests/test_forward.sh: cosine >= 0.99999, max relative error <= 1e-4.
mkdir crops
for img in imgs/*; do
	"$H" preprocess "$img" -o "crops/$(basename "$img").png" >/dev/null ||
		fail "preprocess $img"
done
"$H" model info model.safetensors --json >info.json
"$PY" - <<'PY'
import glob, json, os
import numpy as np
from PIL import Image
info = json.load(open("info.json"))
mean = np.array(info["image_mean"], np.float32)[:, None, None]
std = np.array(info["image_std"], np.float32)[:, None, None]
for png in sorted(glob.glob("crops/*.png")):
    u8 = np.asarray(Image.open(png).convert("RGB")).transpose(2, 0, 1)
    x = (u8 * (1.0 / 255.0)).astype(np.float32)
    np.save(png[:-4] + ".npy", ((x - mean) / std).astype(np.float32))
PY
pix=""
for n in crops/*.npy; do pix="$pix --pixels $n"; done
# shellcheck disable=SC2086
"$PY" "$HYDB_SRCDIR/tests/ref_hysac.py" encode model.safetensors $pix >ref.jsonl ||
	fail "the reference failed"
"$PY" - <<'PY' || fail "stored vectors differ from the reference with the model's mean/std"
import json, os, sys
import numpy as np
stored = {}
for line in open("export.jsonl"):
    r = json.loads(line)
    if r["modality"] == "image":
        stored[os.path.basename(r["meta"]["path"])] = (np.array(r["vector"]), r["radius"])
bad = 0
for line in open("ref.jsonl"):
    ref = json.loads(line)
    name = os.path.basename(ref["input"])[:-len(".npy")]  # crops/NAME.npy
    v, r = stored[name]
    want = np.array(ref["embedding"])
    cos = float(v @ want / (np.linalg.norm(v) * np.linalg.norm(want)))
    rel = float(np.max(np.abs(v - want)) / np.max(np.abs(want)))
    rr = abs(r - ref["radius"]) / ref["radius"]
    print(f"{name}: against the reference cosine {cos:.9f}, max rel. error {rel:.2e}, radius {rr:.2e}")
    bad += not (cos >= 0.99999 and rel <= 1e-4 and rr <= 1e-4)
sys.exit(1 if bad else 0)
PY
echo "test_ingest_pipeline: ok"
