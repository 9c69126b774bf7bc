"""The artifact format and every way a PyTorch model file is loaded.

An artifact is a ``torch.save``-d dict of tensors and plain containers only, so it loads with
``torch.load(weights_only=True)``: no pickle, no code runs on load. Keys (format version 1):

* ``format`` / ``format_version``: ``"compressor.artifact"`` / 1
* ``arch``: ``{"ref", "kwargs"}`` that rebuild the original architecture
* ``structure``: per-module manifest of simple attributes (channel counts, heads, ...); replayed
  on the fresh model together with the saved tensor shapes, it rebuilds a structurally pruned
  architecture without pickle
* ``state_dict``, ``masks`` (parameter name -> bool tensor of kept weights)
* ``sparse`` (optional): masked tensors stored compactly as kept values + bit-packed mask
  (:mod:`compressor.io.packing`); they are left out of ``state_dict`` and ``masks`` and restored on load
* ``input``: ``{"shape", "mean", "std"}``; ``history``: list of steps; ``metrics``: latest figures
* ``integrity``: ``{"algorithm": "sha256", "digest"}`` over every other key
  (:mod:`compressor.io.integrity`), checked on load; artifacts without it load unchecked
"""

from __future__ import annotations

import enum
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressor import registry
from compressor.errors import InputError, UnsupportedError, few, first_line
from compressor.io import integrity, packing, refs, zoo
from compressor.io.atomic import atomic_write
from compressor.model import ModelHandle

FORMAT = "compressor.artifact"
FORMAT_VERSION = 1
_SIMPLE = (int, float, bool, str)
_SKIP_ATTRS = {"training"}


def save_artifact(handle: ModelHandle, path: str | Path) -> Path:
    """Write ``handle`` as a pickle-free artifact, atomically."""
    if not handle.ref:
        raise UnsupportedError(
            f"cannot save '{handle.source}' as an artifact: its architecture has no reference",
            "load it with --arch REF so the artifact can rebuild it without pickle",
        )
    payload = integrity.seal(to_payload(handle))
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def to_payload(handle: ModelHandle) -> dict[str, Any]:
    """The artifact dict for ``handle`` (tensors and plain containers only)."""
    module = handle.module
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    masks = {k: v.detach().to(torch.bool).clone() for k, v in handle.masks.items()}
    packed = _pack_masked(state, masks)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": {"ref": handle.ref, "kwargs": dict(handle.arch_kwargs)},
        "structure": structure_manifest(module),
        "state_dict": state,
        "masks": masks,
        "sparse": packed,
        "input": {"shape": list(handle.input_shape), "mean": handle.mean, "std": handle.std},
        "history": list(handle.history),
        "metrics": dict(handle.metrics),
    }


