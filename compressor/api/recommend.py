"""``compress recommend SWEEP_DIR``: per profile, the smallest and the fastest point within a drop.

The choice is made in :mod:`compressor.sweep.recommend` from the sweep's ``sweep.json``.
"""

from compressor.sweep.recommend import RecommendConfig, RecommendResult, recommend

__all__ = ["RecommendConfig", "RecommendResult", "recommend"]
