"""Scripts that run a peer tool in its own environment (never imported by the package or tests)."""
