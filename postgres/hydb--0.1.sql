-- hydb: Lorentz-model hyperbolic vectors, their geometry and an HNSW index.
\echo Use "CREATE EXTENSION hydb" to load this file. \quit

CREATE TYPE lorentz;

CREATE FUNCTION lorentz_in(cstring, oid, integer) RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_out(lorentz) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_recv(internal, oid, integer) RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_send(lorentz) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- STORAGE main keeps a value in its row while the row fits a page (up to
-- about 1,900 dimensions): an index scan's executor computes the ORDER BY
-- distance again for every row it returns, and fetching an out-of-line
-- value from the TOAST table took a fifth of a 768-d query's time.
CREATE TYPE lorentz (
	INPUT = lorentz_in, OUTPUT = lorentz_out,
	TYPMOD_IN = lorentz_typmod_in, TYPMOD_OUT = lorentz_typmod_out,
	RECEIVE = lorentz_recv, SEND = lorentz_send,
	STORAGE = main, ALIGNMENT = double
);

-- Casts
CREATE FUNCTION lorentz(lorentz, integer, boolean) RETURNS lorentz
	AS 'MODULE_PATHNAME', 'lorentz_coerce' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_lorentz(real[], integer, boolean) RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_lorentz(double precision[], integer, boolean) RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_lorentz(integer[], integer, boolean) RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_lorentz(numeric[], integer, boolean) RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_to_float4(lorentz, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (lorentz AS lorentz) WITH FUNCTION lorentz(lorentz, integer, boolean) AS IMPLICIT;
CREATE CAST (real[] AS lorentz) WITH FUNCTION array_to_lorentz(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS lorentz) WITH FUNCTION array_to_lorentz(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (integer[] AS lorentz) WITH FUNCTION array_to_lorentz(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS lorentz) WITH FUNCTION array_to_lorentz(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (lorentz AS real[]) WITH FUNCTION lorentz_to_float4(lorentz, integer, boolean) AS ASSIGNMENT;

-- Constructors at a given curvature -c
CREATE FUNCTION lorentz(real[], c double precision) RETURNS lorentz
	AS 'MODULE_PATHNAME', 'lorentz_make' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_from_poincare(real[], c double precision DEFAULT 1) RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_exp_map0(real[], c double precision DEFAULT 1) RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Geometry (the library's formulas)
-- COST: a geodesic distance reads two whole vectors; at the default cost
-- of 1 the planner would prefer sorting a whole table to an index walk.
CREATE FUNCTION lorentz_distance(lorentz, lorentz) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10;
CREATE FUNCTION lorentz_radius(lorentz) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_time(lorentz) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_dims(lorentz) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_curvature(lorentz) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_half_aperture(lorentz) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_oxy_angle(lorentz, lorentz) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_redirect(lorentz, bound double precision, mode text DEFAULT 'hysac') RETURNS lorentz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hysac_bound(ub double precision, c double precision DEFAULT 1) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lorentz_eq(lorentz, lorentz) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR <-> (
	LEFTARG = lorentz, RIGHTARG = lorentz, FUNCTION = lorentz_distance,
	COMMUTATOR = '<->'
);
CREATE OPERATOR = (
	LEFTARG = lorentz, RIGHTARG = lorentz, FUNCTION = lorentz_eq,
	COMMUTATOR = '=', RESTRICT = eqsel, JOIN = eqjoinsel
);

-- The index access method
CREATE FUNCTION hydb_hnsw_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE ACCESS METHOD hydb_hnsw TYPE INDEX HANDLER hydb_hnsw_handler;
COMMENT ON ACCESS METHOD hydb_hnsw IS 'HNSW graph over lorentz values (hydb)';

CREATE OPERATOR CLASS lorentz_ops DEFAULT FOR TYPE lorentz USING hydb_hnsw AS
	OPERATOR 1 <-> (lorentz, lorentz) FOR ORDER BY float_ops;

CREATE FUNCTION hydb_index_check(regclass) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT;
