"""The benchmark suite: one study per script, run through ``python -m benchmarks``.

``benchmarks/studies.py`` names every study and its configurations (the script's arguments and the
result file they write); ``benchmarks/README.md`` is the index of the figures.
"""
