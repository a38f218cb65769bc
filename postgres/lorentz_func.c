/*
 * lorentz_func.c - casts and geometry on lorentz values. Every formula is
 * the library's (hydb.h, src/base/lorentz.h); here only argument checks
 * and the mapping of its errors to SQLSTATEs.
 */
#include "hydb_pg.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "base/lorentz.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"

/* A one-dimensional array without NULLs as doubles. */
static double *array_doubles(ArrayType *a, int *dim)
{
	Oid et = ARR_ELEMTYPE(a);
	int16 len;
	bool byval, *nulls;
	char align;
	Datum *d;
	int n;
	if (ARR_NDIM(a) > 1)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("array must be 1-D")));
	if (et != FLOAT4OID && et != FLOAT8OID && et != INT4OID && et != NUMERICOID)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("unsupported array element type %s", format_type_be(et))));
	get_typlenbyvalalign(et, &len, &byval, &align);
	deconstruct_array(a, et, len, byval, align, &d, &nulls, &n);
	double *out = palloc(sizeof(double) * (n ? n : 1));
	for (int i = 0; i < n; i++) {
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("array must not contain nulls")));
		out[i] = et == FLOAT4OID ? DatumGetFloat4(d[i])
			 : et == FLOAT8OID ? DatumGetFloat8(d[i])
			 : et == INT4OID ? DatumGetInt32(d[i])
			 : DatumGetFloat8(DirectFunctionCall1(numeric_float8, d[i]));
	}
	*dim = n;
	return out;
}

static Lorentz *from_doubles(const double *in, int dim, double c, int32 typmod)
{
	lorentz_check_curvature(c);
	if (dim < 1 || dim > LORENTZ_MAX_DIM)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("lorentz must have between 1 and %d dimensions, not %d",
				       LORENTZ_MAX_DIM, dim)));
	Lorentz *v = lorentz_new(dim, c);
	for (int i = 0; i < dim; i++) {
		if (!isfinite(in[i]))
			ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
					errmsg("%s not allowed in lorentz",
					       isnan(in[i]) ? "NaN" : "infinite value")));
		if (fabs(in[i]) > FLT_MAX)
			ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					errmsg("component %d is out of range for type real", i + 1)));
		v->x[i] = (float)in[i];
	}
	lorentz_validate(v->x, dim, c);
	if (typmod != -1 && typmod != dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("expected %d dimensions, not %d", typmod, dim)));
	return v;
}

/* Casts from real[], double precision[], integer[] and numeric[]: the
 * space components at curvature -1. */
PG_FUNCTION_INFO_V1(array_to_lorentz);
Datum array_to_lorentz(PG_FUNCTION_ARGS)
{
	int dim;
	double *d = array_doubles(PG_GETARG_ARRAYTYPE_P(0), &dim);
	PG_RETURN_POINTER(from_doubles(d, dim, 1.0, PG_GETARG_INT32(1)));
}

PG_FUNCTION_INFO_V1(lorentz_to_float4);
Datum lorentz_to_float4(PG_FUNCTION_ARGS)
{
	Lorentz *v = PG_GETARG_LORENTZ_P(0);
	Datum *d = palloc(sizeof(Datum) * v->dim);
	for (int i = 0; i < v->dim; i++)
		d[i] = Float4GetDatum(v->x[i]);
	PG_RETURN_POINTER(construct_array(d, v->dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(lorentz_make);
Datum lorentz_make(PG_FUNCTION_ARGS)
{
	int dim;
	double *d = array_doubles(PG_GETARG_ARRAYTYPE_P(0), &dim);
	PG_RETURN_POINTER(from_doubles(d, dim, PG_GETARG_FLOAT8(1), -1));
}

PG_FUNCTION_INFO_V1(lorentz_from_poincare);
Datum lorentz_from_poincare(PG_FUNCTION_ARGS)
{
	int dim, rc;
	double *d = array_doubles(PG_GETARG_ARRAYTYPE_P(0), &dim);
	double c = PG_GETARG_FLOAT8(1);
	lorentz_check_curvature(c);
	if (dim < 1 || dim > LORENTZ_MAX_DIM)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("lorentz must have between 1 and %d dimensions, not %d",
				       LORENTZ_MAX_DIM, dim)));
	for (int i = 0; i < dim; i++)
		if (!isfinite(d[i]))
			ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
					errmsg("NaN or infinite value not allowed in lorentz")));
	Lorentz *v = lorentz_new(dim, c);
	rc = hydb_coords_from_poincare(v->x, d, (size_t)dim, c, "lorentz_from_poincare");
	if (rc)
		hydb_pg_library_error(rc, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE);
	lorentz_validate(v->x, dim, c);
	PG_RETURN_POINTER(v);
}