def _pack_masked(state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Move masked tensors that pack smaller out of ``state``/``masks`` into sparse entries."""
    packed = {}
    for name in [n for n, m in masks.items() if n in state and m.shape == state[n].shape]:
        if packing.worth_packing(masks[name], state[name].element_size()):
            packed[name] = packing.pack(state.pop(name), masks.pop(name))
    return packed


def _unpack_masked(payload: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The full state_dict and masks of a payload, sparse entries restored."""
    state, masks = dict(payload["state_dict"]), dict(payload.get("masks", {}))
    for name, entry in payload.get("sparse", {}).items():
        state[name], masks[name] = packing.unpack(entry)
    return state, masks


def structure_manifest(module: nn.Module) -> dict[str, dict[str, Any]]:
    """Simple attributes of every submodule: what a pruner changes besides tensor shapes."""
    manifest: dict[str, dict[str, Any]] = {}
    for name, sub in module.named_modules():
        attrs = {
            k: _simple(v)
            for k, v in vars(sub).items()
            if k not in _SKIP_ATTRS and not k.startswith("__") and _is_simple(v)
        }
        if attrs:
            manifest[name] = attrs
    return manifest


def _is_simple(value: Any) -> bool:
    """A plain number, string or flag (or a list of them). Enum members are not: a ``str`` enum
    such as timm's ``Format.NHWC`` would come back as the string ``"Format.NHWC"``, and no pruner
    changes one, so the fresh build's value stands."""
    if isinstance(value, enum.Enum):
        return False
    if isinstance(value, _SIMPLE):
        return True
    return isinstance(value, (tuple, list)) and all(
        isinstance(v, _SIMPLE) and not isinstance(v, enum.Enum) for v in value
    )


def _simple(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_simple(v) for v in value]
    return next(kind(value) for kind in (bool, int, float, str) if isinstance(value, kind))


def load_model(
    path: str | Path,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust_pickle: bool = False,
    input_shape: tuple[int, ...] | None = None,
) -> ModelHandle:
    """Load any PyTorch model file: artifact, state_dict (+ ``arch``) or trusted pickle.

    A model reference (``sample:simple_cnn``) in place of a path builds a fresh model.
    """
    text = str(path)
    if not Path(text).exists() and _looks_like_ref(text):
        handle = _from_module(refs.build(text, arch_kwargs), text, arch_kwargs, text, "reference")
        return _with_shape(handle, input_shape)
    file = _check_file(text)
    exported = registry.format_of(str(file))
    if exported is not None:
        raise InputError(
            f"{file} is in the {exported.title} format; this command needs a PyTorch model (.pt)",
            "pass the .pt artifact it was exported from",
        )
    if file.suffix == ".safetensors":
        obj: Any = _read_safetensors(file)
    else:
        obj = _torch_load(file, trust_pickle)
    return _with_shape(_interpret(obj, file, arch, arch_kwargs), input_shape)


def _looks_like_ref(text: str) -> bool:
    """A registry scheme (``sample:``...) or, without a folder in it, ``module:factory`` user code."""
    scheme = text.partition(":")[0]
    named = scheme in registry.MODEL_SOURCES and scheme != registry.USER_CODE
    return ":" in text and (named or "/" not in text)


def _with_shape(handle: ModelHandle, shape: tuple[int, ...] | None) -> ModelHandle:
    if shape:
        handle.input_shape = tuple(shape)
    return handle


def _check_file(text: str) -> Path:
    file = Path(text)
    if not file.exists():
        near = zoo.closest_models(text) if not file.suffix and "/" not in text else []
        if near:
            raise InputError(
                f"{file}: no such file", f"to build a model, name it with its zoo: {' or '.join(near)}"
            )
        raise InputError(
            f"{file}: no such file",
            "check the path, or name a model reference such as sample:simple_cnn or torchvision:resnet18",
        )
    if file.is_dir():
        raise InputError(f"{file} is a folder, not a model file")
    if file.stat().st_size == 0:
        raise InputError(f"{file} is empty (0 bytes)", "re-create or re-download it")
    return file


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{file}: not a readable safetensors file ({first_line(exc, 160)})") from None


def _torch_load(file: Path, trust_pickle: bool) -> Any:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc) and "Unsupported global" not in str(exc):
            raise InputError(f"{file}: not a readable PyTorch checkpoint ({first_line(exc, 160)})") from None
        if not trust_pickle:
            raise InputError(
                f"{file} holds pickled Python objects (e.g. a whole nn.Module); unpickling runs "
                "arbitrary code from the file",
                "pass --trust-pickle only if you trust its source, or save a state_dict and use --arch REF",
            ) from None
    # random bytes can also trip the weights-only unpickler's own bookkeeping (IndexError, TypeError,
    # AttributeError, UnicodeDecodeError, ...): any failure to read is the file's fault, not ours
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        zipfile.BadZipFile,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        MemoryError,
        OverflowError,
    ) as exc:
        raise InputError(
            f"{file}: not a readable PyTorch checkpoint, truncated or corrupt ({first_line(exc, 160)})"
        ) from None
    try:
        return torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - user's pickle may raise anything
        raise InputError(f"{file}: the trusted pickle failed to load ({first_line(exc, 160)})") from None


