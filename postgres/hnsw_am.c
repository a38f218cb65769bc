/*
 * hnsw_am.c - the hydb_hnsw access method's handler, options, settings
 * and cost estimate.
 */
#include "hydb_pg.h"

#include <float.h>
#include <math.h>

#include "access/reloptions.h"
#include "commands/vacuum.h"
#include "optimizer/paths.h"
#include "utils/guc.h"
#include "utils/selfuncs.h"

PG_MODULE_MAGIC;

int hydb_ef_search = 64;
int hydb_max_scan_tuples = 20000;
bool hydb_iterative_scan = true;
static relopt_kind hg_relopt_kind;

void _PG_init(void);
void _PG_init(void)
{
	hg_relopt_kind = add_reloption_kind();
	add_int_reloption(hg_relopt_kind, "m", "Links per node on the upper layers (twice as many on layer 0)",
			  16, 2, HG_MAX_M, AccessExclusiveLock);
	add_int_reloption(hg_relopt_kind, "ef_construction", "Beam width while building",
			  200, 4, 1000, AccessExclusiveLock);
	DefineCustomIntVariable("hydb.ef_search", "Beam width of hydb_hnsw index scans.",
				"Larger is slower and finds more of the true nearest rows.",
				&hydb_ef_search, 64, 1, 1000, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("hydb.cache_mb",
				"Memory a backend may keep for the half-precision rows its scans read.",
				"0 reads every row from its page.",
				&hydb_cache_mb, 256, 0, 1 << 20, PGC_USERSET, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomBoolVariable("hydb.iterative_scan",
				 "Keep walking the graph while a filter rejects rows.",
				 NULL, &hydb_iterative_scan, true, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("hydb.max_scan_tuples",
				"Most index entries one scan returns when walking on for a filter.",
				NULL, &hydb_max_scan_tuples, 20000, 1, INT_MAX, PGC_USERSET, 0,
				NULL, NULL, NULL);
	MarkGUCPrefixReserved("hydb");
}

static bytea *hg_options(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"m", RELOPT_TYPE_INT, offsetof(HgOptions, m)},
		{"ef_construction", RELOPT_TYPE_INT, offsetof(HgOptions, ef_construction)},
	};
	return (bytea *)build_reloptions(reloptions, validate, hg_relopt_kind,
					 sizeof(HgOptions), tab, lengthof(tab));
}

int hg_opt_m(Relation index)
{
	HgOptions *o = (HgOptions *)index->rd_options;
	return o ? o->m : 16;
}

int hg_opt_efc(Relation index)
{
	HgOptions *o = (HgOptions *)index->rd_options;
	return o ? o->ef_construction : 200;
}

/* Only ORDER BY <-> uses the index: without it the cost is prohibitive, so
 * the planner never picks it for anything else. A graph walk touches about
 * ef_search * log(N) elements whatever the LIMIT. */
static void hg_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
			    Cost *startup, Cost *total, Selectivity *sel,
			    double *corr, double *pages)
{
	GenericCosts costs;
	if (path->indexorderbys == NIL) {
		*startup = *total = 1.0e10;
		*sel = 0;
		*corr = 0;
		*pages = 0;
		return;
	}
	MemSet(&costs, 0, sizeof costs);
	double n = Max(path->indexinfo->tuples, 1);
	costs.numIndexTuples = Min(n, hydb_ef_search * Max(log(n), 1.0));
	genericcostestimate(root, path, loop_count, &costs);
	/* The first batch is found before the first row comes out. */
	*startup = costs.indexTotalCost;
	*total = costs.indexTotalCost;
	*sel = costs.indexSelectivity;
	*corr = 0;
	*pages = costs.numIndexPages;
}

static bool hg_validate(Oid opclassoid)
{
	return true;
}

PG_FUNCTION_INFO_V1(hydb_hnsw_handler);
Datum hydb_hnsw_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);
	am->amstrategies = 0;
	am->amsupport = 0;
	am->amoptsprocnum = 0;
	am->amcanorderbyop = true;
	am->amoptionalkey = true;
	am->amkeytype = InvalidOid;
	am->amusemaintenanceworkmem = false;
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->ambuild = hg_build;
	am->ambuildempty = hg_buildempty;
	am->aminsert = hg_insert;
	am->ambulkdelete = hg_bulkdelete;
	am->amvacuumcleanup = hg_vacuumcleanup;
	am->amcostestimate = hg_costestimate;
	am->amoptions = hg_options;
	am->amvalidate = hg_validate;
	am->ambeginscan = hg_beginscan;
	am->amrescan = hg_rescan;
	am->amgettuple = hg_gettuple;
	am->amendscan = hg_endscan;
	PG_RETURN_POINTER(am);
}
