"""Measuring: timing statistics, numerical parity, memory; NumPy only, no framework imports."""
