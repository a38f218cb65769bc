#!/bin/sh
# hydb ingest and hydb encode lose nothing silently and store nothing wrong
# (issue 12):
# * keys are the folder's path from the cwd joined with the file's path
#   under it, so photos/chelsea.png and other/chelsea.png are two records;
#   re-ingesting the same folder (however it is spelled) is a no-op; the
#   same relative path ingested from another directory replaces the record
#   and says so, even when size and mtime are equal;
# * hydb encode prints every good image and one line per bad one (exit 2);
# * a sidecar caption that cannot be read (a directory, a dangling link, and
#   mode 000 for an unprivileged user: root reads mode 000 files, so that
#   step runs as nobody through setpriv) or that is not UTF-8 fails its
#   image by name, and the summary counts what the database holds;
# * a model whose curvature is not the database's is refused, nothing
#   stored, in ingest and in query;
# * numeric options are strict: one line, exit 1.
set -eu
: "${HYDB_BUILDDIR:?}" "${HYDB_SRCDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
T=$(mktemp -d /tmp/hydb-ingest-safety-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "test_ingest_safety: FAIL: $*"; exit 1; }
count() { "$H" stats "$1" --json | sed -n 's/^{"count":\([0-9]*\),.*/\1/p'; }
# expect RC CMD...: run CMD (stdout to $T/out, stderr to $T/err), check RC
expect() {
	want=$1
	shift
	rc=0
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || fail "$* exited $rc, not $want: $(cat "$T/out" "$T/err")"
}
# stderr must be exactly one line, containing $1
one_line() {
	[ "$(wc -l <"$T/err")" = 1 ] && grep -qF -- "$1" "$T/err" ||
		fail "expected one line with '$1' on stderr, got: $(cat "$T/err")"
}

