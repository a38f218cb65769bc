# Benchmarks: 'make bench' runs the nightly set at full size.

# The benches that time an earlier variant against the current one link a
# copy of the library built with its bench switches (src/base/bench_switch.h);
# the shipped library and the CLI never read them.
EXTRA_LTLIBRARIES = libhydb_bench.la
libhydb_bench_la_SOURCES = $(libhydb_internal_la_SOURCES)
libhydb_bench_la_CPPFLAGS = $(AM_CPPFLAGS) -DHYDB_BENCH_SWITCHES
CLEANFILES += libhydb_bench.la
include bench/exact.mk
include bench/recall.mk
include bench/encoder.mk
include bench/query.mk
include bench/postgres.mk
include bench/cone.mk
include bench/shard.mk
