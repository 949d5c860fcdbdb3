"""Benchmarks (results in docs/benchmarks.md); run each as ``python -m bench.NAME``."""
