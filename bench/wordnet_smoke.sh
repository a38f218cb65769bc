#!/bin/sh
# wordnet_smoke.sh - the recall bench's WordNet family inside 'make check'
# without its training (minutes): the noun hierarchy parses and its
# hypernym closure has the expected size. Skipped (77) without Debian's
# wordnet-base or python3.
S=${HYDB_SRCDIR:-$(dirname "$0")/..}
PY=${PYTHON3:-/usr/bin/python3}
[ -x "$PY" ] || exit 77
exec "$PY" "$S/bench/wordnet_embed.py" --check
