"""compressor: prune, slim, distill, export and bench PyTorch models.

The package root stays import-light (no torch) so that ``compress --help`` is fast.
Library entry points live in :mod:`compressor.api`.
"""

__version__ = "0.1.0"
