"""Benchmarks that print a table (`python -m bench kv`)."""
