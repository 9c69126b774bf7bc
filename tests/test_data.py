"""Data references: real datasets load with the right shapes; bad specs say what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressor.errors import InputError, UsageError
from compressor.io import data as data_mod
from compressor.io.data import load_data
from tests.conftest import needs_fashion


@needs_fashion
def test_fashion_mnist_splits_are_disjoint_and_normalised():
    train, val, test = (load_data("fashion-mnist", s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (54000, 6000, 10000)
    x, y = test.take(512)
    assert x.shape == (512, 1, 28, 28) and y.max() <= 9
    assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2
    xt, _ = train.take(200, seed=1)
    xv, _ = val.take(200, seed=1)
    flat_t = {tuple(r.tolist()) for r in xt.flatten(1)[:, ::37]}
    assert not any(tuple(r.tolist()) in flat_t for r in xv.flatten(1)[:, ::37])


def test_digits_shapes():
    d = load_data("digits", "test")
    x, y = d.take(32)
    assert x.shape == (32, 1, 28, 28) and d.num_classes == 10 and 300 < len(d) < 400


def test_take_is_deterministic_for_a_seed():
    d = load_data("digits", "train")
    assert torch.equal(d.take(16, seed=3)[0], d.take(16, seed=3)[0])
    assert not torch.equal(d.take(16, seed=3)[0], d.take(16, seed=4)[0])


def test_take_more_than_available():
    with pytest.raises(UsageError, match="asked for"):
        load_data("digits", "test").take(10_000)


def test_tensor_files(tmp_path):
    x, y = np.random.rand(20, 1, 8, 8).astype(np.float32), np.arange(20) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "d.pt")
    for name in ("d.npz", "d.pt"):
        d = load_data(f"tensors:{tmp_path / name}")
        assert len(d) == 20 and d.num_classes == 3 and d.input_shape == (1, 1, 8, 8)
    np.savez(tmp_path / "bad.npz", a=x)
    with pytest.raises(InputError, match="x and y"):
        load_data(f"tensors:{tmp_path / 'bad.npz'}")


def test_random_spec():
    d = load_data("random:3,32,32:100")
    assert d.input_shape == (1, 3, 32, 32) and d.num_classes == 100
    with pytest.raises(UsageError, match="cannot read random"):
        load_data("random:a,b")


def test_unknown_source_suggests():
    with pytest.raises(UsageError) as err:
        load_data("fashion-mnis")
    assert "fashion-mnist" in err.value.hint


def test_missing_fashion_mnist_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(data_mod, "FASHION_MNIST_DIRS", (str(tmp_path),))
    data_mod._fashion_arrays.cache_clear()
    with pytest.raises(InputError) as err:
        load_data("fashion-mnist", "test")
    data_mod._fashion_arrays.cache_clear()
    assert "apt-get install -y dataset-fashion-mnist" in err.value.hint


def test_path_specs_need_paths(tmp_path):
    with pytest.raises(UsageError, match="needs a path"):
        load_data("imagefolder")
    with pytest.raises(InputError, match="no such folder"):
        load_data(f"imagefolder:{tmp_path / 'none'}")