PG_FUNCTION_INFO_V1(lorentz_exp_map0);
Datum lorentz_exp_map0(PG_FUNCTION_ARGS)
{
	int dim;
	double *d = array_doubles(PG_GETARG_ARRAYTYPE_P(0), &dim);
	double c = PG_GETARG_FLOAT8(1);
	Lorentz *v = from_doubles(d, dim, 1.0, -1);
	lorentz_check_curvature(c);
	v->c = c;
	hydb_exp_map0(v->x, v->x, (size_t)dim, c);
	lorentz_validate(v->x, dim, c);
	PG_RETURN_POINTER(v);
}

PG_FUNCTION_INFO_V1(lorentz_distance);
Datum lorentz_distance(PG_FUNCTION_ARGS)
{
	Lorentz *a = PG_GETARG_LORENTZ_P(0), *b = PG_GETARG_LORENTZ_P(1);
	lorentz_check_pair(a, b);
	PG_RETURN_FLOAT8(hydb_lorentz_dist(a->x, b->x, a->dim, a->c));
}

PG_FUNCTION_INFO_V1(lorentz_radius);
Datum lorentz_radius(PG_FUNCTION_ARGS)
{
	Lorentz *a = PG_GETARG_LORENTZ_P(0);
	PG_RETURN_FLOAT8(hydb_lorentz_radius(a->x, a->dim, a->c));
}

PG_FUNCTION_INFO_V1(lorentz_time);
Datum lorentz_time(PG_FUNCTION_ARGS)
{
	Lorentz *a = PG_GETARG_LORENTZ_P(0);
	PG_RETURN_FLOAT8(hydb_lorentz_time(a->x, a->dim, a->c));
}

PG_FUNCTION_INFO_V1(lorentz_dims);
Datum lorentz_dims(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PG_GETARG_LORENTZ_P(0)->dim);
}

PG_FUNCTION_INFO_V1(lorentz_curvature);
Datum lorentz_curvature(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(PG_GETARG_LORENTZ_P(0)->c);
}

PG_FUNCTION_INFO_V1(lorentz_half_aperture);
Datum lorentz_half_aperture(PG_FUNCTION_ARGS)
{
	Lorentz *a = PG_GETARG_LORENTZ_P(0);
	PG_RETURN_FLOAT8(hydb_half_aperture(a->x, a->dim, a->c));
}

PG_FUNCTION_INFO_V1(lorentz_oxy_angle);
Datum lorentz_oxy_angle(PG_FUNCTION_ARGS)
{
	Lorentz *a = PG_GETARG_LORENTZ_P(0), *b = PG_GETARG_LORENTZ_P(1);
	lorentz_check_pair(a, b);
	PG_RETURN_FLOAT8(hydb_oxy_angle(a->x, b->x, a->dim, a->c));
}

PG_FUNCTION_INFO_V1(hysac_bound);
Datum hysac_bound(PG_FUNCTION_ARGS)
{
	double ub = PG_GETARG_FLOAT8(0), c = PG_GETARG_FLOAT8(1);
	lorentz_check_curvature(c);
	if (!isfinite(ub) || ub < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("bound must be a finite radius >= 0, not %g", ub)));
	PG_RETURN_FLOAT8(hydb_redirect_bound(ub, c));
}

static hydb_redirect redirect_mode(const char *m)
{
	if (strcmp(m, "none") == 0)
		return HYDB_REDIRECT_NONE;
	if (strcmp(m, "hysac") == 0)
		return HYDB_REDIRECT_HYSAC;
	if (strcmp(m, "geodesic") == 0)
		return HYDB_REDIRECT_GEODESIC;
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("redirect mode must be none, hysac or geodesic, not \"%s\"", m)));
	return HYDB_REDIRECT_NONE;
}

PG_FUNCTION_INFO_V1(lorentz_redirect);
Datum lorentz_redirect(PG_FUNCTION_ARGS)
{
	Lorentz *a = PG_GETARG_LORENTZ_P(0);
	double bound = PG_GETARG_FLOAT8(1);
	hydb_redirect mode = redirect_mode(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	Lorentz *v = lorentz_new(a->dim, a->c);
	memcpy(v->x, a->x, sizeof(float) * a->dim);
	int rc = hydb_redirect_query(v->x, v->dim, v->c, mode, bound);
	if (rc < 0)
		hydb_pg_library_error(rc, ERRCODE_INVALID_PARAMETER_VALUE);
	PG_RETURN_POINTER(v);
}

/* Equality for DISTINCT, GROUP BY and tests: same curvature, same bits. */
PG_FUNCTION_INFO_V1(lorentz_eq);
Datum lorentz_eq(PG_FUNCTION_ARGS)
{
	Lorentz *a = PG_GETARG_LORENTZ_P(0), *b = PG_GETARG_LORENTZ_P(1);
	PG_RETURN_BOOL(a->dim == b->dim && a->c == b->c &&
		       memcmp(a->x, b->x, sizeof(float) * a->dim) == 0);
}