cd "$T"
"$PY" "$HYDB_SRCDIR/tools/hydb-convert" --tiny model.safetensors --seed 1 >/dev/null
M=$T/model.safetensors
"$PY" - <<'PY'
import os
from PIL import Image
# Uncompressed PNGs: the size depends on the dimensions only, so files of
# different content can share size and mtime.
def png(path, colour, size=(40, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path, compress_level=0)
    os.utime(path, (1600000000, 1600000000))
png("photos/chelsea.png", (200, 10, 10))
png("other/chelsea.png", (10, 200, 10))
png("elsewhere/photos/chelsea.png", (10, 10, 200))
for i in range(9):
    png(f"good/g{i}.png", (25 * i, 100, 50), (32 + i, 32))
for n in "abcde":
    png(f"caps/{n}.png", (ord(n), 50, 50))
png("nobody/pics/locked.png", (1, 2, 3))
png("nobody/pics/open.png", (3, 2, 1))
PY
: >good/empty.png

# --- keys: two folders with the same file name --------------------------
expect 0 "$H" ingest db photos --model "$M" --quiet
expect 0 "$H" ingest db other --model "$M"
grep -q "ingested 1 images" "$T/out" || fail "other/chelsea.png not ingested: $(cat "$T/out")"
[ "$(count db)" = 2 ] || fail "photos/ and other/ hold one chelsea.png each: $(count db) records"
"$H" get db photos/chelsea.png --json | grep -qF "\"path\":\"$T/photos/chelsea.png\"" ||
	fail "photos/chelsea.png is not the record of $T/photos/chelsea.png"
"$H" get db other/chelsea.png --json | grep -qF "\"path\":\"$T/other/chelsea.png\"" ||
	fail "other/chelsea.png is not the record of $T/other/chelsea.png"
# the same folder again, spelled three ways: a no-op
for spelling in photos ./photos/ "$T/photos"; do
	expect 0 "$H" ingest db "$spelling" --model "$M"
	grep -q "ingested 0 images (0 captions), skipped 1 unchanged, failed 0" "$T/out" ||
		fail "re-ingest of '$spelling' is not a no-op: $(cat "$T/out")"
done
# the same relative path from another directory: replaced, and reported
cd elsewhere
expect 0 "$H" ingest ../db photos --model "$M"
cd "$T"
grep -qF "photos/chelsea.png: replaced the record of $T/photos/chelsea.png with $T/elsewhere/photos/chelsea.png" \
	"$T/err" || fail "replacement not reported: $(cat "$T/err")"
grep -q "ingested 1 images (0 captions), skipped 0 unchanged, failed 0, replaced 1 of other files" "$T/out" ||
	fail "replacement not counted: $(cat "$T/out")"
"$H" get db photos/chelsea.png --json | grep -qF "\"path\":\"$T/elsewhere/photos/chelsea.png\"" ||
	fail "photos/chelsea.png was not replaced"
[ "$(count db)" = 2 ] || fail "a replacement changed the count: $(count db)"

# --- hydb encode: one bad image among good ones -------------------------
expect 2 "$H" encode --model "$M" --json --batch 4 --image good/g0.png good/g1.png good/g2.png \
	good/g3.png good/empty.png good/g4.png good/g5.png good/g6.png good/g7.png good/g8.png
one_line "good/empty.png"
[ "$(grep -c '"radius"' "$T/out")" = 9 ] || fail "encode printed $(grep -c '"radius"' "$T/out") of 9 good images"
for i in 0 1 2 3 4 5 6 7 8; do
	grep -q "^{\"input\":\"good/g$i.png\"" "$T/out" || fail "encode lost good/g$i.png"
done
# good/g4.png shared the failed batch and was redone alone: the same point
# as encoding it alone
"$H" encode --model "$M" --json --image good/g4.png >"$T/alone"
grep -F '"good/g4.png"' "$T/out" | cmp -s - "$T/alone" || fail "good/g4.png encoded differently"

# --- sidecar captions ----------------------------------------------------
mkdir caps/a.txt                      # a directory: read fails (EISDIR)
ln -s "$T/no-such-file" caps/b.txt    # a dangling link
printf 'bad \377\376 caption\n' >caps/c.txt
printf 'a good caption\n' >caps/d.txt # e.png has no sidecar: no captions
expect 2 "$H" ingest cdb caps --model "$M"
for f in a b c; do
	grep -qF "$T/caps/$f.txt" "$T/err" || fail "caps/$f.txt not reported: $(cat "$T/err")"
done
grep -qF "$T/caps/a.txt: caption file unreadable: Is a directory" "$T/err" || fail "reason for a.txt: $(cat "$T/err")"
grep -qF "$T/caps/c.txt: line 1: caption is not valid UTF-8" "$T/err" || fail "reason for c.txt: $(cat "$T/err")"
grep -q "^ingested 2 images (1 captions), skipped 0 unchanged, failed 3," "$T/out" ||
	fail "summary does not match: $(cat "$T/out")"
[ "$(count cdb)" = 3 ] || fail "the summary says 2 images + 1 caption, the database holds $(count cdb)"
for k in caps/d.png caps/d.png#caption1 caps/e.png; do
	"$H" get cdb "$k" >/dev/null || fail "$k missing"
done
# fixed sidecar: the failed image comes in on the next run
rmdir caps/a.txt
expect 2 "$H" ingest cdb caps --model "$M"
grep -q "^ingested 1 images (0 captions), skipped 2 unchanged, failed 2," "$T/out" ||
	fail "after the fix: $(cat "$T/out")"
[ "$(count cdb)" = 4 ] || fail "after the fix the database holds $(count cdb), not 4"

# mode 000: only an unprivileged user is refused the read
printf 'locked caption\n' >nobody/pics/locked.txt
chmod 000 nobody/pics/locked.txt
if [ "$(id -u)" = 0 ]; then
	if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
		chmod 755 "$T"
		chmod -R a+rwX nobody model.safetensors
		chmod 000 nobody/pics/locked.txt
		as_user="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups"
	else
		as_user=
		echo "note: no setpriv or no user nobody; mode 000 step skipped"
	fi
else
	as_user=env
fi
if [ -n "$as_user" ]; then
	expect 2 $as_user "$H" ingest nobody/db nobody/pics --model "$M"
	grep -qF "$T/nobody/pics/locked.txt: caption file unreadable: Permission denied (skipped)" "$T/err" ||
		fail "mode 000 sidecar: $(cat "$T/err")"
	grep -q "^ingested 1 images (0 captions), skipped 0 unchanged, failed 1," "$T/out" ||
		fail "mode 000 summary: $(cat "$T/out")"
	[ "$(count nobody/db)" = 1 ] || fail "mode 000: $(count nobody/db) records, not 1"
fi

# --- curvature: a c = 0.9 model and a c = 1 database ---------------------
"$H" model info "$M" | grep -q "^curvature *0.9$" || fail "the tiny model is not c = 0.9"
dim=$("$H" model info "$M" | sed -n 's/^embed dim *//p')
"$H" init c1.db --dim "$dim" >/dev/null
expect 2 "$H" ingest c1.db photos --model "$M"
one_line "model curvature 0.9 differs from the database's 1"
[ "$(count c1.db)" = 0 ] || fail "a refused ingest stored $(count c1.db) records"
expect 2 env HYDB_MODEL="$M" "$H" ingest c1.db photos
one_line "model curvature 0.9 differs from the database's 1"
expect 2 "$H" query c1.db --text "a cat" --model "$M"
one_line "model curvature 0.9 differs from the database's 1"

# --- strict numbers --------------------------------------------------------
for v in -1 abc 5x 0 257 "" " 5" 1e2; do
	expect 1 "$H" ingest db photos --model "$M" --batch "$v"
	one_line "--batch: '$v' is not an integer in 1..256"
done
for v in -1 abc 5x 0 1025; do
	expect 1 "$H" encode --model "$M" --batch "$v" --image good/g0.png
	one_line "--batch: '$v' is not an integer in 1..1024"
done
for v in "1,,2" "5x" "-1" "1," " 7" "99999999999"; do
	expect 1 "$H" encode --model "$M" --ids "$v"
	one_line "--ids: '"
done
expect 0 "$H" ingest db photos --model "$M" --batch 256
expect 0 "$H" encode --model "$M" --ids 5,6 --batch 1024
echo "test_ingest_safety: ok"
