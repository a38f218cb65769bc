#!/bin/sh
# Every outside file the build, quick start, tests and benches read belongs
# to a package that tools/debian-packages.txt installs (see
# tests/check_packages.py): a hand-installed package cannot hide a missing
# install step.
set -eu
: "${HYDB_BUILDDIR:?}" "${HYDB_SRCDIR:?}"
command -v dpkg >/dev/null || { echo "skip: not a Debian system (no dpkg)"; exit 77; }
exec /usr/bin/python3 "$HYDB_SRCDIR/tests/check_packages.py" "$HYDB_SRCDIR" "$HYDB_BUILDDIR"
