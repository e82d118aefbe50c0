"""Storage: the SQLite store, users, the model registry, vector index backends, integrity checks."""
