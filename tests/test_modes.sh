#!/bin/sh
# Files and permissions: a new database is private whatever the umask allows
# (0700 directory, 0600 files, narrowed further by a stricter umask); a
# database the user cannot write can still be queried (LMDB's lock file
# cannot be opened, so hydb falls back to lock-free reading) and refuses
# writes with one clear line; a second writer waits for the first.
set -eu
: "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
T=$(mktemp -d /tmp/hydb-modes-XXXXXX)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
fail() { echo "test_modes: FAIL: $*"; exit 1; }
mode() { stat -c %a "$1"; }

# umask 0 would allow 0777/0666: the database stays private anyway
(umask 000; "$H" init "$T/open" --dim 3 >/dev/null)
[ "$(mode "$T/open")" = 700 ] || fail "umask 000: directory mode $(mode "$T/open")"
[ "$(mode "$T/open/data.mdb")" = 600 ] || fail "umask 000: data.mdb mode $(mode "$T/open/data.mdb")"
# a stricter umask narrows further
(umask 077; "$H" init "$T/strict" --dim 3 >/dev/null)
[ "$(mode "$T/strict")" = 700 ] || fail "umask 077: directory mode $(mode "$T/strict")"
echo "test_modes: new database 0700/0600 under umask 000 and 077"

printf '{"key":"a","vector":[0.1,0.2,0.3],"label":"safe"}\n{"key":"b","vector":[1,2,3]}\n' > "$T/in.jsonl"
"$H" import "$T/open" "$T/in.jsonl" --quiet
# exports and PNG plots respect the umask like any other file
(umask 022; "$H" export "$T/open" -o "$T/out.jsonl" 2>/dev/null)
[ "$(mode "$T/out.jsonl")" = 644 ] || fail "export mode $(mode "$T/out.jsonl") under umask 022"

# a second writer waits for the first (LMDB's writer lock), then succeeds
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "{\"key\":\"w%d\",\"vector\":[%d,0.5,0.25]}\n", i, i % 7 }' > "$T/big.jsonl"
"$H" init "$T/two" --dim 3 >/dev/null
"$H" import "$T/two" "$T/big.jsonl" --batch 20000 --quiet &
first=$!
"$H" import "$T/two" "$T/in.jsonl" --quiet || fail "the second writer failed instead of waiting"
wait "$first" || fail "the first writer failed"
[ "$("$H" stats "$T/two" --json | sed 's/^{"count":\([0-9]*\).*/\1/')" = 20002 ] || fail "writers lost records"
echo "test_modes: two concurrent writers both committed (the second waited)"

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
	echo "test_modes: not root; skipping the read-only user checks"
	exit 0
fi
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# hand the database to root, readable by others, writable by nobody else
chmod 755 "$T/open"
chmod 644 "$T/open/data.mdb" "$T/open/lock.mdb"
out=$(as_nobody "$H" query "$T/open" --vector '[0.1,0.2,0.3]' -k 1 --json) ||
	fail "read-only query as another user failed"
echo "$out" | grep -q '"key":"a"' || fail "read-only query returned: $out"
echo "test_modes: a database the user cannot write is queried read-only"
set +e
as_nobody "$H" import "$T/open" "$T/in.jsonl" --quiet 2> "$T/err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "writing a read-only database exited $rc"
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "expected one error line: $(cat "$T/err")"
grep -q "not writable" "$T/err" || fail "unclear error: $(cat "$T/err")"
echo "test_modes: writing it fails with: $(cat "$T/err")"
[ "$("$H" stats "$T/open" --json | sed 's/^{"count":\([0-9]*\).*/\1/')" = 2 ] || fail "store changed"
