"""Benchmarks for facturflow (issue 5): `python -m benchmarks.run`; see benchmarks/README.md."""
