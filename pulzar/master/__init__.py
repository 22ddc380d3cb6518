"""The master: key index, node registry, placement, and the public API (app.py)."""
