"""Integrity digests: a byte flipped inside tensor data is caught by every command that reads the file.

Without the digest such a file still parses (``torch.load`` and ``onnx.load`` accept it) and the
model runs with a corrupted weight. Files written without a digest still load.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from compressor.errors import InputError
from compressor.io import integrity
from compressor.io.artifact import load_model, save_artifact
from tests.conftest import SAMPLES, invoke

MISMATCH = "corrupt (checksum mismatch)"


def flip_inside(path: Path, chunk: bytes) -> Path:
    """A copy of ``path`` with one bit flipped in the middle of ``chunk``, which the file holds once."""
    data = bytearray(path.read_bytes())
    start = data.find(chunk)
    assert start >= 0 and data.find(chunk, start + 1) < 0, "the tensor's bytes must be found exactly once"
    data[start + len(chunk) // 2] ^= 0x10
    bad = path.with_name(f"flipped-{path.name}")
    bad.write_bytes(bytes(data))
    return bad


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A sealed artifact and its ONNX export, each also with one bit flipped inside its largest tensor."""
    folder = tmp_path_factory.mktemp("integrity")
    pt = folder / "cnn.pt"
    save_artifact(load_model(SAMPLES / "simple_cnn.pt"), pt)
    weight = max(torch.load(pt, weights_only=True)["state_dict"].values(), key=lambda t: t.numel())
    onnx_file = folder / "cnn.onnx"
    assert invoke("export", pt, "-o", onnx_file, "--no-simplify").code == 0
    big = max(onnx.load(str(onnx_file)).graph.initializer, key=lambda t: len(t.raw_data))
    return {
        "pt": pt,
        "bad_pt": flip_inside(pt, weight.numpy().tobytes()),
        "onnx": onnx_file,
        "bad_onnx": flip_inside(onnx_file, big.raw_data),
    }


def test_the_flip_alone_goes_unnoticed_by_the_readers_below(files):
    """What the digest guards against: both flipped files still parse and differ only in one weight."""
    good, bad = (torch.load(files[k], weights_only=True)["state_dict"] for k in ("pt", "bad_pt"))
    assert sum(int((good[k] != bad[k]).sum()) for k in good) == 1
    a, b = (onnx.load(str(files[k])) for k in ("onnx", "bad_onnx"))
    onnx.checker.check_model(b)
    assert sum(i.raw_data != j.raw_data for i, j in zip(a.graph.initializer, b.graph.initializer)) == 1


@pytest.mark.parametrize(
    "command",
    [
        ["info"],
        ["eval", "--data", "digits", "--limit", "32"],
        ["bench", "--runs", "2", "--warmup", "1"],
        ["export", "-o", "{out}.onnx"],
        ["prune", "--method", "l1", "--ratio", "0.5", "-o", "{out}.pt"],
    ],
)
@pytest.mark.parametrize("kind", ["bad_pt", "bad_onnx"])
def test_every_reader_refuses_a_flipped_byte(files, tmp_path, command, kind):
    out = tmp_path / "out"
    args = [a.format(out=out) for a in command]
    result = invoke(args[0], files[kind], *args[1:])
    assert result.code == 2, result.stderr
    message = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(message) == 1 and "Traceback" not in result.stderr
    if kind == "bad_pt" or command[0] in ("info", "eval", "bench"):
        assert MISMATCH in message[0] and str(files[kind]) in message[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["pt", "onnx"])
def test_intact_files_pass_the_check(files, kind):
    result = invoke("info", files[kind], "--json")
    assert result.code == 0, result.stderr
    assert result.json()["integrity"] == "sha256 verified"


def test_metadata_is_covered_too(tmp_path, files):
    payload = torch.load(files["pt"], weights_only=True)
    payload["input"]["mean"] = [0.5]  # a changed normalisation would silently shift every output
    torch.save(payload, tmp_path / "meta.pt")
    with pytest.raises(InputError, match=r"checksum mismatch"):
        load_model(tmp_path / "meta.pt")
    model = onnx.load(str(files["onnx"]))
    next(p for p in model.metadata_props if p.key == "compressor.input_shape").value = "[1, 1, 32, 32]"
    onnx.save(model, str(tmp_path / "meta.onnx"))
    assert MISMATCH in invoke("info", tmp_path / "meta.onnx").stderr


def test_files_without_a_digest_still_load(tmp_path, files):
    payload = torch.load(files["pt"], weights_only=True)
    del payload[integrity.ARTIFACT_KEY]
    torch.save(payload, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    new = load_model(files["pt"])
    assert new.verified and not old.verified
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(old.module(x), new.module(x), rtol=0, atol=0)
    model = onnx.load(str(files["onnx"]))
    integrity._drop_digest(model)
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    foreign = invoke("info", tmp_path / "foreign.onnx", "--json")
    assert foreign.code == 0 and foreign.json()["integrity"] == "no digest"


def test_digest_is_independent_of_key_order_and_sees_every_tensor():
    a = {"x": torch.arange(4.0), "y": {"b": torch.ones(2, dtype=torch.bool), "a": [1, 2.5, None]}}
    b = {"y": {"a": [1, 2.5, None], "b": torch.ones(2, dtype=torch.bool)}, "x": torch.arange(4.0)}
    assert integrity.payload_digest(a) == integrity.payload_digest(b)
    for changed in (
        {**a, "x": torch.tensor([0.0, 1.0, 2.0, 3.5])},
        {**a, "x": torch.arange(4.0).reshape(2, 2)},  # same bytes, other shape
        {**a, "x": torch.arange(4.0).double()},
        {**a, "y": {**a["y"], "b": torch.tensor([True, False])}},
    ):
        assert integrity.payload_digest(changed) != integrity.payload_digest(a)


def test_external_data_is_covered(tmp_path, files, monkeypatch):
    from compressor.export import large

    monkeypatch.setattr(large, "LIMIT", 100_000)  # the 1.7 MB graph takes the external-data path
    out = tmp_path / "big.onnx"
    assert invoke("export", files["pt"], "-o", out).code == 0
    assert invoke("info", out).code == 0
    data = tmp_path / "big.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    data.write_bytes(bytes(raw))
    for command in (["info"], ["bench", "--runs", "2", "--warmup", "1"]):
        result = invoke(command[0], out, *command[1:])
        assert result.code == 2 and MISMATCH in result.stderr


def test_sample_models_are_sealed():
    for path in sorted(SAMPLES.glob("*.pt")):
        payload = torch.load(path, weights_only=True)
        assert payload[integrity.ARTIFACT_KEY]["digest"] == integrity.payload_digest(payload), path.name


def test_stamped_onnx_digest_matches_a_fresh_computation(files):
    model = onnx.load(str(files["onnx"]))
    stored = next(p.value for p in model.metadata_props if p.key == integrity.ONNX_KEY)
    assert stored == integrity.onnx_digest(model) and len(stored) == 64
