"""Masked unstructured pruning: masks stay enforced in every later fine-tune."""
