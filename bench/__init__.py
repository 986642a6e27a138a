"""Benchmarks: run with `python -m bench.run` (see docs/performance.md); never part of the test suite."""
