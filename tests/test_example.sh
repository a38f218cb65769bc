#!/bin/sh
# Install libhydb into a scratch prefix, then build the README's C program
# and examples/search_backend.c against the installed hydb.pc and run them.
set -eu
: "${HYDB_SRCDIR:?}" "${HYDB_BUILDDIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s -C "$HYDB_BUILDDIR" install DESTDIR="$tmp" >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$HYDB_BUILDDIR/src/hydb.pc")
root="$tmp$prefix"
pc="pkg-config --define-variable=prefix=$root"
export PKG_CONFIG_PATH="$root/lib/pkgconfig"
test -f "$root/include/hydb.h"
test -x "$root/bin/hydb"
test -f "$root/share/man/man1/hydb.1"
# In a sanitizer build the programs must link the sanitizer runtimes too.
cc="${CC:-cc} ${HYDB_SAN_LDFLAGS:-}"

# The README's example, extracted so that the two never drift apart.
sed -n '/^```c$/,/^```$/p' "$HYDB_SRCDIR/README.md" | sed '1d;$d' > "$tmp/readme.c"
test -s "$tmp/readme.c"
$cc -std=c11 -Wall -Werror "$tmp/readme.c" $($pc --cflags --libs hydb) -o "$tmp/readme"
$cc -std=c11 -Wall -Werror "$HYDB_SRCDIR/examples/search_backend.c" $($pc --cflags --libs hydb) \
	-o "$tmp/backend"

# A 3-d database with two safe points and one unsafe point.
hydb="$root/bin/hydb"
export LD_LIBRARY_PATH="$root/lib"
"$hydb" init "$tmp/db" --dim 3 >/dev/null
cat > "$tmp/in.jsonl" <<'J'
{"key": "near", "vector": [0.1, -0.2, 0.31], "label": "safe"}
{"key": "far", "vector": [2.0, 1.0, -3.0], "label": "safe"}
{"key": "bad", "vector": [0.1, -0.2, 0.30], "label": "unsafe"}
J
"$hydb" import "$tmp/db" "$tmp/in.jsonl" --quiet

out=$("$tmp/readme" "$tmp/db")
echo "$out"
# nearest safe point first; the unsafe one (nearer still) is filtered out
test "$(echo "$out" | head -n 1 | cut -d' ' -f1)" = near
! echo "$out" | grep -q '^bad '
out=$(echo '[0.1, -0.2, 0.3]' | "$tmp/backend" "$tmp/db" 2)
echo "$out"
test "$(echo "$out" | head -n 1 | cut -f2)" = near
test "$(echo "$out" | wc -l)" -eq 2
# a wrong dimension is a clean error with status 2
set +e
echo '[1, 2]' | "$tmp/backend" "$tmp/db" 2>"$tmp/err"
st=$?
set -e
test "$st" -eq 2
grep -q "3 numbers" "$tmp/err"
echo "example programs: ok"
