"""The only code that touches LMDB and value files."""
