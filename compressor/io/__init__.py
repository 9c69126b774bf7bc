"""Reading and writing models and data: artifacts, model references, data specs."""
