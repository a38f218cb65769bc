/* safety.h - the statistics behind `hydb calibrate` (tested directly). */
#ifndef HYDB_CLI_SAFETY_H
#define HYDB_CLI_SAFETY_H

#include <stddef.h>

typedef struct {
	size_t n;
	double avg, low_05, up_95; /* as in HySAC's hysac_bounds.json */
} hydb_class_stats;

typedef struct {
	double threshold;          /* safe iff radius <= threshold */
	double accuracy, fpr, fnr; /* fpr: safe flagged unsafe; fnr: unsafe passed */
} hydb_threshold;

/* Sorts radii in place. Quantiles interpolate linearly (numpy's default). */
void hydb_class_stats_compute(hydb_class_stats *s, double *radii, size_t n);
/* safe and unsafe must be sorted ascending. */
void hydb_best_threshold(hydb_threshold *out, const double *safe, size_t ns,
			 const double *unsafe, size_t nu);

#endif
