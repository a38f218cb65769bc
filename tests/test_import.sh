#!/bin/sh
# hydb import: formats, conversions, bad input, resume (see tests/import_cases.py).
"${PYTHON3:-/usr/bin/python3}" -c "import numpy" 2>/dev/null || { echo "skip: numpy missing"; exit 77; }
exec "${PYTHON3:-/usr/bin/python3}" "$HYDB_SRCDIR/tests/import_cases.py"
