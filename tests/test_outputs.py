"""Models with several outputs: names from the structure, every output keeps its shape through
structured pruning (or the prune is refused), and export / parity / info handle each output."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch

from compressor import outputs
from compressor.errors import UnsupportedError, UsageError
from compressor.pruning.structured import graph, preflight
from tests.conftest import invoke
from tests.multi_output_models import build_nested, build_net

SEG_AUX = "tests.multi_output_models:build_net"
SHAPE = "1,3,64,64"


def _shapes(path) -> dict[str, list[int]]:
    from compressor.io.artifact import load_model

    handle = load_model(str(path))
    return outputs.model_shapes(handle.module, torch.randn(1, 3, 64, 64))


# ---------------------------------------------------------------- names


def test_names_follow_the_structure():
    t = torch.zeros(1)
    assert outputs.shapes(t) == {"output": [1]}
    assert list(outputs.shapes((t, t))) == ["output_0", "output_1"]
    assert list(outputs.shapes({"out": t, "aux": t})) == ["out", "aux"]
    assert list(outputs.shapes({"out": [t, t], "x": {"boxes": t}})) == ["out.0", "out.1", "x.boxes"]
    assert list(outputs.shapes([{"boxes": t, "scores": t}])) == ["output_0.boxes", "output_0.scores"]
    Pair = namedtuple("Pair", "logits features")
    assert list(outputs.shapes(Pair(t, t))) == ["logits", "features"]
    # sanitized, then made unique: "a b" and "a_b" would both be "a_b"
    assert list(outputs.shapes({"a b": t, "a_b": t, "c/d": t})) == ["a_b", "a_b_2", "c_d"]


def test_non_tensor_output_is_refused():
    with pytest.raises(UnsupportedError, match="returns str"):
        outputs.shapes({"label": "cat"})


def test_check_kept_refuses_a_changed_output_unless_allowed():
    before, after = {"seg": [1, 5, 32, 32], "aux": [1, 64]}, {"seg": [1, 5, 32, 32], "aux": [1, 30]}
    with pytest.raises(UnsupportedError, match=r"output 'aux': \[1, 64\] -> \[1, 30\]") as err:
        outputs.check_kept(before, after, ())
    assert err.value.exit_code == 3 and "--allow-output-change aux" in err.value.hint
    assert outputs.check_kept(before, after, ("aux",)) == [
        "output 'aux' changed [1, 64] -> [1, 30] (--allow-output-change)"
    ]
    assert outputs.check_kept(before, before, ()) == []
    with pytest.raises(UnsupportedError, match=r"'aux': \[1, 64\] -> gone"):
        outputs.check_kept(before, {"seg": [1, 5, 32, 32]}, ())
    with pytest.raises(UsageError) as err:
        outputs.check_allowed(("au",), list(before))
    assert "did you mean 'aux'" in err.value.one_line()


# ---------------------------------------------------------------- which layers make which output


def test_output_makers_finds_the_head_and_the_encoder():
    model = build_net().eval()
    makers = graph.output_makers(model, torch.randn(1, 3, 64, 64))
    # the decoder and skip feed only the head's input channels: they make no output
    assert makers == {"head": ["seg"], "encoder.1.0": ["aux"]}
    reasons = graph.ignored_layers(model, torch.randn(1, 3, 64, 64), [], allow=["aux"])
    assert reasons == {"head": "makes output 'seg'"}


def test_nested_outputs_tie_the_conv_to_three_outputs():
    makers = graph.output_makers(build_nested().eval(), torch.randn(1, 3, 16, 16))
    assert makers == {"fc": ["output_0"], "conv": ["output_1.feat_map", "output_1.out.0", "output_1.out.1"]}


# ---------------------------------------------------------------- prune through the CLI


def test_prune_keeps_every_output_shape(tmp_path):
    out = tmp_path / "p.pt"
    r = invoke(
        "prune", SEG_AUX, "--input-shape", SHAPE, "--method", "l1", "--ratio", "0.5", "-o", out, "--json"
    )
    assert r.code == 0, r.stderr
    assert _shapes(out) == {"seg": [1, 5, 32, 32], "aux": [1, 64]}
    body = r.json()
    assert body["params_after"] < 0.6 * body["params_before"]  # the rest of the network was pruned
    assert "kept 1 layer(s) unpruned, makes output 'aux': encoder.1.0" in body["notes"]


def test_a_changed_output_is_refused_with_its_name(tmp_path, monkeypatch):
    """With the output tracing off (only the last layer, the head, kept), the encoder is pruned and
    ``aux`` shrinks: the shape check refuses it and writes nothing."""
    monkeypatch.setattr(graph, "output_makers", lambda model, example: {})
    monkeypatch.setattr(preflight, "run", lambda *args, **kwargs: preflight.Kept())  # the check after pruning
    out = tmp_path / "p.pt"
    r = invoke("prune", SEG_AUX, "--input-shape", SHAPE, "--method", "l1", "--ratio", "0.5", "-o", out)
    assert r.code == 3, r.stderr
    assert "output 'aux': [1, 64] ->" in r.stderr and "--allow-output-change aux" in r.stderr
    assert not out.exists()


def test_preflight_keeps_the_layer_behind_a_changed_output(tmp_path, monkeypatch):
    """The same model, output tracing off: the preflight's trial cut sees ``aux`` change before
    anything is pruned, keeps the layer that makes it and says so; ``aux`` keeps its shape."""
    monkeypatch.setattr(graph, "output_makers", lambda model, example: {})
    out = tmp_path / "p.pt"
    r = invoke(
        "prune", SEG_AUX, "--input-shape", SHAPE, "--method", "l1", "--ratio", "0.5", "-o", out, "--json"
    )
    assert r.code == 0, r.stderr
    assert _shapes(out)["aux"] == [1, 64]
    notes = [n for n in r.json()["notes"] if "output 'aux' changes shape" in n]
    assert len(notes) == 1 and notes[0].endswith(": encoder.1.0")


def test_strict_preflight_names_the_layer_behind_a_changed_output(tmp_path, monkeypatch):
    monkeypatch.setattr(graph, "output_makers", lambda model, example: {})
    out = tmp_path / "p.pt"
    r = invoke(
        "prune", SEG_AUX, "--input-shape", SHAPE, "--method", "l1", "--ratio", "0.5", "-o", out, "--strict"
    )
    assert r.code == 3, r.stderr
    assert "cutting channels of 'encoder.1.0' breaks the model: output 'aux' changes shape" in r.stderr
    assert "--ignore 'encoder.1.0'" in r.stderr and not out.exists()


def test_allow_output_change_lets_that_output_shrink(tmp_path):
    out = tmp_path / "p.pt"
    r = invoke(
        "prune",
        SEG_AUX,
        "--input-shape",
        SHAPE,
        "--method",
        "l2",
        "--scope",
        "layer",
        "--ratio",
        "0.5",
        "--allow-output-change",
        "aux",
        "-o",
        out,
    )
    assert r.code == 0, r.stderr
    shapes = _shapes(out)
    assert shapes["seg"] == [1, 5, 32, 32] and shapes["aux"][1] < 64
    r = invoke(
        "prune",
        SEG_AUX,
        "--input-shape",
        SHAPE,
        "--ratio",
        "0.5",
        "--allow-output-change",
        "segm",
        "-o",
        tmp_path / "q.pt",
    )
    assert r.code == 2 and "did you mean 'seg'" in r.stderr


def test_target_keeps_every_output_shape(tmp_path):
    out = tmp_path / "p.pt"
    r = invoke(
        "prune", SEG_AUX, "--input-shape", SHAPE, "--method", "random", "--target-params", "0.6", "-o", out
    )
    assert r.code in (0, 1), r.stderr  # 1: the target was not met exactly; the closest plan is written
    assert _shapes(out) == {"seg": [1, 5, 32, 32], "aux": [1, 64]}


def test_slim_plan_keeps_the_layers_that_make_outputs():
    """compress slim ranks BatchNorm scales through the same ignored set: its plan keeps both."""
    r = invoke("slim", SEG_AUX, "--input-shape", SHAPE, "--data", "fashion-mnist", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    kept = {row["group"]: row["status"] for row in r.json()["plan"] if row["status"].startswith("kept")}
    assert kept == {"head": "kept: makes output 'seg'", "encoder.1.0": "kept: makes output 'aux'"}


# ---------------------------------------------------------------- info, export, parity


def test_info_lists_the_outputs():
    r = invoke("info", SEG_AUX, "--input-shape", SHAPE, "--json")
    assert r.code == 0, r.stderr
    assert r.json()["outputs"] == {"seg": [1, 5, 32, 32], "aux": [1, 64]}
    assert r.json()["macs"] > 0


def test_export_names_every_output_and_checks_each(tmp_path):
    import onnx

    pruned, onnx_file = tmp_path / "p.pt", tmp_path / "p.onnx"
    assert invoke("prune", SEG_AUX, "--input-shape", SHAPE, "--ratio", "0.5", "-o", pruned).code == 0
    r = invoke(
        "export",
        pruned,
        "-o",
        onnx_file,
        "--samples",
        "4",
        "--exporter",
        "torchscript",
        "--no-simplify",
        "--json",
    )
    assert r.code == 0, r.stderr
    rows = r.json()["outputs"]
    assert [row["name"] for row in rows] == ["seg", "aux"] and all(row["passed"] for row in rows)
    assert [row["shape"] for row in rows] == [[4, 5, 32, 32], [4, 64]]
    graph_outputs = onnx.load(str(onnx_file)).graph.output
    assert [o.name for o in graph_outputs] == ["seg", "aux"]
    assert [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph_outputs] == [
        ["batch", 5, 32, 32],
        ["batch", 64],
    ]
    info = invoke("info", onnx_file, "--json").json()
    assert info["outputs"] == {"seg": ["batch", 5, 32, 32], "aux": ["batch", 64]}
    for model in (pruned, onnx_file):  # bench runs both backends on a model with two outputs
        bench = invoke("bench", model, "--runs", "2", "--warmup", "0", "--min-time", "0", "--json")
        assert bench.code == 0, bench.stderr
        assert bench.json()["latency_ms_p50"] > 0


def test_parity_rows_carry_the_output_names():
    from compressor.export import parity

    def reference(x):
        return [x * 2, x.sum(1, keepdims=True)]

    def candidate(x):
        return [x * 2, x.sum(1, keepdims=True) + 0.5]

    inputs = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    result = parity.check(reference, candidate, inputs, None, 1e-3, 1e-5, ["seg", "aux"])
    assert [(r["name"], r["passed"]) for r in result.outputs] == [("seg", True), ("aux", False)]
    assert result.outputs[1]["max_abs_error"] == pytest.approx(0.5)


# ---------------------------------------------------------------- torchvision segmentation and video


def test_segmentation_prune_export_parity_keeps_both_heads(tmp_path):
    """deeplabv3_mobilenet_v3_large with 3 classes at 32x32: both classifier heads keep 3 channels,
    the output shapes are unchanged and the ONNX graph passes parity on ``out`` and ``aux``."""
    from compressor.api import ExportConfig, PruneConfig, export, prune
    from compressor.api.common import ModelSpec

    spec = ModelSpec(
        "torchvision:deeplabv3_mobilenet_v3_large", arch_kwargs={"num_classes": 3}, input_shape=(1, 3, 32, 32)
    )
    pruned, onnx_file = str(tmp_path / "seg.pt"), str(tmp_path / "seg.onnx")
    result = prune(spec, PruneConfig("l1", ratio=0.3), pruned)
    assert result.after["params"] < 0.85 * result.before["params"]
    kept = " ".join(result.notes)
    assert "makes output 'out': classifier.4" in kept and "makes output 'aux': aux_classifier.4" in kept
    assert _shapes_at(pruned, (1, 3, 32, 32)) == {"out": [1, 3, 32, 32], "aux": [1, 3, 32, 32]}
    done = export(pruned, ExportConfig(output=onnx_file, samples=2, exporter="torchscript", simplify=False))
    assert [(row["name"], row["passed"]) for row in done.outputs] == [("out", True), ("aux", True)]


@pytest.mark.slow
def test_video_model_prunes_on_a_tiny_clip(tmp_path):
    from compressor.api import PruneConfig, prune
    from compressor.api.common import ModelSpec

    spec = ModelSpec("torchvision:mc3_18", arch_kwargs={"num_classes": 4}, input_shape=(1, 3, 2, 16, 16))
    result = prune(spec, PruneConfig("l1", ratio=0.3), str(tmp_path / "v.pt"))
    assert result.after["params"] < 0.85 * result.before["params"]
    assert _shapes_at(tmp_path / "v.pt", (1, 3, 2, 16, 16)) == {"output": [1, 4]}


def _shapes_at(path, shape) -> dict[str, list[int]]:
    from compressor.io.artifact import load_model

    return outputs.model_shapes(load_model(str(path)).module, torch.randn(*shape))


def test_a_task_row_can_keep_layers(monkeypatch):
    """A row's ``keep`` patterns (for outputs the tracing cannot see) are never pruned."""
    import dataclasses

    from torchvision.models import resnet18

    from compressor.io import zoo

    row = dataclasses.replace(zoo.TASKS[0], keep={"resnet*": ("layer1.0.conv1",)})
    monkeypatch.setattr(zoo, "TASKS", (row, *zoo.TASKS[1:]))
    reasons = graph.ignored_layers(
        resnet18(num_classes=4), torch.randn(1, 3, 32, 32), [], ref="torchvision:resnet18"
    )
    assert reasons == {
        "fc": graph.HEAD_REASON,
        "layer1.0.conv1": "kept for its task (the torchvision model table)",
    }
    assert "layer1.0.conv1" not in graph.ignored_layers(
        resnet18(num_classes=4), torch.randn(1, 3, 32, 32), []
    )


