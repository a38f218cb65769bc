// hnswlib_peer.cpp - hnswlib (Debian's header-only build) on the recall
// bench's data, three ways:
//   hnswlib-lorentz  a SpaceInterface whose distance is hydb's Lorentz key,
//                    computed by hydb's fastest kernel (same M, efC)
//   hnswlib-ip       inner product against the time-flipped query
//                    (x, x0) . (q, -q0) = <x,q>_L in float32, no re-ranking
//   hnswlib-l2log    L2 on log_map0 tangent vectors, then exact re-ranking
// plus hnswlib-lorentz with post-filtering at each radius selectivity.
//
//   hnswlib_peer DATADIR OUT.csv
#include "bench/hnswlib_lorentz.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

extern "C" {
#include "bench/recall_data.h"
}

static double cpu_now()
{
	timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double now()
{
	using namespace std::chrono;
	return duration<double>(steady_clock::now().time_since_epoch()).count();
}

template <typename T>
static void fill_rows(std::priority_queue<std::pair<T, hnswlib::labeltype>> r,
		      int32_t *row, size_t k)
{
	std::vector<int> ids;
	while (!r.empty()) {
		ids.push_back((int)r.top().second);
		r.pop();
	}
	std::reverse(ids.begin(), ids.end());
	for (size_t i = 0; i < k; i++)
		row[i] = i < ids.size() ? ids[i] : -1;
}

static const size_t efs[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512};

// Run fn(q) over all queries on nthreads threads; returns QPS.
template <typename F> static double timed(size_t nq, int nthreads, F fn)
{
	double t0 = now();
	if (nthreads == 1) {
		for (size_t q = 0; q < nq; q++)
			fn(q);
	} else {
		std::thread t([&] {
			for (size_t q = nq / 2; q < nq; q++)
				fn(q);
		});
		for (size_t q = 0; q < nq / 2; q++)
			fn(q);
		t.join();
	}
	return nq / (now() - t0);
}

static void run_lorentz(const rd_set &s, FILE *csv)
{
	LorentzSpace sp(s.d, s.c);
	hnswlib::HierarchicalNSW<double> ix(&sp, s.n, 16, 200, 100);
	double t0 = now(), c0 = cpu_now();
	for (size_t i = 0; i < s.n; i++)
		ix.addPoint(lorentz_point(s.base + i * s.d, s.d).data(), i);
	double build = now() - t0;
	std::printf("hnswlib-lorentz build %.2f s wall, %.2f s CPU (1 thread)\n",
		    build, cpu_now() - c0);
	std::vector<std::vector<char>> qs;
	for (size_t q = 0; q < s.nq; q++)
		qs.push_back(lorentz_point(s.query + q * s.d, s.d));
	double bpv = (double)(ix.size_data_per_element_ +
			      sizeof(void *)) ;
	std::vector<int32_t> rows(s.nq * RD_GT_K);
	for (size_t ef : efs) {
		ix.setEf(ef);
		auto one = [&](size_t q) {
			fill_rows(ix.searchKnn(qs[q].data(), 10), &rows[q * 10], 10);
		};
		double q1 = timed(s.nq, 1, one), q2 = timed(s.nq, 2, one);
		double r1 = rd_recall(rows.data(), 10, s.gt, RD_GT_K, s.nq, 1);
		double r10 = rd_recall(rows.data(), 10, s.gt, RD_GT_K, s.nq, 10);
		ix.setEf(std::max<size_t>(ef, 100));
		for (size_t q = 0; q < s.nq; q++)
			fill_rows(ix.searchKnn(qs[q].data(), 100), &rows[q * 100], 100);
		double r100 = rd_recall(rows.data(), 100, s.gt, RD_GT_K, s.nq, 100);
		std::fprintf(csv, "hnswlib-lorentz,%zu,1,%.4f,%.4f,%.4f,%.1f,%.1f,%.3f,%.0f,\n",
			     ef, r1, r10, r100, q1, q2, build, bpv);
		std::printf("hnswlib-lorentz ef=%-4zu recall@1 %.4f @10 %.4f @100 %.4f "
			    "QPS %8.1f (2 threads %8.1f) build %.2f s\n",
			    ef, r1, r10, r100, q1, q2, build);
	}
	// Post-filtering: ask for enough to expect ~20 matches, at most 4096.
	for (int f = 0; f < RD_NSEL; f++) {
		size_t want = (size_t)std::min(4096.0, std::ceil(20 / s.sel[f]));
		ix.setEf(std::max<size_t>(want, 64));
		std::vector<int32_t> fr(s.nq * 10);
		auto one = [&](size_t q) {
			auto r = ix.searchKnn(qs[q].data(), want);
			std::vector<std::pair<double, int>> keep;
			while (!r.empty()) {
				if (s.attr[r.top().second].radius <= s.bound[f])
					keep.push_back({r.top().first, (int)r.top().second});
				r.pop();
			}
			std::sort(keep.begin(), keep.end());
			for (size_t i = 0; i < 10; i++)
				fr[q * 10 + i] = i < keep.size() ? keep[i].second : -1;
		};
		double q1 = timed(s.nq, 1, one);
		double r10 = rd_recall(fr.data(), 10, s.gtf + (size_t)f * s.nq * RD_GTF_K,
				       RD_GTF_K, s.nq, 10);
		std::fprintf(csv, "hnswlib-lorentz-postfilter,%zu,%g,,%.4f,,%.1f,,,,\n",
			     want, s.sel[f], r10, q1);
		std::printf("hnswlib post-filter sel %5.3f%% recall@10 %.4f QPS %8.1f\n",
			    100 * s.sel[f], r10, q1);
	}
}

static double time_comp(const float *x, size_t d, double c)
{
	double xx = 0;
	for (size_t i = 0; i < d; i++)
		xx += (double)x[i] * x[i];
	return std::sqrt(1 / c + xx);
}

// The naive inner-product reading of the Lorentz form, in float32.
static void run_ip(const rd_set &s, FILE *csv)
{
	size_t d1 = s.d + 1;
	hnswlib::InnerProductSpace sp(d1);
	hnswlib::HierarchicalNSW<float> ix(&sp, s.n, 16, 200, 100);
	std::vector<float> v(d1);
	double t0 = now();
	for (size_t i = 0; i < s.n; i++) {
		std::memcpy(v.data(), s.base + i * s.d, s.d * 4);
		v[s.d] = (float)time_comp(s.base + i * s.d, s.d, s.c);
		ix.addPoint(v.data(), i);
	}
	double build = now() - t0;
	std::vector<float> qs(s.nq * d1);
	for (size_t q = 0; q < s.nq; q++) {
		std::memcpy(&qs[q * d1], s.query + q * s.d, s.d * 4);
		qs[q * d1 + s.d] = -(float)time_comp(s.query + q * s.d, s.d, s.c);
	}
	std::vector<int32_t> rows(s.nq * 10);
	for (size_t ef : {32, 64, 128, 256}) {
		ix.setEf(ef);
		auto one = [&](size_t q) {
			fill_rows(ix.searchKnn(&qs[q * d1], 10), &rows[q * 10], 10);
		};
		double q1 = timed(s.nq, 1, one);
		double r1 = rd_recall(rows.data(), 10, s.gt, RD_GT_K, s.nq, 1);
		double r10 = rd_recall(rows.data(), 10, s.gt, RD_GT_K, s.nq, 10);
		std::fprintf(csv, "hnswlib-ip,%zu,1,%.4f,%.4f,,%.1f,,%.3f,,\n", ef,
			     r1, r10, q1, build);
		std::printf("hnswlib-ip ef=%-4zu recall@1 %.4f @10 %.4f QPS %8.1f "
			    "build %.2f s\n", ef, r1, r10, q1, build);
	}
}

static void logmap(float *out, const float *x, size_t d, double c)
{
	double n = 0;
	for (size_t i = 0; i < d; i++)
		n += (double)x[i] * x[i];
	n = std::sqrt(n);
	double s = n > 0 ? std::asinh(std::sqrt(c) * n) / (std::sqrt(c) * n) : 1;
	for (size_t i = 0; i < d; i++)
		out[i] = (float)(x[i] * s);
}

// L2 in the tangent space at the origin, re-ranked with the exact key.
static void run_l2log(const rd_set &s, FILE *csv)
{
	hnswlib::L2Space sp(s.d);
	hnswlib::HierarchicalNSW<float> ix(&sp, s.n, 16, 200, 100);
	std::vector<float> v(s.d);
	double t0 = now();
	for (size_t i = 0; i < s.n; i++) {
		logmap(v.data(), s.base + i * s.d, s.d, s.c);
		ix.addPoint(v.data(), i);
	}
	double build = now() - t0;
	std::vector<float> qs(s.nq * s.d);
	for (size_t q = 0; q < s.nq; q++)
		logmap(&qs[q * s.d], s.query + q * s.d, s.d, s.c);
	std::vector<int32_t> rows(s.nq * 10);
	for (size_t ef : {32, 64, 128, 256}) {
		ix.setEf(ef);
		auto one = [&](size_t q) {
			auto r = ix.searchKnn(&qs[q * s.d], ef);
			std::vector<std::pair<double, int>> c;
			while (!r.empty()) {
				size_t id = r.top().second;
				c.push_back({hydb_kernel_key(s.query + q * s.d,
							     s.base + id * s.d, s.d, s.c),
					     (int)id});
				r.pop();
			}
			std::sort(c.begin(), c.end());
			for (size_t i = 0; i < 10; i++)
				rows[q * 10 + i] = i < c.size() ? c[i].second : -1;
		};
		double q1 = timed(s.nq, 1, one);
		double r1 = rd_recall(rows.data(), 10, s.gt, RD_GT_K, s.nq, 1);
		double r10 = rd_recall(rows.data(), 10, s.gt, RD_GT_K, s.nq, 10);
		std::fprintf(csv, "hnswlib-l2log,%zu,1,%.4f,%.4f,,%.1f,,%.3f,,\n", ef,
			     r1, r10, q1, build);
		std::printf("hnswlib-l2log ef=%-4zu recall@1 %.4f @10 %.4f QPS %8.1f "
			    "build %.2f s\n", ef, r1, r10, q1, build);
	}
}

int main(int argc, char **argv)
{
	rd_set s;
	if (argc < 3 || rd_load(&s, argv[1]) < 0) {
		std::fprintf(stderr, "usage: hnswlib_peer DATADIR OUT.csv\n");
		return 2;
	}
	FILE *csv = std::fopen(argv[2], "a");
	if (!csv)
		return 1;
	std::printf("hnswlib peers, kernel %s\n", hydb_kernel_name(hydb_kernel_level()));
	run_lorentz(s, csv);
	if (!getenv("HYDB_BENCH_LORENTZ_ONLY")) {
		run_ip(s, csv);
		run_l2log(s, csv);
	}
	std::fclose(csv);
	rd_free(&s);
	return 0;
}
