"""torchvision detection and optical-flow models behind their one-tensor adapter: region pooling,
head layers kept through structured pruning, artifacts that rebuild the adapter, ONNX parity per
output, clean refusals of bad adapter arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressor import outputs
from compressor.errors import UsageError
from compressor.io import detection
from tests.conftest import invoke, seed_all

# Reduced inputs and class counts keep the end-to-end cases at seconds of CPU each.
FASTER = "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"
FASTER_SHAPE = (1, 3, 128, 128)
FASTER_KWARGS = {"num_classes": 3}


def test_roi_pool_equals_torchvision_multiscale_roi_align():
    """Our batched pooling (a tensor batch index, one mask per level) pools the same values as
    torchvision's MultiScaleRoIAlign given the same boxes for each image. Regions of every size, so
    every level is used; a wrong level (drop the ``- k_min``) or scale moves values by O(1)."""
    from torchvision.ops import MultiScaleRoIAlign

    pooler = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    size = (512, 512)
    features = {k: torch.randn(2, 4, 512 // s, 512 // s) for k, s in zip("0123", (4, 8, 16, 32))}
    boxes = torch.tensor(
        [[0, 0, 16, 16], [10, 20, 200, 150], [0, 0, 300, 300], [0, 0, 511, 511], [5, 5, 40, 500]],
        dtype=torch.float32,
    )
    expected = pooler(features, [boxes, boxes], [size, size])
    got = detection.roi_pool(pooler, features, boxes, 2, size)
    levels = pooler.map_levels([boxes]).unique()
    assert len(levels) == 4  # the case spans the pyramid
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)  # values are O(1)


def test_adapter_arguments_are_checked_before_building():
    with pytest.raises(UsageError, match="rois must be a positive integer"):
        detection.build("fasterrcnn_mobilenet_v3_large_320_fpn", {"rois": 0})
    with pytest.raises(UsageError, match="flow_updates does not apply"):
        detection.build("ssdlite320_mobilenet_v3_large", {"flow_updates": 2})


def test_unknown_torchvision_model_lists_detection_models():
    result = invoke("info", "torchvision:fasterrcnn_resnet51_fpn")
    assert result.code == 2
    assert "fasterrcnn_resnet50_fpn" in result.stderr + result.stdout


@pytest.fixture(scope="module")
def pruned_faster(tmp_path_factory):
    """fasterrcnn_mobilenet_v3_large_320_fpn at 128x128 with 3 classes, dense and pruned (l1 0.5)."""
    from compressor import api

    seed_all()
    folder = tmp_path_factory.mktemp("detection")
    spec = api.ModelSpec(FASTER, arch_kwargs=FASTER_KWARGS, input_shape=FASTER_SHAPE)
    dense = spec.load()
    out = folder / "faster.pt"
    result = api.prune(spec, api.PruneConfig("l1", ratio=0.5), str(out))
    return dense, result, out


def test_pruning_keeps_heads_and_output_shapes(pruned_faster):
    """The backbone loses channels, the layers that make the outputs and the FPN outputs do not, and
    every output has the dense model's shape."""
    from compressor.io.artifact import load_model

    dense, result, out = pruned_faster
    assert result.after["macs"] < 0.7 * result.before["macs"]  # 0.5 of the prunable channels: ~0.4
    pruned = load_model(str(out))
    layers = dict(pruned.module.named_modules())
    widths = {r["name"]: (r["channels_before"], r["channels_after"]) for r in result.layers}
    for name in detection.build("fasterrcnn_mobilenet_v3_large_320_fpn", FASTER_KWARGS).kept_layers():
        assert widths[name][0] == widths[name][1], name
    assert layers["model.backbone.body.1.block.0.0"].out_channels < 64  # an inverted residual shrank
    x = dense.example_input(batch=2)
    before, after = outputs.model_shapes(dense.module, x), outputs.model_shapes(pruned.module, x)
    assert (
        after
        == before
        == {
            "rpn_objectness": [2, 540],
            "rpn_box_deltas": [2, 2160],
            "class_logits": [2, 8, 3],
            "box_regression": [2, 8, 12],
        }
    )


def test_artifact_rebuilds_the_pruned_adapter(pruned_faster):
    """The artifact names the reference: loading it builds the adapter again, with the pruned widths,
    the fixed regions and the weights, and gives the pruned model's outputs."""
    from compressor.io.artifact import load_model

    _, _, out = pruned_faster
    first, second = load_model(str(out)), load_model(str(out))
    assert isinstance(first.module, detection.TwoStageAdapter) and first.input_shape == FASTER_SHAPE
    x = first.example_input(batch=2)
    with torch.no_grad():
        a, b = first.module(x), second.module(x)
    assert list(a) == list(b) == first.module.output_names()
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_export_parity_per_output(pruned_faster, tmp_path):
    """The pruned detector exports to ONNX with a dynamic batch and matches PyTorch on every output;
    the outputs are far above the absolute tolerance, so parity compares values, not zeros. The
    graph's outputs, the parity rows and ``compress info`` carry the heads' names."""
    import onnx

    from compressor import api

    _, _, out = pruned_faster
    onnx_file = tmp_path / "faster.onnx"
    result = api.export(str(out), api.ExportConfig(str(onnx_file), samples=8, simplify=False))
    assert result.figures["parity_passed"]
    names = ["rpn_objectness", "rpn_box_deltas", "class_logits", "box_regression"]
    assert [o.name for o in onnx.load(str(onnx_file)).graph.output] == names
    assert [row["name"] for row in result.outputs] == names
    assert [row["shape"][1:] for row in result.outputs] == [[540], [2160], [8, 3], [8, 12]]
    assert list(api.info(str(onnx_file)).outputs) == names
    assert all(row["reference_max_abs"] > 1e3 * 1e-5 for row in result.outputs)  # atol 1e-5
    assert any("post-processing" in note for note in result.notes)


