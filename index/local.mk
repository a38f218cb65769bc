# The HNSW index.
