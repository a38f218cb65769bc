// build_race.cpp - hydb's index build against hnswlib's on the same data,
// interleaved in one process.
//
// Build times taken minutes apart on a shared machine differ by a third
// from run to run, more than the difference being measured. Here both
// builds advance together: slices of S points go to each in turn, in
// ABBA order (hydb first in even slices, hnswlib first in odd ones), so
// whatever the machine does falls on both alike. hnswlib uses the same
// Lorentz key (hydb's exact kernel, bench/hnswlib_lorentz.h), M = 16 and
// efConstruction = 200 like hydb. hydb's slices are write transactions
// that commit; its records are stored beforehand, outside the timing, as
// hnswlib keeps its own copy of every vector.
//
//   build_race DATADIR WORKDIR [SLICE [THREADS]]
//
// With one thread it compares CPU time of the calling thread, with more
// wall time (hnswlib adds a slice's points from as many threads). Prints
// both totals and their ratio, and one CSV row per system to stdout's last
// two lines.
#include "bench/hnswlib_lorentz.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

extern "C" {
#include "bench/recall_data.h"
#include "index/hnsw.h"
#include "storage/store.h"
}

static double clock_s(bool cpu)
{
	if (cpu) {
		timespec t;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
		return t.tv_sec + t.tv_nsec * 1e-9;
	}
	using namespace std::chrono;
	return duration<double>(steady_clock::now().time_since_epoch()).count();
}

static void die(const char *what)
{
	std::fprintf(stderr, "build_race: %s: %s\n", what, hydb_last_error());
	std::exit(1);
}

struct hydb_side {
	const rd_set *s;
	hydb_store *st = nullptr;
	hydb_index *ix = nullptr;
	std::vector<uint32_t> slots;
	size_t from = 0, to = 0;
};

static int put_slice(hydb_store *st, MDB_txn *txn, void *ctx)
{
	hydb_side *h = static_cast<hydb_side *>(ctx);
	char key[32];
	for (size_t i = h->from; i < h->to; i++) {
		hydb_record r = {};
		r.key = key;
		r.vector = h->s->base + i * h->s->d;
		r.modality = (hydb_modality)h->s->attr[i].modality;
		r.label = (hydb_label)h->s->attr[i].label;
		uint64_t id;
		int replaced;
		std::snprintf(key, sizeof key, "p%zu", i);
		int rc = hydb_store_put(st, txn, &r, h->s->attr[i].radius, &id,
					&h->slots[i], &replaced);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int open_index(hydb_store *st, MDB_txn *txn, void *ctx)
{
	hydb_side *h = static_cast<hydb_side *>(ctx);
	return hydb_index_open_flags(&h->ix, st, txn, 16, 200, 0);
}

static int insert_slice(hydb_store *st, MDB_txn *txn, void *ctx)
{
	(void)st;
	hydb_side *h = static_cast<hydb_side *>(ctx);
	return hydb_index_insert(h->ix, txn, h->slots.data() + h->from,
				 h->to - h->from);
}

static void prepare_hydb(hydb_side &h, const std::string &path,
			 unsigned threads)
{
	std::string cmd = "rm -rf '" + path + "'";
	if (std::system(cmd.c_str()) != 0)
		std::exit(1);
	hydb_open_options o;
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_CREATE | HYDB_OPEN_NOSYNC;
	o.dim = h.s->d;
	o.curvature = h.s->c;
	if (hydb_store_open(&h.st, path.c_str(), &o) < 0)
		die(path.c_str());
	h.slots.resize(h.s->n);
	for (h.from = 0; h.from < h.s->n; h.from = h.to) {
		h.to = std::min(h.from + 5000, h.s->n);
		if (hydb_store_write(h.st, put_slice, &h) < 0)
			die("storing records");
	}
	if (hydb_store_write(h.st, open_index, &h) < 0)
		die("creating the index");
	hydb_index_set_threads(h.ix, threads);
}

int main(int argc, char **argv)
{
	rd_set s;
	if (argc < 3 || rd_load(&s, argv[1]) < 0) {
		std::fprintf(stderr, "usage: build_race DATADIR WORKDIR "
				     "[SLICE [THREADS]]\n");
		return 2;
	}
	size_t slice = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 5000;
	unsigned threads = argc > 4 ? (unsigned)std::strtoul(argv[4], nullptr, 10)
				    : 1;
	if (slice == 0 || threads == 0 || threads > 64) {
		std::fprintf(stderr, "build_race: bad slice or thread count\n");
		return 2;
	}
	bool cpu = threads == 1;

	hydb_side h;
	h.s = &s;
	prepare_hydb(h, std::string(argv[2]) + "/race-db", threads);

	LorentzSpace sp(s.d, s.c);
	hnswlib::HierarchicalNSW<double> hn(&sp, s.n, 16, 200, 100);
	std::vector<std::vector<char>> pts(s.n);
	for (size_t i = 0; i < s.n; i++)
		pts[i] = lorentz_point(s.base + i * s.d, s.d);

	double th = 0, tl = 0;
	size_t k = 0;
	for (size_t from = 0; from < s.n; from += slice, k++) {
		size_t to = std::min(from + slice, s.n);
		auto run_hydb = [&] {
			h.from = from;
			h.to = to;
			double t0 = clock_s(cpu);
			if (hydb_store_write(h.st, insert_slice, &h) < 0)
				die("index insert");
			th += clock_s(cpu) - t0;
		};
		auto run_hnswlib = [&] {
			double t0 = clock_s(cpu);
			std::vector<std::thread> ts;
			for (unsigned t = 1; t < threads; t++)
				ts.emplace_back([&, t] {
					for (size_t i = from + t; i < to; i += threads)
						hn.addPoint(pts[i].data(), i);
				});
			for (size_t i = from; i < to; i += threads)
				hn.addPoint(pts[i].data(), i);
			for (auto &t : ts)
				t.join();
			tl += clock_s(cpu) - t0;
		};
		if (k % 2 == 0) {
			run_hydb();
			run_hnswlib();
		} else {
			run_hnswlib();
			run_hydb();
		}
		if (isatty(2))
			std::fprintf(stderr, "\rbuild race: %zu of %zu points", to,
				     s.n);
	}
	if (isatty(2))
		std::fprintf(stderr, "\n");

	MDB_txn *txn;
	hydb_index_stats st;
	if (hydb_store_read_begin(h.st, &txn) < 0 ||
	    hydb_index_stats_get(h.ix, txn, &st) < 0)
		die("index stats");
	hydb_store_read_end(h.st, txn);
	if (st.nodes != s.n || hn.cur_element_count != s.n) {
		std::fprintf(stderr, "build_race: %llu and %zu nodes, expected %zu\n",
			     (unsigned long long)st.nodes,
			     (size_t)hn.cur_element_count, s.n);
		return 1;
	}
	std::printf("build race, %zu x %zu, M=16 efC=200, %u thread%s, slices "
		    "of %zu in ABBA order: hydb %.2f s, hnswlib-lorentz %.2f s "
		    "(%s), hydb/hnswlib %.3f\n",
		    s.n, s.d, threads, threads > 1 ? "s" : "", slice, th, tl,
		    cpu ? "CPU" : "wall", th / tl);
	std::printf("build-race-hydb-%ut,,,,,,,,%.3f,,\n", threads, th);
	std::printf("build-race-hnswlib-%ut,,,,,,,,%.3f,,\n", threads, tl);
	hydb_index_close(h.ix);
	hydb_store_close(h.st);
	rd_free(&s);
	return 0;
}
