"""SHA-256 digests of what compressor writes, checked on every load.

A flipped byte inside tensor data leaves a file that still parses: ``torch.load`` and
``onnx.load`` accept it and the model runs with a corrupted weight. Artifacts and ONNX exports
therefore carry a digest of their content, written last and checked first:

* an artifact (``.pt``) holds ``integrity: {"algorithm": "sha256", "digest": HEX}``, the digest
  of every other key: its plain values as canonical JSON, then each tensor's dtype, shape and
  bytes, in sorted key order;
* an ONNX file holds the metadata property ``compressor.sha256``, the digest of its graph (nodes,
  inputs, outputs, value infos, opsets, functions, the other metadata properties) and of every
  initializer's bytes, external data included.

Files without a digest (written before digests existed, or by another tool) load as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from compressor.errors import InputError

ALGORITHM = "sha256"
ARTIFACT_KEY = "integrity"
ONNX_KEY = "compressor.sha256"
VERIFIED = "sha256 verified"  # what `compress info` says of a file whose digest matched
_CHUNK = 1 << 24


def corrupt(path: str | Path) -> InputError:
    """The error for a file whose content does not match its digest (exit 2)."""
    return InputError(
        f"{path} is corrupt (checksum mismatch): its content does not match the "
        "SHA-256 digest written with it",
        "re-create it, or restore it from a good copy",
    )


# --- artifacts ---------------------------------------------------------------------------------


def payload_digest(payload: dict[str, Any]) -> str:
    """The SHA-256 of an artifact dict, its ``integrity`` entry left out."""
    tensors: list[Any] = []
    skeleton = _skeleton({k: v for k, v in payload.items() if k != ARTIFACT_KEY}, tensors)
    digest = hashlib.sha256(json.dumps(skeleton, sort_keys=True, default=repr).encode())
    for tensor in tensors:
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def seal(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its digest added (the last step before saving)."""
    return {**payload, ARTIFACT_KEY: {"algorithm": ALGORITHM, "digest": payload_digest(payload)}}


def checking(payload: dict[str, Any], path: str | Path) -> contextlib.AbstractContextManager[None]:
    """Check ``payload``'s digest while a block runs (see :func:`_checked_while`)."""
    entry = payload.get(ARTIFACT_KEY)
    if entry is not None and (not isinstance(entry, dict) or entry.get("algorithm") != ALGORITHM):
        raise InputError(
            f"{path}: unknown integrity entry {entry!r}", "re-create the file with this compressor"
        )
    expected = None if entry is None else str(entry.get("digest"))
    return _checked_while(expected, lambda: payload_digest(payload), path)


@contextlib.contextmanager
def _checked_while(expected: str | None, compute: Callable[[], str], path: str | Path) -> Iterator[None]:
    """Compute a digest in a thread while the block runs (the block may read what is hashed, not
    change it); a mismatch is raised when the block ends, in place of any error the block raised.
    Nothing is checked when ``expected`` is None (a file written without a digest)."""
    if expected is None:
        yield
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(compute)
        try:
            yield
        finally:
            if digest.result() != expected:
                raise corrupt(path)  # noqa: B012 - a corrupt file explains whatever the block raised


def _skeleton(obj: Any, tensors: list[Any]) -> Any:
    """``obj`` with every tensor replaced by its place in ``tensors``, dtype and shape; dicts sorted."""
    import torch

    if isinstance(obj, torch.Tensor):
        tensors.append(obj)
        return {"tensor": len(tensors) - 1, "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, dict):
        return {str(k): _skeleton(obj[k], tensors) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [_skeleton(v, tensors) for v in obj]
    return obj


def _tensor_bytes(tensor: Any) -> memoryview:
    """The raw bytes of a tensor, without a copy when it is already contiguous on the CPU."""
    import torch

    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return memoryview(flat.view(torch.uint8).numpy())


# --- ONNX --------------------------------------------------------------------------------------


def onnx_digest(model, folder: str | Path | None = None) -> str:
    """The SHA-256 of an ONNX model, its own digest property left out.

    ``model`` may be loaded without its external data: those tensors are read from ``folder``.
    """
    digest = hashlib.sha256()
    for part in _onnx_parts(model, Path(folder or ".")):
        digest.update(part)
    return digest.hexdigest()


def stamp_onnx(model, folder: str | Path | None = None) -> None:
    """Write (or replace) the digest property of ``model``: the last change before it is saved."""
    value = onnx_digest(model, folder)
    _drop_digest(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_KEY, value


def checking_onnx(model, path: str | Path) -> contextlib.AbstractContextManager[None]:
    """Check the digest of ``model``, loaded from ``path``, while a block runs."""
    stored = [p.value for p in model.metadata_props if p.key == ONNX_KEY]
    expected = stored[-1] if stored else None
    return _checked_while(expected, lambda: onnx_digest(model, Path(path).parent), path)


def _drop_digest(model) -> None:
    keep = [p for p in model.metadata_props if p.key != ONNX_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)


def _onnx_parts(model, folder: Path) -> Iterator[bytes]:
    """The byte strings the ONNX digest covers, in a fixed order."""
    from onnx.external_data_helper import uses_external_data

    graph = model.graph
    yield f"ir{model.ir_version}".encode()
    props = sorted((p.key, p.value) for p in model.metadata_props if p.key != ONNX_KEY)
    yield json.dumps(props).encode()
    for group in (
        model.opset_import,
        model.functions,
        graph.node,
        graph.input,
        graph.output,
        graph.value_info,
        graph.sparse_initializer,
    ):
        for item in group:
            yield item.SerializeToString(deterministic=True)
    for init in graph.initializer:
        yield json.dumps([init.name, init.data_type, list(init.dims)]).encode()
        if uses_external_data(init):
            yield from _external_bytes(init, folder)
        elif init.raw_data:  # the usual case: hashed as it is, without serialising a copy
            yield init.raw_data
        else:
            yield init.SerializeToString(deterministic=True)


def _external_bytes(init, folder: Path) -> Iterator[bytes]:
    from onnx.external_data_helper import ExternalDataInfo

    info = ExternalDataInfo(init)
    file = folder / info.location
    try:
        with open(file, "rb") as handle:
            handle.seek(int(info.offset or 0))
            left = int(info.length) if info.length else None
            while left is None or left > 0:
                block = handle.read(_CHUNK if left is None else min(_CHUNK, left))
                if not block:
                    break
                if left is not None:
                    left -= len(block)
                yield block
    except OSError as exc:
        raise InputError(
            f"{file}: the external data of the ONNX graph cannot be read ({exc.strerror})",
            "keep the .onnx file and its .data file together",
        ) from None
