#!/bin/sh
# The layering rules of ARCHITECTURE.md (tests/check_layers.py): includes
# that cross a layer the wrong way, repeated file names, long functions.
# Then the checker itself must catch a planted violation, so this test
# cannot pass by reading nothing.
set -eu
: "${HYDB_SRCDIR:=.}"
PY=${PYTHON3:-/usr/bin/python3}
"$PY" "$HYDB_SRCDIR/tests/check_layers.py" --root "$HYDB_SRCDIR" --report

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$HYDB_SRCDIR" && tar cf - ARCHITECTURE.md src index storage encoder) | (cd "$tmp" && tar xf -)
printf '#include "storage/store.h"\n' >> "$tmp/encoder/image.h"
if "$PY" "$HYDB_SRCDIR/tests/check_layers.py" --root "$tmp" > "$tmp/out"; then
	echo "FAIL: encoder/image.h including storage/store.h was not caught" >&2
	exit 1
fi
grep -q '^encoder/image.h:[0-9]*: includes storage/store.h (storage); layer encoder may include only: base, public$' "$tmp/out" || {
	echo "FAIL: the planted include was not named:" >&2; cat "$tmp/out" >&2; exit 1; }
echo "planted encoder -> storage include: caught"
