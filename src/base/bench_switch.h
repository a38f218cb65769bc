/*
 * bench_switch.h - switches that bring back an earlier variant of an
 * algorithm, so that a bench can time both in one run on the same data
 * (index/README.md, bench/bench_encoder.c).
 *
 * They exist only in the library copy that bench/ links, compiled with
 * -DHYDB_BENCH_SWITCHES (bench/local.mk). Everywhere else, the shipped
 * library and the CLI included, a switch is its default constant and the
 * branch it guards compiles away: no environment variable changes what a
 * user's hydb does.
 */
#ifndef HYDB_BASE_BENCH_SWITCH_H
#define HYDB_BASE_BENCH_SWITCH_H

#ifdef HYDB_BENCH_SWITCHES
/* The environment variable name as a whole number, or dflt when it is unset
 * or empty. */
long hydb_bench_switch(const char *name, long dflt);
#else
#define hydb_bench_switch(name, dflt) ((void)(name), (long)(dflt))
#endif

#endif /* HYDB_BASE_BENCH_SWITCH_H */
