"""Benchmarking: profiles (named presets), runner, statistics, gates."""
