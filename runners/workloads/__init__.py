"""Workloads: the registry, and one folder per model family (configuration, the model in each framework)."""
