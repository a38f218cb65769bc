#!/bin/sh
# A full disk during import (simulated with a file-size limit, SIGXFSZ
# ignored so that the write fails with EFBIG): the import stops with one
# error line and status 2, every committed batch is intact and whole, and a
# rerun without the limit resumes and completes.
set -u
H=${HYDB_BUILDDIR:-.}/hydb
T=$(mktemp -d /tmp/hydb-fulldisk-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "test_fulldisk: $*" >&2; exit 1; }

"$H" init "$T/db" --dim 8 >/dev/null 2>&1 || fail "init failed"
awk 'BEGIN { srand(7); for (i = 0; i < 6000; i++) {
	printf "{\"key\":\"k%d\",\"vector\":[", i
	for (j = 0; j < 8; j++) printf "%s%.4f", (j ? "," : ""), rand() - 0.5
	printf "],\"caption\":\"row %d\"}\n", i } }' > "$T/in.jsonl"

(trap '' XFSZ; ulimit -f 1024; exec "$H" import "$T/db" "$T/in.jsonl" --batch 100 --quiet) 2> "$T/err"
rc=$?
[ "$rc" -eq 2 ] || fail "import under the limit exited $rc, expected 2"
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "expected one error line, got: $(cat "$T/err")"
grep -q "no space left" "$T/err" || fail "the error does not say the disk is full: $(cat "$T/err")"
echo "test_fulldisk: limited import stopped with: $(cat "$T/err")"

"$H" check "$T/db" > "$T/check" || fail "check after the failed import: $(cat "$T/check")"
n=$(sed -n 's/^checked \([0-9]*\) records.*/\1/p' "$T/check")
[ -n "$n" ] && [ "$n" -gt 0 ] || fail "no committed batch survived: $(cat "$T/check")"
[ $((n % 100)) -eq 0 ] || fail "$n records: a batch of 100 was committed in part"

"$H" import "$T/db" "$T/in.jsonl" --batch 100 2> "$T/err2" || fail "resume failed: $(cat "$T/err2")"
grep -q "resuming after $n rows" "$T/err2" || fail "did not resume after $n rows: $(cat "$T/err2")"
"$H" check "$T/db" > "$T/check" || fail "check after resume: $(cat "$T/check")"
grep -q "^checked 6000 records" "$T/check" || fail "after resume: $(cat "$T/check")"
echo "test_fulldisk: $n records committed before the limit, 6000 after resuming, check clean"
