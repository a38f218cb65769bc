#!/bin/sh
# hydb preprocess against the PIL/numpy reference of CLIPImageProcessor on
# real photos (python3-skimage) and the generated PNG/JPEG/WebP variants
# in tests/data, plus the command's error handling. Exit 77 (skip) when the
# reference tools or photos are missing.
set -u
PY=${PYTHON3:-/usr/bin/python3}
SRC=${HYDB_SRCDIR:-$(dirname "$0")/..}
HYDB=${HYDB_BUILDDIR:-.}/hydb
SK=/usr/lib/python3/dist-packages/skimage/data

"$PY" -c 'import numpy, PIL' 2>/dev/null || { echo "SKIP: numpy/PIL missing"; exit 77; }
[ -r "$SK/astronaut.png" ] || { echo "SKIP: skimage data missing"; exit 77; }

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
fail=0

expect() { # expected-status description command...
	want=$1; what=$2; shift 2
	"$@" >"$work/out" 2>"$work/err"
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL: $what: exit $got, expected $want"; cat "$work/err"; fail=1
	fi
}

webp=
grep -q '^#define HAVE_WEBP 1' "${HYDB_BUILDDIR:-.}/config.h" 2>/dev/null &&
	webp=$(echo "$SRC"/tests/data/*.webp)
# shellcheck disable=SC2086 # $webp is a list of paths without spaces
"$PY" -W ignore "$SRC/tests/ref_preprocess.py" "$HYDB" "$work" \
	"$SK/astronaut.png" "$SK/chelsea.png" "$SK/coffee.png" "$SK/rocket.jpg" \
	"$SRC"/tests/data/*.png "$SRC"/tests/data/*.jpg $webp || fail=1

# The format comes from the bytes, not the name.
cp "$SK/chelsea.png" "$work/really_png.jpg"
expect 0 "PNG named .jpg" "$HYDB" preprocess "$work/really_png.jpg" -o "$work/a.png"
echo "not an image" >"$work/text.png"
expect 2 "text named .png" "$HYDB" preprocess "$work/text.png" -o "$work/b.png"
grep -q "text.png': not a JPEG, PNG or WebP image" "$work/err" || { echo "FAIL: message"; cat "$work/err"; fail=1; }
[ ! -e "$work/b.png" ] || { echo "FAIL: output written on error"; fail=1; }
: >"$work/empty.jpg"
expect 2 "empty file" "$HYDB" preprocess "$work/empty.jpg" -o "$work/b.png"
grep -q "empty" "$work/err" || { echo "FAIL: empty message"; fail=1; }
expect 2 "truncated JPEG" "$HYDB" preprocess "$SK/truncated.jpg" -o "$work/b.png"
expect 2 "directory" "$HYDB" preprocess "$work" -o "$work/b.png"
expect 2 "missing file" "$HYDB" preprocess "$work/none.png" -o "$work/b.png"
expect 2 "pixel cap" "$HYDB" preprocess "$SK/astronaut.png" --max-pixels 1000 -o "$work/b.png"
expect 1 "no output" "$HYDB" preprocess "$SK/astronaut.png"
expect 1 "bad size" "$HYDB" preprocess "$SK/astronaut.png" --size 0 -o "$work/b.png"
expect 1 "two images" "$HYDB" preprocess a.png b.png -o "$work/b.png"
expect 0 "help" "$HYDB" preprocess --help
grep -q "usage: hydb preprocess" "$work/out" || { echo "FAIL: help text"; fail=1; }
expect 0 "size 64" "$HYDB" preprocess "$SK/coffee.png" --size 64 -o "$work/s64.png"
"$PY" -c "
from PIL import Image; import sys
im = Image.open(sys.argv[1]); sys.exit(0 if im.size == (64, 64) and im.mode == 'RGB' else 1)
" "$work/s64.png" || { echo "FAIL: --size 64 output"; fail=1; }
exit $fail
