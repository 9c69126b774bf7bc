"""Sweep helpers: Pareto frontiers, point tables and plots (pure Python + matplotlib)."""
