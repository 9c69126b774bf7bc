"""Structured pruning through torch-pruning's dependency graphs."""
