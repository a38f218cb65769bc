# Scale-out on PostgreSQL (issue 18): 3 shards and a coordinator made by
# tools/hydb-pg-cluster; sharded answers against a single node and exact.
# Skipped when PostgreSQL 15, PGXS or postgres_fdw is not installed.
TESTS += tests/test_shard.sh
EXTRA_DIST += tests/test_shard.sh tests/shard_check.py tests/shard.mk tools/hydb-pg-cluster
