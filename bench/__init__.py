"""Kith's benchmark suite: `make bench` (or `python -m bench run`). See docs/benchmarks.md."""
