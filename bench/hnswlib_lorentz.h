// hnswlib_lorentz.h - an hnswlib SpaceInterface whose distance is hydb's
// Lorentz key, computed by hydb's fastest exact kernel: what an expert
// would build to index hyperbolic points with hnswlib. Shared by the
// recall bench's peer (hnswlib_peer.cpp) and the build race
// (build_race.cpp).
#ifndef HYDB_BENCH_HNSWLIB_LORENTZ_H
#define HYDB_BENCH_HNSWLIB_LORENTZ_H

#include <hnswlib/hnswlib.h>

#include <cmath>
#include <cstring>
#include <vector>

extern "C" {
#include "base/lorentz_kernel.h"
}

// A point as hnswlib stores it: D floats, then |x|^2 as a double, so each
// distance is one kernel pass like hydb's own.
struct LorentzParam {
	size_t dim;
	double c;
};

static double lorentz_dist(const void *a, const void *b, const void *p)
{
	const LorentzParam *lp = static_cast<const LorentzParam *>(p);
	hydb_kquery q;
	q.x = static_cast<const float *>(a);
	q.dim = lp->dim;
	q.c = lp->c;
	q.inv_c = 1.0 / lp->c;
	std::memcpy(&q.xx, q.x + lp->dim, sizeof q.xx);
	q.x0 = std::sqrt(q.inv_c + q.xx);
	return hydb_key_f32(&q, static_cast<const float *>(b));
}

class LorentzSpace : public hnswlib::SpaceInterface<double> {
	LorentzParam p_;

public:
	LorentzSpace(size_t dim, double c) : p_{dim, c} {}
	size_t get_data_size() override { return p_.dim * 4 + 8; }
	hnswlib::DISTFUNC<double> get_dist_func() override { return lorentz_dist; }
	void *get_dist_func_param() override { return &p_; }
};

static inline std::vector<char> lorentz_point(const float *x, size_t d)
{
	std::vector<char> v(d * 4 + 8);
	double xx = 0;
	for (size_t i = 0; i < d; i++)
		xx += (double)x[i] * x[i];
	std::memcpy(v.data(), x, d * 4);
	std::memcpy(v.data() + d * 4, &xx, 8);
	return v;
}

#endif
