# Benchmarks: 'make bench' runs the nightly set at full size.
include bench/exact.mk
include bench/recall.mk
include bench/encoder.mk
include bench/query.mk
include bench/postgres.mk
