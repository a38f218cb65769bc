#!/bin/sh
# hydb-convert end to end: random HF CLIP + HySAC checkpoints in both peft
# layouts are converted, the merged weights and scalars are checked against
# an independent computation, 'hydb model info' must report them, and damaged
# model files must each fail with one clean error line.
set -u
PY=/usr/bin/python3
SRC=${HYDB_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
BLD=${HYDB_BUILDDIR:-.}
HYDB=$BLD/hydb
CONVERT=$SRC/tools/hydb-convert
FIX="$PY $SRC/tests/make_hf_checkpoint.py"
export HYDB_SRCDIR=$SRC

$PY -c 'import numpy, torch' 2>/dev/null || { echo "SKIP: no torch/numpy"; exit 77; }
[ -x "$HYDB" ] || { echo "SKIP: $HYDB not built"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# json_get FILE EXPR: evaluate a Python expression over the JSON object j.
json_get() {
	$PY -c 'import json,sys,math; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

expect() { # expect DESC ACTUAL WANT
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

for layout in peft04 peft07; do
	d=$tmp/$layout
	$FIX write "$d" --layout $layout --seed 3 || { fail "fixture $layout"; continue; }
	$PY "$CONVERT" --clip "$d/clip" --hysac "$d/hysac_model.pth" \
		--bounds "$d/hysac_bounds.json" -o "$d.hydb" || { fail "convert $layout"; continue; }
	# verify prints exp(curv) as computed from the checkpoint.
	curv=$($FIX verify "$d.hydb" "$d" | sed -n 's/^curvature=//p')
	[ -n "$curv" ] || { fail "merged weights $layout"; continue; }
	"$HYDB" model info --json "$d.hydb" > "$d.json" || { fail "model info $layout"; continue; }
	expect "$layout curvature" "$(json_get "$d.json" 'abs(j["curvature"] - '"$curv"') < 1e-12')" True
	expect "$layout vision" "$(json_get "$d.json" '[j["vision"][k] for k in ("width","layers","heads","mlp","image_size","patch_size")]')" "[64, 2, 4, 256, 224, 14]"
	expect "$layout text" "$(json_get "$d.json" '[j["text"][k] for k in ("width","layers","vocab_size","context_length")]')" "[64, 2, 1075, 77]"
	expect "$layout bound" "$(json_get "$d.json" 'j["bounds"]["V"]["up_95"]')" 1.3
	expect "$layout shapes" "$(json_get "$d.json" 'j["embed_dim"], j["tensors"], j["merges"]')" "(64, $([ $layout = peft04 ] && echo 78 || echo 77), 561)"
	# peft 0.4 gave the patch embedding a bias; peft >= 0.7 keeps CLIP's none.
	expect "$layout patch bias" "$(json_get "$d.json" 'j["vision"]["patch_bias"]')" \
		"$([ $layout = peft04 ] && echo True || echo False)"
done

# The check must notice a wrong LoRA scaling.
d=$tmp/peft04
$PY "$CONVERT" --clip "$d/clip" --hysac "$d/hysac_model.pth" --bounds "$d/hysac_bounds.json" \
	--lora-alpha 2 -o "$tmp/alpha2.hydb" && $FIX verify "$tmp/alpha2.hydb" "$d" >/dev/null 2>&1 &&
	fail "verify accepted a LoRA scaling of 2/16"

# Half-precision storage converts back within its precision.
for dt in f16 bf16; do
	$PY "$CONVERT" --clip "$d/clip" --hysac "$d/hysac_model.pth" --bounds "$d/hysac_bounds.json" \
		--dtype $dt -o "$tmp/$dt.hydb" || fail "convert --dtype $dt"
	$FIX verify "$tmp/$dt.hydb" "$d" 1e-2 >/dev/null || fail "$dt weights"
	"$HYDB" model info "$tmp/$dt.hydb" >/dev/null || fail "model info $dt"
done

# Plain CLIP: curvature and alphas 1, no bounds.
$PY "$CONVERT" --clip "$d/clip" -o "$tmp/clip.hydb" || fail "convert plain CLIP"
"$HYDB" model info --json "$tmp/clip.hydb" > "$tmp/clip.json" || fail "info plain CLIP"
expect "plain CLIP" "$(json_get "$tmp/clip.json" 'j["curvature"], j["visual_alpha"], j["bounds"]')" \
	"(1, 1, {'V': None, 'S': None})"
"$HYDB" model info "$tmp/clip.hydb" | grep -q "bounds V (image) none" || fail "plain CLIP text info"

# --tiny is deterministic in its seed and honours the layout.
$PY "$CONVERT" --tiny "$tmp/t1.hydb" --seed 5 && $PY "$CONVERT" --tiny "$tmp/t2.hydb" --seed 5 &&
	$PY "$CONVERT" --tiny "$tmp/t3.hydb" --seed 6 &&
	$PY "$CONVERT" --tiny "$tmp/t4.hydb" --seed 5 --layout peft07 || fail "convert --tiny"
cmp -s "$tmp/t1.hydb" "$tmp/t2.hydb" || fail "--tiny not deterministic"
cmp -s "$tmp/t1.hydb" "$tmp/t3.hydb" && fail "--tiny ignores the seed"
"$HYDB" model info "$tmp/t4.hydb" | grep -q "patch bias no" || fail "--tiny --layout peft07"

# CLIP's own merges file: the full 49408-token vocabulary.
gz=$SRC/../shared/clip/bpe_simple_vocab_16e6.txt.gz
if [ -f "$gz" ]; then
	$FIX write "$tmp/full" --layout peft04 --clip-bpe "$gz" &&
		$PY "$CONVERT" --clip "$tmp/full/clip" -o "$tmp/full.hydb" &&
		"$HYDB" model info --json "$tmp/full.hydb" > "$tmp/full.json" ||
		fail "convert with CLIP's merges"
	expect "CLIP merges" "$(json_get "$tmp/full.json" 'j["merges"], j["text"]["vocab_size"], j["text"]["eos_id"]')" \
		"(48894, 49408, 49407)"
fi

# Damaged files: exit status 2 and exactly one line naming the file.
kinds="truncate4 truncate-header truncate-half truncate-1 wrong-shape huge-header
	huge-shape huge-offset overlap bad-utf8 bad-dtype missing-tensor newer-version"
$FIX corrupt "$tmp/peft04.hydb" "$tmp" $kinds || fail "writing damaged files"
for kind in $kinds; do
	bad=$tmp/bad-$kind.hydb
	"$HYDB" model info "$bad" > /dev/null 2> "$tmp/err"
	rc=$?
	expect "$kind exit" $rc 2
	expect "$kind lines" "$(wc -l < "$tmp/err" | tr -d ' ')" 1
	grep -q "bad-$kind.hydb" "$tmp/err" || fail "$kind: message lacks the file: $(cat "$tmp/err")"
	echo "$kind: $(cat "$tmp/err")"
done

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all conversion checks passed"