# ---------------------------------------------------------------- eval picks one output

NESTED = "tests.multi_output_models:build_nested"
RANDOM_DATA = "random:3,16,16:4"


def _scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    accuracy = float((logits.argmax(1) == labels).float().mean())
    return accuracy, float(torch.nn.functional.cross_entropy(logits, labels))


def test_eval_scores_the_output_it_is_given():
    """``--output`` picks the output scored; without it the first, named in a note. Accuracy and
    loss are those of that output's logits, computed here from the same seeded model."""
    from compressor.api import EvalConfig, evaluate
    from compressor.io.data import load_data
    from tests.conftest import seed_all

    x, labels = load_data(RANDOM_DATA, "test").dataset.tensors
    seed_all()
    with torch.no_grad():
        first, rest = build_nested().eval()(x)
    for name, logits, wanted in (
        ("output_0", first, None),
        ("output_0", first, "output_0"),
        ("output_1.out.1", rest["out"][1], "output_1.out.1"),
    ):
        seed_all()
        result = evaluate(NESTED, EvalConfig(data=RANDOM_DATA, output=wanted))
        assert result.output == name
        assert (result.accuracy, result.loss) == pytest.approx(_scores(logits, labels), rel=1e-5)
        if wanted is None:
            assert result.notes == (
                "scored output 'output_0', the first of 4 (output_0, output_1.feat_map, "
                "output_1.out.0, output_1.out.1); choose another with --output NAME",
            )
        else:
            assert result.notes == ()


