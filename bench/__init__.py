"""Benchmarks (run as scripts: ``python -m bench.<name>``); not part of the test suite."""
