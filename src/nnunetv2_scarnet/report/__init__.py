"""`scarnet report`: the clinical job in one command (see pipeline.py)."""
