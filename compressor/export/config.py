"""The export configuration: every ``compress export`` flag, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from compressor import registry
from compressor.errors import UsageError, unknown_name

QUANTIZE = ("int8",)
QUANT_MODES = ("auto", "dynamic", "static")
EXPORTERS = ("auto", "dynamo", "torchscript")
MIN_OPSET = 9
DEFAULT_OPSET = 18
PARITY_BATCHES = (1, 7)


@dataclass(frozen=True)
class ExportConfig:
    """How to export and verify a model.

    Attributes:
        output: the file to write (.onnx; for other formats their suffix, see ``compress list``).
        format: a registry export format: onnx, torchscript, exported-program, ...
        opset: ONNX opset version (default 18).
        batch: "dynamic" (a symbolic batch axis) or a fixed batch size as text or int.
        data: data spec whose real samples join the random ones in the parity check, calibrate
            static int8 and measure the accuracy change.
        rtol: relative tolerance of the parity check (|ort - torch| <= atol + rtol * |torch|).
        atol: absolute tolerance of the parity check.
        verify: run the parity check (exit 1 beyond tolerances).
        simplify: simplify the graph with onnxslim when it keeps parity.
        quantize: None or "int8".
        quant_mode: auto (static QDQ for conv-heavy models with --data, else dynamic), dynamic, static.
        fp16: convert weights and compute to float16 (inputs and outputs stay float32).
        sparse_storage: store mostly-zero weights as ONNX sparse initializers when smaller.
        exporter: auto (dynamo, falling back to TorchScript), dynamo or torchscript.
        samples: random (and, with data, real) samples compared in the parity check.
        calib_samples: samples for static int8 calibration.
        eval_samples: test samples for the accuracy change of int8/fp16 (None: the whole split).
        seed: seed of random inputs and sample choice.
    """

    output: str
    format: str = "onnx"
    opset: int = DEFAULT_OPSET
    batch: str | int = "dynamic"
    data: str | None = None
    rtol: float = 1e-3
    atol: float = 1e-5
    verify: bool = True
    simplify: bool = True
    quantize: str | None = None
    quant_mode: str = "auto"
    fp16: bool = False
    sparse_storage: bool = False
    exporter: str = "auto"
    samples: int = 16
    calib_samples: int = 256
    eval_samples: int | None = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_names()
        self._check_numbers()
        self._check_combinations()

    def _check_names(self) -> None:
        registry.export_format(self.format)  # unknown names list the valid ones
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise unknown_name("quantization", self.quantize, QUANTIZE)
        if self.quant_mode not in QUANT_MODES:
            raise unknown_name("quantization mode", self.quant_mode, QUANT_MODES)
        if self.exporter not in EXPORTERS:
            raise unknown_name("exporter", self.exporter, EXPORTERS)
        if self.batch != "dynamic" and self.fixed_batch is None:
            raise UsageError(
                f"--batch must be 'dynamic' or a positive integer, got '{self.batch}'",
                "e.g. --batch dynamic or --batch 1",
            )

    def _check_numbers(self) -> None:
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= self.opset <= newest:
            raise UsageError(
                f"opset {self.opset} is not supported (onnx {onnx.__version__} knows {MIN_OPSET}..{newest})",
                f"use e.g. --opset {DEFAULT_OPSET}",
            )
        if self.rtol < 0 or self.atol < 0:
            raise UsageError(f"tolerances must be >= 0, got rtol={self.rtol} atol={self.atol}")
        for name in ("samples", "calib_samples"):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if self.eval_samples is not None and self.eval_samples <= 0:
            raise UsageError(f"--eval-samples must be > 0, got {self.eval_samples}")

    def _check_combinations(self) -> None:
        if self.quantize and self.fp16:
            raise UsageError("--quantize int8 and --fp16 exclude each other", "pick one")
        onnx_only = [
            flag
            for flag, on in (
                ("--quantize", self.quantize),
                ("--fp16", self.fp16),
                ("--sparse-storage", self.sparse_storage),
            )
            if on
        ]
        if onnx_only and not registry.export_format(self.format).onnx_flags:
            takes = [f.name for f in registry.FORMATS.values() if f.onnx_flags]
            raise UsageError(
                f"{', '.join(onnx_only)} only apply to --format {' or '.join(takes)}",
                "drop them or export to ONNX",
            )
        if self.quant_mode == "static" and not self.data:
            raise UsageError(
                "static int8 quantization needs calibration data",
                "add --data SPEC, e.g. --data fashion-mnist",
            )

    @property
    def fixed_batch(self) -> int | None:
        """The fixed batch size, or None for a dynamic batch axis."""
        if self.batch == "dynamic":
            return None
        try:
            value = int(self.batch)
        except (TypeError, ValueError):
            return None
        return value if value > 0 else None

    @property
    def dynamic(self) -> bool:
        """True when the batch axis is symbolic."""
        return self.batch == "dynamic"