def test_batchnorm_statistics_give_unit_scale_outputs():
    """Without the statistics pass SSDlite's eval-mode outputs are ~1e-14 (its normal(0, 0.03)
    init), and parity on them would compare nothing; with it they are of order 1."""
    model = detection.build("ssdlite320_mobilenet_v3_large", {"num_classes": 3})
    with torch.no_grad():
        heads = model(torch.rand(1, 3, 160, 160))
    assert list(heads) == ["bbox_regression", "cls_logits"]  # the output names
    assert min(float(o.abs().max()) for o in heads.values()) > 0.1


@pytest.mark.slow
def test_raft_small_prunes_and_keeps_the_flow_shape(tmp_path):
    from compressor import api

    spec = api.ModelSpec(
        "torchvision:raft_small", arch_kwargs={"flow_updates": 2}, input_shape=(1, 6, 128, 128)
    )
    result = api.prune(spec, api.PruneConfig("l1", ratio=0.5), str(tmp_path / "raft.pt"))
    assert result.after["macs"] < 0.8 * result.before["macs"]
    pruned = api.ModelSpec(str(tmp_path / "raft.pt")).load()
    assert pruned.module.flow_updates == 2
    assert outputs.model_shapes(pruned.module, pruned.example_input()) == {"flow": [1, 2, 128, 128]}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(detection.MODELS))
def test_every_model_prunes_exports_or_is_refused(name, tmp_path):
    """l1 0.5 then ONNX export with parity; a model that cannot be done is refused with exit 3."""
    result = invoke(
        "prune", f"torchvision:{name}", "--method", "l1", "--ratio", "0.5", "-o", str(tmp_path / "m.pt")
    )
    if result.code == 3:
        assert "error" in result.stderr and "Traceback" not in result.stderr
        return
    assert result.code == 0, result.stderr
    exported = invoke("export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.onnx"))
    assert exported.code in (0, 3), exported.stderr
    assert "Traceback" not in exported.stderr


class _SplitBatch(torch.nn.Module):
    """Joins and splits on the batch axis as RAFT does with its two frames: torch.export fixes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = torch.chunk(torch.cat([x, x + 1], 0), 2, dim=0)
        return first * second


def test_a_dynamo_graph_whose_batch_axis_came_out_fixed_falls_back_to_torchscript():
    """Asked for a dynamic batch, the dynamo exporter returns a graph fixed at the example's batch for
    such code; ONNX Runtime then rejects batches 1 and 7. The TorchScript-based graph keeps it."""
    from compressor.export import onnx_export

    exported = onnx_export.export_onnx(_SplitBatch(), torch.randn(2, 4, 3), 18, dynamic=True)
    assert exported.exporter == "torchscript"
    assert "batch axis came out fixed at 2" in exported.notes[0]
    assert exported.model.graph.input[0].type.tensor_type.shape.dim[0].dim_param


def test_flow_parity_is_on_the_scale_of_the_flow():
    """RAFT's refinements spread float32 rounding over the flow field at the field's scale, so a
    pixel whose flow is near 0 has as large an error as its neighbours. Element by element, 2e-5 px
    on a pixel of flow 0 fails atol 1e-5; on the flow's scale (largest |flow| 30 px) it passes,
    and an error of 0.1 px (beyond rtol 1e-3 x 30) still fails."""
    from compressor.export import parity

    flow = np.linspace(-30, 30, 64, dtype=np.float32).reshape(1, 2, 4, 8)
    flow[0, 0, 0, 0] = 0.0
    far = flow.copy()
    far[0, 1, 2, 3] += 0.1
    inputs = np.zeros((1, 1), np.float32)

    def compare(candidate: np.ndarray, scaled: tuple[str, ...]) -> parity.Parity:
        return parity.check(lambda x: [flow], lambda x: [candidate], inputs, 1, 1e-3, 1e-5, ["flow"], scaled)

    assert not compare(flow + 2e-5, ()).passed
    assert compare(flow + 2e-5, ("flow",)).passed
    assert not compare(far, ("flow",)).passed
    assert detection.FlowAdapter.parity_scaled == ("flow",)


class _Scaled(torch.nn.Linear):
    parity_scaled = ("output",)


def build_scaled() -> torch.nn.Module:
    """A linear layer whose output parity compares on its own scale, as a flow adapter's."""
    return _Scaled(4, 3)


def test_export_compares_an_adapters_scaled_outputs_on_their_scale(tmp_path):
    """The export's parity check takes the outputs a model names in ``parity_scaled``."""
    from compressor import api

    spec = api.ModelSpec("tests.test_detection:build_scaled", input_shape=(1, 4))
    result = api.export(spec, api.ExportConfig(str(tmp_path / "s.onnx"), samples=2, simplify=False))
    assert result.outputs[0]["tolerance_scale"] == "largest |output|"
