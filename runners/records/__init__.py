"""Records: the schema (every kind, its fields, the identity of a run, validate) and the append-only store."""
