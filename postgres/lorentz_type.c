/*
 * lorentz_type.c - the lorentz type: input, output, casts and checks.
 *
 * A value holds its space components in float4 and its curvature; text form
 * '[x1,...,xn]' for curvature -1 and '[x1,...,xn];c=0.5' otherwise, so that
 * every value reads back as itself.
 */
#include "hydb_pg.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

Lorentz *lorentz_new(int dim, double c)
{
	Lorentz *v = palloc0(LORENTZ_SIZE(dim));
	SET_VARSIZE(v, LORENTZ_SIZE(dim));
	v->dim = (uint16)dim;
	v->c = c;
	return v;
}

void hydb_pg_library_error(int rc, int sqlstate)
{
	ereport(ERROR, (errcode(sqlstate),
			errmsg("%s", hydb_last_error()),
			errdetail("hydb error code %d", rc)));
}

void lorentz_check_curvature(double c)
{
	if (!(c > 0) || !isfinite(c))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("curvature must be a finite number > 0, not %g", c)));
}

static void check_dim(int dim)
{
	if (dim < 1)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("lorentz must have at least 1 dimension")));
	if (dim > LORENTZ_MAX_DIM)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("lorentz cannot have more than %d dimensions",
				       LORENTZ_MAX_DIM)));
}

/* Why a radius limit: the library's keys stay accurate only up to
 * HYDB_MAX_RADIUS curvature radii from the origin, and it refuses farther
 * points; a value it would refuse must not reach an index. */
void lorentz_validate(const float *x, int dim, double c)
{
	check_dim(dim);
	lorentz_check_curvature(c);
	for (int i = 0; i < dim; i++)
		if (!isfinite(x[i]))
			ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
					errmsg("%s not allowed in lorentz",
					       isnan(x[i]) ? "NaN" : "infinite value")));
	double r = hydb_lorentz_radius(x, (size_t)dim, c) * sqrt(c);
	if (!(r <= HYDB_MAX_RADIUS))
		ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				errmsg("lorentz point is %g curvature radii from the origin, beyond the largest supported (%g)",
				       r, HYDB_MAX_RADIUS)));
}

void lorentz_check_pair(const Lorentz *a, const Lorentz *b)
{
	if (a->dim != b->dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("different lorentz dimensions %d and %d", a->dim, b->dim)));
	if (a->c != b->c)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("different lorentz curvatures -%g and -%g", a->c, b->c),
				errhint("Values of different curvature live in different spaces; convert one first.")));
}

static void check_typmod(const Lorentz *v, int32 typmod)
{
	if (typmod != -1 && v->dim != typmod)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("expected %d dimensions, not %d", typmod, v->dim)));
}

static void bad_literal(const char *lit, const char *why)
{
	ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			errmsg("invalid input syntax for type lorentz: \"%s\"", lit),
			errdetail("%s", why)));
}

static float parse_component(const char *lit, char **p)
{
	char *end;
	float f;
	while (isspace((unsigned char)**p))
		(*p)++;
	errno = 0;
	f = strtof(*p, &end);
	if (end == *p)
		bad_literal(lit, "a component is not a number");
	if (errno == ERANGE && isinf(f))
		ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				errmsg("\"%.*s\" is out of range for type real",
				       (int)(end - *p), *p)));
	*p = end;
	while (isspace((unsigned char)**p))
		(*p)++;
	return f;
}

/* The optional ";c=<curvature>" after the closing bracket. */
static double parse_curvature(const char *lit, char *p)
{
	char *end;
	double c = 1.0;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == ';') {
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (strncmp(p, "c=", 2) != 0)
			bad_literal(lit, "expected \"c=\" after \";\"");
		p += 2;
		errno = 0;
		c = strtod(p, &end);
		if (end == p)
			bad_literal(lit, "the curvature is not a number");
		p = end;
		while (isspace((unsigned char)*p))
			p++;
	}
	if (*p != '\0')
		bad_literal(lit, "junk after closing bracket");
	return c;
}

