"""Benchmarks side by side with a reference in the same run: `python -m bench all|kv|scale|jobs`.

See docs/performance.md for the latest table and how to reproduce it.
"""
