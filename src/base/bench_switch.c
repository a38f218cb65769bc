/* bench_switch.c - see bench_switch.h; empty outside bench builds. */
#include "base/bench_switch.h"

#ifdef HYDB_BENCH_SWITCHES
#include <stdlib.h>

long hydb_bench_switch(const char *name, long dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtol(v, NULL, 10) : dflt;
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int hydb_bench_switch_unused;
#endif
