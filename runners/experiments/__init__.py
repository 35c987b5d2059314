"""Experiments: what the parent process orchestrates (paired runs, skill, data parallel); each run is a worker."""
