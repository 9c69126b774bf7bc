"""The model handle: an ``nn.Module`` plus where it came from and what was done to it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compressor import __version__


@dataclass
class ModelHandle:
    """A loaded model and everything the artifact format keeps beside its weights.

    Attributes:
        module: the model, in eval mode.
        ref: model reference that rebuilds the original architecture (None for a bare pickle).
        arch_kwargs: keyword arguments for ``ref``.
        input_shape: example input shape with batch 1, e.g. (1, 1, 28, 28).
        mean: per-channel input normalisation mean the model expects (None: unknown).
        std: per-channel input normalisation std.
        masks: parameter name -> bool mask of kept weights (masked methods).
        history: every step applied, oldest first.
        metrics: the latest measured figures (accuracy, params, ...).
        source: the path or reference it was loaded from.
        source_kind: artifact, state_dict, pickle or reference.
        verified: whether the file carried an integrity digest, checked when it was loaded.
    """

    module: nn.Module
    ref: str | None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = (1, 3, 224, 224)
    mean: list[float] | None = None
    std: list[float] | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    source_kind: str = "reference"
    verified: bool = False

    def example_input(self, batch: int = 1, seed: int = 0) -> torch.Tensor:
        """A deterministic random input of the model's input shape."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randn((batch, *self.input_shape[1:]), generator=gen)

    def record(
        self,
        command: str,
        method: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Append a step to the history and merge its metrics into the latest metrics."""
        self.history.append(
            {
                "command": command,
                "method": method or "",
                "params": _plain(params or {}),
                "metrics": _plain(metrics or {}),
                "versions": library_versions(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        self.metrics.update(_plain(metrics or {}))


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an artifact."""
    import torchvision

    return {
        "compressor": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
    }


def _plain(value: Any) -> Any:
    """Reduce to the plain containers ``torch.load(weights_only=True)`` accepts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    for kind in (bool, int, float, str):  # exact types: str/int subclasses are not weights_only-safe
        if isinstance(value, kind):
            return kind(value)
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)
