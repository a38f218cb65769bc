-- The lorentz type: I/O, casts, geometry against the library, bad input.
CREATE EXTENSION IF NOT EXISTS hydb;
\set VERBOSITY default
-- Text round trips (shortest float form reads back as the same bits)
SELECT '[1,2,3]'::lorentz;
SELECT ' [ 1.5 , -2e-3 ,3 ] '::lorentz;
SELECT '[0.1,0.2];c=0.5'::lorentz;
SELECT '[0.1,0.2];c=0.5'::lorentz::text::lorentz = '[0.1,0.2];c=0.5'::lorentz AS same;
SELECT '[0.33333334]'::lorentz::text;
SELECT '[1,2]'::lorentz(2);
-- Binary round trip
CREATE TEMP TABLE bin (v lorentz);
INSERT INTO bin VALUES ('[0.25,-1.5];c=0.75');
COPY bin TO '/tmp/hydb_regress_bin.copy' WITH (FORMAT binary);
COPY bin FROM '/tmp/hydb_regress_bin.copy' WITH (FORMAT binary);
SELECT v::text, count(*) FROM bin GROUP BY v::text;
-- Casts
SELECT '{1,2,3}'::real[]::lorentz;
SELECT '{1,2,3}'::double precision[]::lorentz(3);
SELECT '{1,2,3}'::int[]::lorentz;
SELECT '[1,2,3]'::lorentz::real[];
SELECT lorentz('{1,2}'::real[], 2);
SELECT lorentz_dims('[1,2,3]'), lorentz_curvature('[1];c=0.25');
-- Geometry: values the library gives (hydb_lorentz_dist & co.)
SELECT round(('[0,0]'::lorentz <-> '[1,0]')::numeric, 12) AS asinh1;
SELECT round(lorentz_distance('[1,2,3]', '[1,2,4]')::numeric, 12);
SELECT '[5,5]'::lorentz <-> '[5,5]' AS zero;
SELECT round(lorentz_radius('[3,4]')::numeric, 12) AS asinh5, round(lorentz_time('[3,4]')::numeric, 12) AS sqrt26;
SELECT round(lorentz_radius('[1,0];c=4')::numeric, 12) AS r_c4;
SELECT lorentz_from_poincare('{0.5,0}', 1), lorentz_from_poincare('{0.1,0.2}', 2);
SELECT lorentz_exp_map0('{1,0}'), lorentz_exp_map0('{0.5,0.5}', 0.5);
SELECT round(hysac_bound(1.2)::numeric, 12), round(hysac_bound(1.0, 0.5)::numeric, 12);
SELECT lorentz_redirect('[3,4]', 1.0, 'geodesic'), lorentz_redirect('[3,4]', 1.0, 'hysac'), lorentz_redirect('[3,4]', 1.0), lorentz_redirect('[0.1,0]', 1.0);
SELECT round(lorentz_half_aperture('[1,1]')::numeric, 12), round(lorentz_oxy_angle('[1,1]', '[2,1]')::numeric, 12);
-- Triangle inequality and symmetry on random points
SELECT bool_and(abs((a <-> b) - (b <-> a)) < 1e-12) AS symmetric,
       bool_and((a <-> b) <= (a <-> c) + (c <-> b) + 1e-9) AS triangle
FROM (SELECT lorentz_exp_map0(ARRAY[sin(i), cos(i * 3), sin(i * 7)]::real[]) a,
             lorentz_exp_map0(ARRAY[cos(i), sin(i * 5), cos(i * 2)]::real[]) b,
             lorentz_exp_map0(ARRAY[sin(i * 11), sin(i * 13), cos(i * 17)]::real[]) c
      FROM generate_series(1, 200) i) s;
-- Bad input: each an ERROR with a data-exception SQLSTATE (class 22)
\set VERBOSITY sqlstate
SELECT '[1,NaN]'::lorentz;
SELECT '[1,Infinity]'::lorentz;
SELECT '[1,1e39]'::lorentz;
SELECT '[1,2'::lorentz;
SELECT '1,2]'::lorentz;
SELECT '[1,,2]'::lorentz;
SELECT '[1,abc]'::lorentz;
SELECT '[]'::lorentz;
SELECT '[1,2] x'::lorentz;
SELECT '[1,2];c=0'::lorentz;
SELECT '[1,2];c=-1'::lorentz;
SELECT '[1,2];d=1'::lorentz;
SELECT '[1,2,3]'::lorentz(2);
SELECT '{1,2,3}'::real[]::lorentz(2);
SELECT '{1,NULL}'::real[]::lorentz;
SELECT '{{1,2},{3,4}}'::real[]::lorentz;
SELECT '{NaN,1}'::float8[]::lorentz;
SELECT '[1e9,0]'::lorentz;
SELECT '[1,2]'::lorentz <-> '[1,2,3]';
SELECT '[1,2]'::lorentz <-> '[1,2];c=2';
SELECT lorentz_oxy_angle('[1,2]', '[1,2];c=2');
SELECT lorentz_from_poincare('{1,0}', 1);
SELECT lorentz_from_poincare('{0.5,0}', 0);
SELECT lorentz_exp_map0('{1,0}', 'NaN');
SELECT lorentz_redirect('[3,4]', -1, 'hysac');
SELECT lorentz_redirect('[3,4]', 1, 'sideways');
SELECT hysac_bound('Infinity');
\set VERBOSITY default
