"""Pruning methods. ``structured/`` removes channels (the only place importing torch_pruning);
``unstructured/`` zeroes weights under masks. Each method is one module listed in the registry."""
