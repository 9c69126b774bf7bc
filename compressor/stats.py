"""Size and cost figures of a PyTorch model: params, non-zeros, sparsity, MACs, bytes.

MACs come from PyTorch's own ``FlopCounterMode`` (multiply-accumulates = FLOPs / 2) on one
forward pass at batch 1; they are a theoretical cost, never a measured speed.
"""

from __future__ import annotations

import contextlib
import io
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressor.errors import forward_failure

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def count_params(module: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters)."""
    total = nonzero = 0
    for p in module.parameters():
        total += p.numel()
        nonzero += int(torch.count_nonzero(p).item())
    return total, nonzero


def count_macs(module: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulate operations of one forward pass on ``example`` (in eval mode)."""
    was_training = module.training
    module.eval()
    try:
        return forward_macs(module, example)
    finally:
        module.train(was_training)


@torch.no_grad()
def forward_macs(forward: Callable[[torch.Tensor], Any], example: torch.Tensor) -> int:
    """Multiply-accumulate operations of one call of ``forward`` on ``example`` (a module already
    in the mode to count, or a loaded program that has no modes)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with counter, _frozen(forward):
            forward(example)
    except Exception as exc:  # noqa: BLE001 - any forward failure means the shape does not fit
        raise forward_failure(exc, tuple(example.shape)) from None
    return int(counter.get_total_flops() // 2)


@contextlib.contextmanager
def _frozen(forward: Callable[[torch.Tensor], Any]) -> Iterator[None]:
    """Parameters that need no gradient while MACs are counted (restored after).

    ``FlopCounterMode`` tracks modules by hooking the gradients of their inputs; a view of a
    parameter taken under ``no_grad`` (a class token expanded to the batch, as in PiT) needs a
    gradient yet has no gradient function, and that hook fails on it. With no parameter needing a
    gradient, no tensor does.
    """
    params = [p for p in forward.parameters() if p.requires_grad] if isinstance(forward, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def compressed_bytes(data: bytes) -> int:
    """Size after zlib (level 6): what masked zeros save in a zipped download."""
    return len(zlib.compress(data, 6))


EXACT_LIMIT = 512 * 2**20  # above this many bytes, compressed_file_bytes estimates (zlib runs ~15 MB/s here)
SAMPLES = 64  # evenly spaced blocks of ``chunk`` bytes compressed for the estimate


def compressed_file_bytes(files, chunk: int = 1 << 22, exact_limit: int | None = None) -> int:
    """:func:`compressed_bytes` of the files' bytes laid end to end, read in chunks.

    Up to ``exact_limit`` (default :data:`EXACT_LIMIT`) bytes it is exact. Above, it compresses
    :data:`SAMPLES` evenly spaced blocks and scales their ratio to the whole: deflate looks back
    only 32 KiB, so a block compresses as it would inside the file, and a 2.5 GB export takes
    seconds instead of minutes (callers say it is an estimate, see :func:`compressed_is_estimate`).
    """
    files = [Path(f) for f in files]
    sizes = [f.stat().st_size for f in files]
    total = sum(sizes)
    if not compressed_is_estimate(total, exact_limit):
        z = zlib.compressobj(6)
        out = 0
        for file in files:
            with open(file, "rb") as fh:
                while block := fh.read(chunk):
                    out += len(z.compress(block))
        return out + len(z.flush())
    raw = packed = 0
    for k in range(SAMPLES):
        offset = (total - chunk) * k // (SAMPLES - 1)
        for file, size in zip(files, sizes):  # the file that holds this offset
            if offset < size:
                with open(file, "rb") as fh:
                    fh.seek(offset)
                    block = fh.read(chunk)
                break
            offset -= size
        raw, packed = raw + len(block), packed + len(zlib.compress(block, 6))
    return round(total * packed / raw)


def compressed_is_estimate(total_bytes: int, exact_limit: int | None = None) -> bool:
    """Whether :func:`compressed_file_bytes` estimates for files of this many bytes."""
    return total_bytes > (EXACT_LIMIT if exact_limit is None else exact_limit)


def files_figures(files) -> dict[str, Any]:
    """size_bytes, compressed_bytes and compressed_estimated of ``files`` taken together (a graph
    and its external data)."""
    size = sum(Path(f).stat().st_size for f in files)
    return {
        "size_bytes": size,
        "compressed_bytes": compressed_file_bytes(files),
        "compressed_estimated": compressed_is_estimate(size),
    }


MASK_NOTE = (
    "masked zeros shrink the compressed file but do not speed up dense runtimes "
    "(ONNX Runtime on CPU runs them as dense weights)"
)
ESTIMATE_NOTE = (
    f"compressed bytes estimated from {SAMPLES} evenly spaced blocks (files over "
    f"{EXACT_LIMIT // 2**20} MiB; zlib over all of it takes minutes)"
)


def serialized_bytes(module: nn.Module) -> bytes:
    """The state_dict as ``torch.save`` writes it."""
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.getvalue()


def layer_table(module: nn.Module) -> list[dict[str, Any]]:
    """One row per conv/linear layer: name, type, weight shape, params, sparsity."""
    rows = []
    for name, sub in module.named_modules():
        if not isinstance(sub, PRUNABLE):
            continue
        w = sub.weight
        rows.append(
            {
                "name": name,
                "type": type(sub).__name__,
                "shape": list(w.shape),
                "params": sum(p.numel() for p in sub.parameters(recurse=False)),
                "sparsity": 1.0 - int(torch.count_nonzero(w).item()) / max(w.numel(), 1),
            }
        )
    return rows


def model_figures(
    module: nn.Module,
    example: torch.Tensor,
    file: str | Path | None = None,
    compressed: bool = True,
    sizes: bool = True,
) -> dict[str, Any]:
    """params, nonzero_params, sparsity (over all params), macs, size_bytes, compressed_bytes.

    Sizes are those of ``file`` when given, else of the serialized state_dict. ``compressed=False``
    skips zlib, which costs seconds per 100 MB of dense weights and tells nothing new when a
    method creates no zeros. ``sizes=False`` leaves sizes out (the caller reads its own file).
    """
    params, nonzero = count_params(module)
    figures = {
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": 1.0 - nonzero / max(params, 1),
        "macs": count_macs(module, example),
    }
    if sizes:
        figures.update(file_sizes(file, module, compressed))
    return figures


def file_sizes(
    file: str | Path | None, module: nn.Module | None = None, compressed: bool = True
) -> dict[str, int]:
    """``size_bytes`` (and ``compressed_bytes``, estimated for files over :data:`EXACT_LIMIT`) of
    ``file``, or of ``module``'s state_dict."""
    if file and Path(file).is_file():
        sizes = {"size_bytes": Path(file).stat().st_size}
        if compressed:
            sizes["compressed_bytes"] = compressed_file_bytes([file])
        return sizes
    if module is not None:
        data = serialized_bytes(module)
    else:
        return {}
    sizes = {"size_bytes": len(data)}
    if compressed:
        sizes["compressed_bytes"] = compressed_bytes(data)
    return sizes
