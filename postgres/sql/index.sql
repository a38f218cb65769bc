-- The hydb_hnsw index: build, scans equal to a sequential scan, insert,
-- update, delete, VACUUM, hydb_index_check, errors.
CREATE EXTENSION IF NOT EXISTS hydb;
SET client_min_messages = warning;
CREATE TABLE items (id int PRIMARY KEY, label int, embedding lorentz(8));
INSERT INTO items
SELECT i, i % 10, lorentz_exp_map0(ARRAY[sin(i), cos(i * 1.3), sin(i * 2.7), cos(i * 0.7),
        sin(i * 5.1), cos(i * 3.3), sin(i * 0.37), cos(i * 7.7)]::real[])
FROM generate_series(1, 2000) i;
CREATE INDEX items_idx ON items USING hydb_hnsw (embedding lorentz_ops) WITH (m = 8, ef_construction = 64);
SELECT hydb_index_check('items_idx');
SET hydb.ef_search = 200;
-- Small tables favour a sort; the index is forced where it is under test.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 5;
-- The index agrees with a sequential scan (recall over 20 queries)
CREATE TEMP TABLE q AS SELECT id AS qid, embedding AS qv FROM items WHERE id % 100 = 7;
CREATE TEMP TABLE idx_res AS
SELECT qid, array(SELECT id FROM items ORDER BY embedding <-> qv LIMIT 10) ids FROM q;
SET enable_indexscan = off;
SET enable_seqscan = on;
CREATE TEMP TABLE seq_res AS
SELECT qid, array(SELECT id FROM items ORDER BY embedding <-> qv LIMIT 10) ids FROM q;
RESET enable_indexscan;
SET enable_seqscan = off;
SELECT sum(cardinality(ARRAY(SELECT unnest(i.ids) INTERSECT SELECT unnest(s.ids))))::float / sum(10) >= 0.95 AS recall_ok
FROM idx_res i JOIN seq_res s USING (qid);
-- Distances returned in order, equal to the operator's
SELECT bool_and(d >= lag_d) AS ordered FROM (
  SELECT embedding <-> '[0.1,0,0,0,0,0,0,0]' d, lag(embedding <-> '[0.1,0,0,0,0,0,0,0]', 1, 0) OVER () lag_d
  FROM (SELECT embedding FROM items ORDER BY embedding <-> '[0.1,0,0,0,0,0,0,0]' LIMIT 50) s) t;
-- Filters: LIMIT rows come back however selective the filter
SELECT count(*) FROM (SELECT id FROM items WHERE label = 3 ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM items WHERE id % 200 = 1 ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM items WHERE lorentz_radius(embedding) < 1.8 ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 10) s;
-- Insert, update, delete
INSERT INTO items SELECT i, 0, lorentz_exp_map0(ARRAY[cos(i), sin(i), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]::real[]) FROM generate_series(2001, 2300) i;
-- The scans above left this backend holding the lists they read, and the
-- inserts changed lists: new rows and the moved row below must be found
-- (with a stale list kept, the moved row 5 was not)
SELECT count(*) AS lost_new FROM items a WHERE id > 2000 AND
  NOT EXISTS (SELECT 1 FROM (SELECT id FROM items b ORDER BY b.embedding <-> a.embedding LIMIT 1) s WHERE s.id = a.id);
UPDATE items SET embedding = '[3,0,0,0,0,0,0,0]' WHERE id = 5;
SELECT id FROM items ORDER BY embedding <-> '[3,0,0,0,0,0,0,0]' LIMIT 1;
DELETE FROM items WHERE id % 3 = 0;
SELECT count(*) FROM (SELECT id FROM items ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 20) s WHERE id % 3 = 0;
VACUUM items;
SELECT hydb_index_check('items_idx');
SELECT count(*) FROM (SELECT id FROM items ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 20) s;
-- Every remaining row is found by a search for its own vector
SELECT count(*) AS lost FROM items a
WHERE NOT EXISTS (SELECT 1 FROM (SELECT id FROM items b ORDER BY b.embedding <-> a.embedding LIMIT 3) s WHERE s.id = a.id);
-- Delete nearly everything, VACUUM, the graph stays whole
DELETE FROM items WHERE id > 30;
VACUUM items;
SELECT hydb_index_check('items_idx');
SELECT count(*) FROM (SELECT id FROM items ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 100) s;
-- Empty table, then inserts build the graph from nothing; NULLs are skipped
CREATE TABLE empty (v lorentz);
CREATE INDEX ON empty USING hydb_hnsw (v);
INSERT INTO empty VALUES (NULL), ('[1,2]'), ('[0,0]'), ('[2,2]');
SELECT v FROM empty ORDER BY v <-> '[0.1,0.1]' LIMIT 2;
SELECT hydb_index_check('empty_v_idx');
-- Mixed dimensions or curvatures refuse to enter one index, or query it
\set VERBOSITY sqlstate
INSERT INTO empty VALUES ('[1,2,3]');
INSERT INTO empty VALUES ('[1,2];c=2');
SELECT v FROM empty ORDER BY v <-> '[1,2,3]' LIMIT 1;
SELECT v FROM empty ORDER BY v <-> '[1,2];c=2' LIMIT 1;
CREATE TABLE mixed (v lorentz);
INSERT INTO mixed VALUES ('[1,2]'), ('[1,2,3]');
CREATE INDEX ON mixed USING hydb_hnsw (v);
CREATE INDEX ON items USING hydb_hnsw (embedding) WITH (m = 1);
SELECT hydb_index_check('items_pkey');
\set VERBOSITY default
-- Settings
SHOW hydb.ef_search;
SHOW hydb.iterative_scan;
SHOW hydb.max_scan_tuples;
