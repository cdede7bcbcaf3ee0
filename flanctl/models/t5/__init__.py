"""T5 v1.1 family (in progress)."""
