"""Factories shared by tests and benchmarks: plain modules, no tests and no pytest fixtures,
so a benchmark can import them without importing a test module."""
