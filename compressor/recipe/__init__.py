"""The recipe engine: a YAML recipe parsed into typed steps (:mod:`.parse`) and run in order (:mod:`.run`).

Below :mod:`compressor.api`: what each step does comes from the API as a table of step runners.
"""
