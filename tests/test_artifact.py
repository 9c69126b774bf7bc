"""Artifacts and every load path: exact reload, atomic writes, safe-by-default pickle handling."""

from __future__ import annotations

import os
import random
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from compressor.errors import InputError, UnsupportedError
from compressor.io.artifact import FORMAT, load_model, save_artifact
from compressor.io.refs import build
from compressor.model import ModelHandle
from tests.conftest import seed_all

SAMPLE_NAMES = ["simple_cnn", "resnet_small", "vgg_bn", "mlp", "tiny_vit"]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_reload_gives_identical_outputs(artifact_dir, name):
    seed_all()  # the state the fixture built each model from
    original = build(f"sample:{name}").eval()
    handle = load_model(artifact_dir / f"{name}.pt")
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(original(x), handle.module(x))
    assert handle.ref == f"sample:{name}" and handle.source_kind == "artifact"
    assert handle.history[0]["command"] == "test-fixture"
    assert handle.history[0]["versions"]["torch"] == torch.__version__


def test_artifact_is_plain_data(artifact_dir):
    payload = torch.load(artifact_dir / "mlp.pt", weights_only=True)
    assert payload["format"] == FORMAT and payload["format_version"] == 1
    assert set(payload) >= {"arch", "structure", "state_dict", "masks", "input", "history", "metrics"}
    assert payload["input"]["shape"] == [1, 1, 28, 28] and payload["input"]["mean"] == [0.286]


def test_shrunk_architecture_rebuilds_without_pickle(tmp_path):
    """A hand-narrowed model (what a structured pruner produces) reloads from the manifest."""
    model = build("sample:simple_cnn").eval()
    conv1, conv2 = model[0], model[3]
    keep = torch.arange(0, 32, 2)
    conv1.weight = torch.nn.Parameter(conv1.weight[keep].clone())
    conv1.bias = torch.nn.Parameter(conv1.bias[keep].clone())
    conv1.out_channels = 16
    conv2.weight = torch.nn.Parameter(conv2.weight[:, keep].clone())
    conv2.in_channels = 16
    handle = ModelHandle(model, "sample:simple_cnn", input_shape=(1, 1, 28, 28))
    save_artifact(handle, tmp_path / "narrow.pt")
    again = load_model(tmp_path / "narrow.pt").module
    x = torch.randn(3, 1, 28, 28)
    assert again[0].out_channels == 16 and again[3].weight.shape == (64, 16, 3, 3)
    assert torch.equal(model(x), again(x))


def test_masks_round_trip(tmp_path):
    model = build("sample:mlp").eval()
    mask = torch.rand(512, 784) > 0.5
    handle = ModelHandle(model, "sample:mlp", input_shape=(1, 1, 28, 28), masks={"1.weight": mask})
    save_artifact(handle, tmp_path / "m.pt")
    assert torch.equal(load_model(tmp_path / "m.pt").masks["1.weight"], mask)


def test_state_dict_paths(tmp_path):
    model = build("sample:mlp").eval()
    x = torch.randn(2, 1, 28, 28)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pth")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pt")
    save_file(model.state_dict(), str(tmp_path / "sd.safetensors"))
    for name in ("sd.pt", "wrapped.pth", "ddp.pt", "sd.safetensors"):
        handle = load_model(tmp_path / name, arch="sample:mlp")
        assert torch.equal(handle.module(x), model(x)), name
        assert handle.source_kind == "state_dict"


def test_state_dict_without_arch_says_what_to_do(tmp_path):
    torch.save(build("sample:mlp").state_dict(), tmp_path / "sd.pt")
    with pytest.raises(InputError) as err:
        load_model(tmp_path / "sd.pt")
    assert "--arch" in err.value.hint


def test_state_dict_mismatch(tmp_path):
    torch.save(build("sample:mlp").state_dict(), tmp_path / "sd.pt")
    with pytest.raises(InputError, match="does not match the architecture"):
        load_model(tmp_path / "sd.pt", arch="sample:simple_cnn")
    with pytest.raises(InputError, match="shape"):
        load_model(tmp_path / "sd.pt", arch="sample:mlp", arch_kwargs={"num_classes": 5})


