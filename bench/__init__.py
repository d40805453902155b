"""Benchmarks for algebranets (run as `python -m bench.<name>`)."""
