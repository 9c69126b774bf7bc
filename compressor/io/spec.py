"""How a command names its input model: a file or reference, plus what rebuilds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from compressor import registry
from compressor.errors import InputError, UsageError


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from: a file or reference, plus what is needed to rebuild it.

    Attributes:
        path: artifact / state_dict / pickle / .onnx path, or a model reference.
        arch: model reference for a plain state_dict (``torchvision:resnet18``).
        arch_kwargs: keyword arguments for ``arch``.
        trust_pickle: allow loading a full pickled module (runs code from the file).
        input_shape: example input shape with batch, overriding the model's own.
    """

    path: str
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    trust_pickle: bool = False
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.input_shape is not None and (len(self.input_shape) < 2 or min(self.input_shape) <= 0):
            raise UsageError(
                f"input shape {self.input_shape} is not valid",
                "write it with the batch first, e.g. --input-shape 1,3,224,224",
            )

    @property
    def format(self) -> registry.FormatInfo | None:
        """The export format of the file (by its suffix); None for a PyTorch model or reference."""
        return registry.format_of(self.path)

    @property
    def is_onnx(self) -> bool:
        """True for an ``.onnx`` file."""
        return self.format is registry.FORMATS.get("onnx")

    def reader(self) -> ModuleType:
        """The module that reads this exported file (``describe``, ``predictor``); a format whose
        files hold a program (TorchScript) is read only with ``trust_pickle``."""
        fmt = self.format
        if fmt is None:
            raise UsageError(f"{self.path} is not an exported file")
        if fmt.runs_code and not self.trust_pickle:
            raise InputError(
                f"{self.path} is a {fmt.title} program: reading it runs code from the file",
                "pass --trust-pickle only if you trust its source",
            )
        return fmt.load()

    def load(self):
        """Load the PyTorch model (a :class:`compressor.model.ModelHandle`)."""
        from compressor.io.artifact import load_model

        return load_model(self.path, self.arch, self.arch_kwargs, self.trust_pickle, self.input_shape)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``1,3,224,224`` -> (1, 3, 224, 224)."""
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"cannot read input shape '{text}'", "write e.g. 1,3,224,224") from None
