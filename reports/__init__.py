"""Results to tables and reports; reads records, imports no framework."""
