#!/bin/sh
# fuzz.sh SRCDIR LIBRARY-SOURCES... - 'make fuzz' (see tests/fuzz.mk).
#
# Compiles the library sources with clang (libFuzzer instrumentation, ASan,
# UBSan) into fuzz-out/libhydb-fuzz.a, links each target against it, and
# runs each for FUZZ_SECONDS on a working corpus seeded from
# SRCDIR/tests/fuzz/corpus/<target>. Crashing inputs are left as
# fuzz-out/<target>-crash-*; copy one into the corpus as regress-<name>
# once it is fixed.
set -u
srcdir=$1
shift
cc=${FUZZ_CC:-clang}
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"npy fvecs jsonl json model safetensors tokenize tokenizer_new image record lmdb"}
out=fuzz-out
flags="-std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
command -v "$cc" >/dev/null || {
	echo "make fuzz needs $cc with libFuzzer: apt-get install clang libclang-rt-14-dev" >&2
	exit 1
}
mkdir -p "$out/obj" || exit 1

# Objects are rebuilt when their source or any header is newer. A library
# file clang cannot compile is left out of the archive: the targets only
# need the parsers, and the link says so if one of them is missing.
newest_header=$(ls -t $(find "$srcdir/src" "$srcdir/storage" "$srcdir/index" "$srcdir/encoder" \
	-name '*.h') | head -n 1)
objs=
for src in "$@"; do
	case $src in *.c) ;; *) continue ;; esac
	obj=$out/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')
	if [ -s "$obj.err" ] && [ "$obj.err" -nt "$srcdir/$src" ] && [ ! "$newest_header" -nt "$obj.err" ]; then
		echo "  skipped  $src (clang failed on it before, unchanged since)"
		continue
	fi
	rm -f "$obj.err"
	if [ ! -f "$obj" ] || [ "$srcdir/$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
		echo "  FUZZCC   $src"
		if ! $cc $FUZZ_CPPFLAGS $flags -fsanitize=fuzzer-no-link -c -o "$obj" \
			"$srcdir/$src" 2>"$obj.err"; then
			echo "  skipped  $src (clang: $(grep -m1 error: "$obj.err"))"
			rm -f "$obj"
			continue
		fi
		rm -f "$obj.err"
	fi
	objs="$objs $obj"
done
rm -f "$out/libhydb-fuzz.a"
ar rcs "$out/libhydb-fuzz.a" $objs || exit 1

sources_of() {
	f=$srcdir/tests/fuzz
	case $1 in
	npy) echo "-DHYDB_FUZZ_FMT=HYDB_FMT_NPY $f/fuzz_import.c $f/fuzz_file.c" ;;
	fvecs) echo "-DHYDB_FUZZ_FMT=HYDB_FMT_FVECS $f/fuzz_import.c $f/fuzz_file.c" ;;
	jsonl) echo "-DHYDB_FUZZ_FMT=HYDB_FMT_JSONL $f/fuzz_import.c $f/fuzz_file.c" ;;
	model) echo "$f/fuzz_model.c $f/fuzz_file.c" ;;
	lmdb) echo "$f/fuzz_lmdb.c $f/fuzz_file.c" ;;
	*) echo "$f/fuzz_$1.c" ;;
	esac
}

status=0
for t in $targets; do
	echo "  FUZZLD   fuzz_$t"
	$cc $FUZZ_CPPFLAGS $flags -fsanitize=fuzzer -o "$out/fuzz_$t" $(sources_of "$t") \
		"$out/libhydb-fuzz.a" $FUZZ_LIBS || exit 1
done
for t in $targets; do
	mkdir -p "$out/corpus/$t"
	"$out/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
		-print_final_stats=1 -artifact_prefix="$out/$t-" \
		"$out/corpus/$t" "$srcdir/tests/fuzz/corpus/$t" >"$out/$t.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -n 1)
	found=$(ls "$out/corpus/$t" | wc -l)
	if [ $rc -eq 0 ]; then
		echo "fuzz_$t: ${execs:-?} executions in ${seconds}s, working corpus $found inputs, no finding"
	else
		status=1
		echo "fuzz_$t: FINDING after ${execs:-?} executions (exit $rc), see $out/$t.log:"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix)' "$out/$t.log" | head -n 5
	fi
done
exit $status
