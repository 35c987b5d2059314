"""Backends: the Runner protocol's implementations, one module per framework; each imports its framework."""