PG_FUNCTION_INFO_V1(lorentz_in);
Datum lorentz_in(PG_FUNCTION_ARGS)
{
	char *lit = PG_GETARG_CSTRING(0);
	int32 typmod = PG_GETARG_INT32(2);
	float *x = palloc(sizeof(float) * (LORENTZ_MAX_DIM + 1));
	int dim = 0;
	char *p = lit;
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '[')
		bad_literal(lit, "must start with \"[\"");
	p++;
	while (isspace((unsigned char)*p))
		p++;
	while (*p != ']') {
		if (dim > LORENTZ_MAX_DIM)
			check_dim(dim);
		x[dim++] = parse_component(lit, &p);
		if (*p == ',')
			p++;
		else if (*p != ']')
			bad_literal(lit, "expected \",\" or \"]\"");
	}
	double c = parse_curvature(lit, p + 1);
	lorentz_validate(x, dim, c);
	Lorentz *v = lorentz_new(dim, c);
	memcpy(v->x, x, sizeof(float) * dim);
	check_typmod(v, typmod);
	PG_RETURN_POINTER(v);
}

PG_FUNCTION_INFO_V1(lorentz_out);
Datum lorentz_out(PG_FUNCTION_ARGS)
{
	Lorentz *v = PG_GETARG_LORENTZ_P(0);
	StringInfoData s;
	char buf[DOUBLE_SHORTEST_DECIMAL_LEN];
	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int i = 0; i < v->dim; i++) {
		if (i)
			appendStringInfoChar(&s, ',');
		float_to_shortest_decimal_buf(v->x[i], buf);
		appendStringInfoString(&s, buf);
	}
	appendStringInfoChar(&s, ']');
	if (v->c != 1.0) {
		double_to_shortest_decimal_buf(v->c, buf);
		appendStringInfo(&s, ";c=%s", buf);
	}
	PG_RETURN_CSTRING(s.data);
}

PG_FUNCTION_INFO_V1(lorentz_typmod_in);
Datum lorentz_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32 *mods, n;
	mods = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid type modifier")));
	if (mods[0] < 1 || mods[0] > LORENTZ_MAX_DIM)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("dimensions for type lorentz must be between 1 and %d",
				       LORENTZ_MAX_DIM)));
	PG_RETURN_INT32(mods[0]);
}

PG_FUNCTION_INFO_V1(lorentz_typmod_out);
Datum lorentz_typmod_out(PG_FUNCTION_ARGS)
{
	int32 t = PG_GETARG_INT32(0);
	PG_RETURN_CSTRING(t < 0 ? pstrdup("") : psprintf("(%d)", t));
}

PG_FUNCTION_INFO_V1(lorentz_recv);
Datum lorentz_recv(PG_FUNCTION_ARGS)
{
	StringInfo buf = (StringInfo)PG_GETARG_POINTER(0);
	int32 typmod = PG_GETARG_INT32(2);
	int dim = pq_getmsgint(buf, 2);
	double c = pq_getmsgfloat8(buf);
	check_dim(dim);
	Lorentz *v = lorentz_new(dim, c);
	for (int i = 0; i < dim; i++)
		v->x[i] = pq_getmsgfloat4(buf);
	lorentz_validate(v->x, dim, c);
	check_typmod(v, typmod);
	PG_RETURN_POINTER(v);
}

PG_FUNCTION_INFO_V1(lorentz_send);
Datum lorentz_send(PG_FUNCTION_ARGS)
{
	Lorentz *v = PG_GETARG_LORENTZ_P(0);
	StringInfoData buf;
	pq_begintypsend(&buf);
	pq_sendint(&buf, v->dim, 2);
	pq_sendfloat8(&buf, v->c);
	for (int i = 0; i < v->dim; i++)
		pq_sendfloat4(&buf, v->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* lorentz(value, typmod, explicit): the length coercion of lorentz(dim). */
PG_FUNCTION_INFO_V1(lorentz_coerce);
Datum lorentz_coerce(PG_FUNCTION_ARGS)
{
	Lorentz *v = PG_GETARG_LORENTZ_P(0);
	check_typmod(v, PG_GETARG_INT32(1));
	PG_RETURN_POINTER(v);
}
