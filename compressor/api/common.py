"""Shared pieces of the API: how a command names its input model, and how its flags are read."""

from compressor.io.refs import parse_kwargs
from compressor.io.spec import ModelSpec, parse_shape

__all__ = ["ModelSpec", "parse_shape", "parse_kwargs"]
