#!/bin/sh
# End to end on sample photos with a tiny model (see tests/e2e.py).
exec "${PYTHON3:-/usr/bin/python3}" "$HYDB_SRCDIR/tests/e2e.py"
