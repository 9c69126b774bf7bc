"""Structured pruning to a budget (a measured speed-up or latency, MACs, parameters or file bytes)
instead of a ratio: a cost model, an allocation of per-group widths, and a measured landing loop."""
