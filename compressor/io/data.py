"""Data references: one loader interface for calibration, fine-tuning and evaluation.

Specs: ``fashion-mnist[:ROOT]``, ``digits``, ``cifar10:ROOT``, ``imagefolder:PATH``,
``tensors:FILE`` (.pt or .npz holding x and y), ``random[:C,H,W[:CLASSES]]``: the sources of
:data:`compressor.registry.DATA_SOURCES`, each a loader ``(arg, split) -> Data`` in this module.
Splits: ``train`` (the part used for fitting), ``val`` (a fixed held-out 10% of the original
training set) and ``test`` (the official test set where there is one).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from compressor import registry
from compressor.errors import InputError, UsageError, unknown_name

FASHION_MNIST_DIRS = (
    os.environ.get("COMPRESSOR_FASHION_MNIST", ""),
    "/usr/share/datasets/fashion-mnist",
)
FASHION_MEAN, FASHION_STD = [0.2860], [0.3530]
SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1
_SPLIT_SEED = 0


def dataset_size(dataset: Dataset) -> int:
    """The number of samples (every dataset here has a length; torch's ``Dataset`` type does not say so)."""
    return len(cast(Sized, dataset))


@dataclass(frozen=True)
class DataSpec:
    """A parsed data reference."""

    kind: str
    arg: str = ""

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        kind, _, arg = text.partition(":")
        if registry.data_source(kind).needs_arg and not arg:
            raise UsageError(f"data source '{kind}' needs a path", f"write {kind}:PATH")
        return cls(kind, arg)


@dataclass
class Data:
    """A dataset split with what a model needs to know about it."""

    dataset: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    mean: list[float] | None
    std: list[float] | None
    name: str

    def __len__(self) -> int:
        return dataset_size(self.dataset)

    def loader(
        self,
        batch_size: int = 256,
        shuffle: bool = False,
        seed: int = 0,
        limit: int | None = None,
        sampler=None,
    ) -> DataLoader:
        """A DataLoader over (at most ``limit``, chosen by ``seed``) samples."""
        if batch_size <= 0:
            raise UsageError(f"batch size must be positive, got {batch_size}")
        dataset = self.dataset
        if limit is not None and limit < dataset_size(dataset):
            idx = torch.randperm(dataset_size(dataset), generator=torch.Generator().manual_seed(seed))[:limit]
            dataset = Subset(dataset, idx.sort().values.tolist())
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            generator=gen,
            sampler=sampler,
            num_workers=0,
        )

    def take(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Exactly ``n`` samples (x, y), fixed for a seed; fewer available is an error."""
        if n > len(self):
            raise UsageError(
                f"asked for {n} samples but {self.name} has {len(self)}",
                "lower --calib-samples or use a larger split",
            )
        xs, ys = zip(*(batch for batch in self.loader(batch_size=n, limit=n, seed=seed)))
        return torch.cat(xs), torch.cat(ys)


def load_data(spec: str | DataSpec, split: str = "test") -> Data:
    """Load one split of a data reference."""
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS)
    spec = DataSpec.parse(spec) if isinstance(spec, str) else spec
    return registry.data_source(spec.kind).load()(spec.arg, split)


def batches(data: Data, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Iterate (x, y) batches in order."""
    yield from data.loader(batch_size=batch_size)


def _split_train(x: torch.Tensor, y: torch.Tensor, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Carve the fixed validation part out of a training set."""
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_val = int(len(x) * VAL_FRACTION)
    idx = perm[:n_val] if split == "val" else perm[n_val:]
    idx = idx.sort().values
    return x[idx], y[idx]


def _normalise(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x - m) / s


# --- Fashion-MNIST -------------------------------------------------------------------------

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def fashion_mnist(arg: str, split: str) -> Data:
    """Fashion-MNIST from the Debian package's folder or ``arg`` (a torchvision root)."""
    x, y = _fashion_arrays(arg, "test" if split == "test" else "train")
    if split != "test":
        x, y = _split_train(x, y, split)
    return Data(TensorDataset(x, y), (1, 1, 28, 28), 10, FASHION_MEAN, FASHION_STD, f"fashion-mnist/{split}")


@lru_cache(maxsize=4)
def _fashion_arrays(root: str, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = _find_fashion(root)
    images = _read_idx(_idx_file(folder, _FILES[part][0])).astype(np.float32) / 255.0
    labels = _read_idx(_idx_file(folder, _FILES[part][1])).astype(np.int64)
    x = _normalise(torch.from_numpy(images).unsqueeze(1), FASHION_MEAN, FASHION_STD)
    return x, torch.from_numpy(labels)


def _find_fashion(root: str) -> Path:
    candidates = [root, os.path.join(root, "FashionMNIST", "raw")] if root else []
    candidates += [d for d in FASHION_MNIST_DIRS if d]
    for folder in candidates:
        if folder and all(_find_idx(Path(folder), f) for f in _FILES["train"]):
            return Path(folder)
    if root and os.environ.get("COMPRESSOR_ALLOW_DOWNLOAD") == "1":
        from torchvision.datasets import FashionMNIST

        FashionMNIST(root, download=True)
        return Path(root, "FashionMNIST", "raw")
    raise InputError(
        f"Fashion-MNIST not found (looked in {', '.join(c for c in candidates if c)})",
        "install it: sudo apt-get install -y dataset-fashion-mnist; or download with "
        "COMPRESSOR_ALLOW_DOWNLOAD=1 and --data fashion-mnist:ROOT",
    )


def _idx_file(folder: Path, stem: str) -> Path:
    path = _find_idx(folder, stem)
    if path is None:
        raise InputError(f"{folder}: missing {stem}(.gz)")
    return path


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    except (OSError, ValueError, IndexError, EOFError) as exc:
        raise InputError(f"{path}: not a readable IDX file ({exc})") from None


# --- scikit-learn digits ---------------------------------------------------------------------


def digits(arg: str, split: str) -> Data:
    """scikit-learn's 8x8 digits upscaled to 28x28: 20% test, 10% of the rest held out."""
    x, y = _digits_arrays()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_test = len(x) // 5
    if split == "test":
        idx = perm[:n_test]
    else:
        rest = perm[n_test:]
        n_val = int(len(rest) * VAL_FRACTION)
        idx = rest[:n_val] if split == "val" else rest[n_val:]
    return Data(TensorDataset(x[idx], y[idx]), (1, 1, 28, 28), 10, [0.5], [0.5], f"digits/{split}")


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    return _normalise(images, [0.5], [0.5]), torch.from_numpy(bunch.target.astype(np.int64))


# --- torchvision-backed ----------------------------------------------------------------------


def cifar10(arg: str, split: str) -> Data:
    """CIFAR-10 under the folder ``arg`` (downloaded only with COMPRESSOR_ALLOW_DOWNLOAD=1)."""
    from torchvision import datasets, transforms

    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    download = os.environ.get("COMPRESSOR_ALLOW_DOWNLOAD") == "1"
    try:
        ds = datasets.CIFAR10(arg, train=split != "test", transform=tf, download=download)
    except RuntimeError as exc:
        raise InputError(
            f"CIFAR-10 not found under {arg} ({exc})", "download it with COMPRESSOR_ALLOW_DOWNLOAD=1 set"
        ) from None
    return Data(_subset_split(ds, split), (1, 3, 32, 32), 10, mean, std, f"cifar10/{split}")


def imagefolder(arg: str, split: str) -> Data:
    """A torchvision ImageFolder tree at ``arg`` (``arg/SPLIT`` when it has one), 224x224 crops."""
    from torchvision import datasets, transforms

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    tf = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    folder = Path(arg) / split if (Path(arg) / split).is_dir() else Path(arg)
    if not folder.is_dir():
        raise InputError(f"{arg}: no such folder", "imagefolder:PATH needs class sub-folders")
    try:
        ds = datasets.ImageFolder(str(folder), transform=tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise InputError(f"{folder}: not an image folder ({exc})") from None
    return Data(ds, (1, 3, 224, 224), len(ds.classes), mean, std, f"imagefolder/{split}")


def _subset_split(ds: Dataset, split: str) -> Dataset:
    if split == "test":
        return ds
    perm = torch.randperm(dataset_size(ds), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_val = int(dataset_size(ds) * VAL_FRACTION)
    idx = perm[:n_val] if split == "val" else perm[n_val:]
    return Subset(ds, idx.sort().values.tolist())


# --- tensors and random ----------------------------------------------------------------------


def tensors(arg: str, split: str) -> Data:
    """x and y from a .pt (weights only) or .npz file; every split is the whole file."""
    path = Path(arg)
    if not path.is_file():
        raise InputError(f"{path}: no such file", "tensors:FILE needs a .pt or .npz with x and y")
    try:
        if path.suffix == ".npz":
            with np.load(path) as npz:
                x, y = torch.from_numpy(npz["x"]), torch.from_numpy(npz["y"])
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            x, y = obj["x"], obj["y"]
    except (KeyError, TypeError, IndexError):
        raise InputError(f"{path}: needs two arrays named x and y") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is an input error
        raise InputError(f"{path}: not a readable tensor file ({exc})") from None
    if len(x) != len(y):
        raise InputError(f"{path}: x has {len(x)} samples but y has {len(y)}")
    x, y = x.float(), y.long()
    classes = int(y.max().item()) + 1 if len(y) else 0
    return Data(TensorDataset(x, y), (1, *x.shape[1:]), classes, None, None, f"tensors/{split}")


def random_data(arg: str, split: str) -> Data:
    """256 standard-normal inputs of ``C,H,W`` with random labels, fixed per split."""
    shape_text, _, classes_text = arg.partition(":")
    try:
        shape = tuple(int(v) for v in shape_text.split(",")) if shape_text else (1, 28, 28)
        classes = int(classes_text) if classes_text else 10
    except ValueError:
        raise UsageError(
            f"cannot read random data spec 'random:{arg}'",
            "write random:C,H,W:CLASSES, e.g. random:3,224,224:1000",
        ) from None
    gen = torch.Generator().manual_seed({"train": 1, "val": 2, "test": 3}[split])
    n = 256
    x = torch.randn((n, *shape), generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return Data(TensorDataset(x, y), (1, *shape), classes, None, None, f"random/{split}")