def _interpret(obj: Any, file: Path, arch: str | None, kwargs: dict[str, Any] | None) -> ModelHandle:
    if isinstance(obj, nn.Module):
        return _from_module(obj.eval(), arch, kwargs, str(file), "pickle")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        _check_version(obj, str(file))  # a newer format may seal its content differently
        with integrity.checking(obj, file):  # hashes while the model is built
            handle = from_payload(obj, str(file))
        handle.verified = integrity.ARTIFACT_KEY in obj
        return handle
    state = _find_state_dict(obj)
    if state is None:
        raise InputError(
            f"{file}: not a model (found {type(obj).__name__} without tensors)",
            "pass a compressor artifact, a state_dict with --arch, or an .onnx file",
        )
    if not arch:
        raise InputError(
            f"{file} is a plain state_dict without its architecture",
            "pass --arch REF, e.g. --arch sample:simple_cnn or torchvision:resnet18",
        )
    module = refs.build(arch, kwargs)
    _load_state(module, state, file)
    return _from_module(module, arch, kwargs, str(file), "state_dict")


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if not isinstance(obj, dict):
        return None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        return None
    if all(k.startswith("module.") for k in tensors):  # saved from DataParallel / DDP
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = (
        ([f"missing {few(missing)}"] if missing else [])
        + ([f"unexpected {few(unexpected)}"] if unexpected else [])
        + ([f"shape {few(wrong)}"] if wrong else [])
    )
    if problems:
        raise InputError(
            f"{file} does not match the architecture: {'; '.join(problems)}",
            "check --arch and --arch-kwargs (e.g. num_classes)",
        )
    module.load_state_dict(state, strict=True)


def _from_module(
    module: nn.Module, ref: str | None, kwargs: dict[str, Any] | None, source: str, kind: str
) -> ModelHandle:
    return ModelHandle(
        module=module.eval(),
        ref=ref,
        arch_kwargs=dict(kwargs or {}),
        input_shape=refs.default_input_shape(ref, module),
        source=source,
        source_kind=kind,
    )


def from_payload(payload: dict[str, Any], source: str = "") -> ModelHandle:
    """Rebuild a model from an artifact dict: fresh architecture, manifest, shapes, weights."""
    _check_version(payload, source)
    try:
        arch = payload["arch"]
        module = refs.build(arch["ref"], arch.get("kwargs"))
        state, masks = _unpack_masked(payload)
        apply_structure(module, payload.get("structure", {}), state)
        module.load_state_dict(_with_metadata(state, module), strict=True)
    except (KeyError, RuntimeError, AttributeError, TypeError, ValueError) as exc:
        raise InputError(
            f"{source}: artifact is damaged or does not match its architecture ({first_line(exc, 160)})"
        ) from None
    meta = payload.get("input", {})
    return ModelHandle(
        module=module.eval(),
        ref=arch["ref"],
        arch_kwargs=dict(arch.get("kwargs") or {}),
        input_shape=tuple(meta.get("shape") or refs.default_input_shape(arch["ref"], module)),
        mean=meta.get("mean"),
        std=meta.get("std"),
        masks=masks,
        history=list(payload.get("history", [])),
        metrics=dict(payload.get("metrics", {})),
        source=source,
        source_kind="artifact",
    )


def _check_version(payload: dict[str, Any], source: str) -> None:
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(
            f"{source}: artifact format version {version} is not supported "
            f"(this compressor reads {FORMAT_VERSION})",
            "upgrade compressor",
        )


def _with_metadata(state: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """The saved tensors with the fresh module's per-module state_dict versions (``_metadata``).

    Saving drops them; some modules (torchvision MNASNet) refuse to load without a version.
    """
    from collections import OrderedDict

    full = OrderedDict(state)
    full._metadata = getattr(module.state_dict(), "_metadata", None)  # type: ignore[attr-defined]
    return full


def apply_structure(
    module: nn.Module, manifest: dict[str, dict[str, Any]], state: dict[str, torch.Tensor]
) -> None:
    """Replay attribute changes and resize parameters/buffers to the saved shapes."""
    modules = dict(module.named_modules())
    for name, attrs in manifest.items():
        sub = modules.get(name)
        if sub is None:
            continue
        for key, value in attrs.items():
            current = getattr(sub, key, None)
            setattr(sub, key, tuple(value) if isinstance(current, tuple) else value)
    for key, tensor in state.items():
        owner_name, _, attr = key.rpartition(".")
        owner = modules.get(owner_name)
        if owner is None:
            continue
        _resize(owner, attr, tensor)


def _resize(owner: nn.Module, attr: str, tensor: torch.Tensor) -> None:
    if attr in owner._parameters:
        current = owner._parameters[attr]
        if current is None or current.shape != tensor.shape:
            grad = True if current is None else current.requires_grad
            owner._parameters[attr] = nn.Parameter(torch.empty_like(tensor), requires_grad=grad)
    elif attr in owner._buffers:
        buffer = owner._buffers[attr]
        if buffer is None or buffer.shape != tensor.shape:
            owner._buffers[attr] = torch.empty_like(tensor)
