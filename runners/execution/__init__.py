"""Execution: what one worker process does: build a backend, run its task, write its result."""