def test_eval_of_an_onnx_file_scores_the_named_output(tmp_path):
    import onnxruntime as ort

    from compressor.api import ExportConfig, export
    from compressor.api.common import ModelSpec
    from compressor.io.data import load_data
    from tests.conftest import seed_all

    seed_all()
    onnx_file = tmp_path / "nested.onnx"
    spec = ModelSpec(NESTED, input_shape=(1, 3, 16, 16))
    export(spec, ExportConfig(str(onnx_file), samples=2, simplify=False, exporter="torchscript"))
    x, labels = load_data(RANDOM_DATA, "test").dataset.tensors
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    logits = torch.from_numpy(
        session.run(None, {session.get_inputs()[0].name: x.numpy()})[names.index("output_1.out.1")]
    )
    r = invoke("eval", onnx_file, "--data", RANDOM_DATA, "--output", "output_1.out.1", "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["output"] == "output_1.out.1" and doc["notes"] == []
    assert (doc["accuracy"], doc["loss"]) == pytest.approx(_scores(logits, labels), rel=1e-5)


def test_eval_of_an_unknown_output_is_exit_2_listing_the_outputs():
    r = invoke("eval", NESTED, "--data", RANDOM_DATA, "--output", "logits")
    assert r.code == 2
    assert "unknown output (for --output) 'logits'" in r.stderr and "output_1.out.0" in r.stderr
    assert "Traceback" not in r.stderr
