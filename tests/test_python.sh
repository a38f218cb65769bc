#!/bin/sh
# The Python package (python/): installed into a fresh venv exactly as the
# README says (python3 -m venv --system-site-packages; pip install
# --no-build-isolation ./python, against this build's libhydb), then its
# pytest suite. In the sanitizer build the extension links build-asan's
# library and python runs with libasan preloaded (CPython's own allocator
# left alone: only the library and the extension are instrumented).
set -eu
: "${HYDB_BUILDDIR:?}" "${HYDB_SRCDIR:?}"
PY=/usr/bin/python3
for mod in venv ensurepip pytest numpy; do
	if ! $PY -c "import $mod" 2>/dev/null; then
		echo "skip: Python module $mod is missing (install python3-venv python3-pytest python3-numpy)"
		exit 77
	fi
done
T=$(mktemp -d /tmp/hydb-python-XXXXXX)
trap 'rm -rf "$T"' EXIT
# A copy of the package: the build tree stays clean and parallel runs (the
# ASan build) do not share setuptools' build directory.
cp -r "$HYDB_SRCDIR/python" "$T/python"
rm -rf "$T/python/build" "$T/python"/*.egg-info
$PY -m venv --system-site-packages "$T/venv"
HYDB_BUILD_DIR=$HYDB_BUILDDIR HYDB_SRCDIR=$HYDB_SRCDIR "$T/venv/bin/pip" install -q --no-build-isolation --no-deps "$T/python" \
	>"$T/pip.log" 2>&1 || { cat "$T/pip.log"; exit 1; }
preload=
case "${HYDB_SAN_LDFLAGS:-}" in
*sanitize=address*)
	preload=$(gcc -print-file-name=libasan.so)
	export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0:verify_asan_link_order=0"
	echo "sanitizer build: python runs with LD_PRELOAD=$preload"
	;;
esac
cd "$T"  # import the installed package, not the source tree's
status=0
env ${preload:+LD_PRELOAD=$preload} HYDB_SRCDIR="$HYDB_SRCDIR" OPENBLAS_NUM_THREADS=1 \
	"$T/venv/bin/python" -m pytest -q -p no:cacheprovider "$HYDB_SRCDIR/python/tests" || status=$?
# pytest's 5 means no test ran: a failure here, not a pass.
[ "$status" -eq 5 ] && { echo "FAIL: pytest collected no tests"; exit 1; }
exit "$status"