class _Payload:
    """Unpickling this creates a file: proof that code in the pickle ran."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickle_refused_and_payload_not_run(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        torch.save({"weights": torch.zeros(2), "x": _Payload(str(target))}, fh)
    assert not target.exists()
    with pytest.raises(InputError) as err:
        load_model(path, arch="sample:mlp")
    assert "--trust-pickle" in err.value.hint and "arbitrary code" in err.value.message
    assert not target.exists(), "the pickle's code ran without --trust-pickle"


def test_full_module_pickle_needs_trust(tmp_path):
    model = build("sample:mlp").eval()
    torch.save(model, tmp_path / "full.pt")
    with pytest.raises(InputError, match="pickled"):
        load_model(tmp_path / "full.pt")
    handle = load_model(tmp_path / "full.pt", trust_pickle=True)
    x = torch.randn(2, 1, 28, 28)
    assert handle.source_kind == "pickle" and torch.equal(handle.module(x), model(x))
    with pytest.raises(UnsupportedError) as err:
        save_artifact(handle, tmp_path / "out.pt")
    assert "--arch" in err.value.hint


def _truncated(src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "kind",
    ["empty", "truncated", "garbage", "text", "wrong_kind", "folder", "missing", "bad_safetensors", "onnx"],
)
def test_corrupt_inputs_are_input_errors(tmp_path, artifact_dir, kind):
    path = tmp_path / ("bad.safetensors" if kind == "bad_safetensors" else "bad.pt")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        _truncated(artifact_dir / "mlp.pt", path)
    elif kind in ("garbage", "bad_safetensors"):
        path.write_bytes(random.Random(0).randbytes(4096))  # the same bytes on every run
    elif kind == "text":
        path.write_text("hello, I am not a model\n")
    elif kind == "wrong_kind":
        torch.save([1, 2, 3], path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "onnx":
        path = tmp_path / "m.onnx"
        path.write_bytes(b"x")
    with pytest.raises(InputError) as err:
        load_model(path)
    assert str(path.name) in err.value.message


def test_random_bytes_are_input_errors(tmp_path):
    """200 seeded blobs: random bytes trip the weights-only unpickler in several ways (UnpicklingError
    mostly, IndexError, KeyError, UnicodeDecodeError); every one is refused as the file's fault."""
    path = tmp_path / "noise.pt"
    for seed in range(200):
        path.write_bytes(random.Random(seed).randbytes(4096))
        with pytest.raises(InputError) as err:
            load_model(path)
        assert "noise.pt: not a readable PyTorch checkpoint" in err.value.message, seed


def test_interrupted_save_keeps_old_file(tmp_path, artifact_dir, monkeypatch):
    target = tmp_path / "model.pt"
    target.write_bytes((artifact_dir / "mlp.pt").read_bytes())
    before = target.read_bytes()
    handle = load_model(artifact_dir / "simple_cnn.pt")
    real_save = torch.save

    def interrupted(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(10)}, f)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(handle, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_saved_file_follows_umask(tmp_path, artifact_dir):
    handle = load_model(artifact_dir / "mlp.pt")
    old = os.umask(0o022)
    try:
        save_artifact(handle, tmp_path / "x.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o644


def test_missing_output_folder(tmp_path, artifact_dir):
    handle = load_model(artifact_dir / "mlp.pt")
    with pytest.raises(InputError, match="does not exist"):
        save_artifact(handle, tmp_path / "nope" / "x.pt")


def test_future_format_version_refused(tmp_path, artifact_dir):
    payload = torch.load(artifact_dir / "mlp.pt", weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(InputError, match="format version 99"):
        load_model(tmp_path / "future.pt")


def test_zip_member_damage_detected(tmp_path, artifact_dir):
    path = tmp_path / "damaged.pt"
    with zipfile.ZipFile(artifact_dir / "mlp.pt") as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("data.pkl"):
                dst.writestr(item, src.read(item))
    with pytest.raises(InputError):
        load_model(path)
