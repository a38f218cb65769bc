# Points far from the origin (radii up to 19.9, components beyond half
# precision's range) are stored, found by their own vectors, and checked.
TESTS += tests/test_far.sh
EXTRA_DIST += tests/test_far.sh
