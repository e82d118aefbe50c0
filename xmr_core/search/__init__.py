"""Search: the engine facade, ranking by meaning and by reading, page reading, annotation, jobs."""
