"""Model references: every form builds the right module; bad ones are usage errors."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from compressor.errors import InputError, UsageError
from compressor.io import refs


def test_torchvision_ref_with_kwargs():
    model = refs.build("torchvision:resnet18", refs.parse_kwargs("num_classes=10"))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert refs.default_input_shape("torchvision:resnet18") == (1, 3, 224, 224)


def test_torchvision_list_is_complete():
    names = refs.torchvision_models()
    assert len(names) >= 75 and "resnet50" in names and "vit_b_16" in names


@pytest.mark.parametrize(
    "name", ["simple_cnn", "resnet_small", "resnet_wide", "mobilenet_small", "vgg_bn", "mlp", "tiny_vit"]
)
def test_sample_refs(name):
    model = refs.build(f"sample:{name}")
    assert model(torch.randn(2, *refs.default_input_shape(f"sample:{name}")[1:])).shape == (2, 10)


def test_user_factory_ref(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn
        def tiny(width=4):
            return nn.Sequential(nn.Flatten(), nn.Linear(784, width))
        NOT_A_MODEL = 3
        def not_module():
            return 42
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = refs.build("my_models:tiny", {"width": 7})
    assert model(torch.randn(1, 1, 28, 28)).shape == (1, 7)
    with pytest.raises(InputError, match="no callable"):
        refs.build("my_models:missing")
    with pytest.raises(Exception, match="not a torch nn.Module"):
        refs.build("my_models:not_module")
    with pytest.raises(InputError, match="cannot import"):
        refs.build("no_such_pkg_xyz.mod:f")
    sys.modules.pop("my_models", None)


def test_timm_ref():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="timm is not installed") as err:
            refs.build("timm:resnet18")
        assert "compressor[timm]" in err.value.hint
    else:
        assert refs.build("timm:resnet18", {"num_classes": 3})(torch.randn(1, 3, 64, 64)).shape == (1, 3)


@pytest.mark.parametrize(
    "ref,match",
    [
        ("torchvision:resnet19", "did you mean torchvision:resnet18"),
        ("sample:simple_cn", "did you mean 'simple_cnn'"),
        ("nocolon", "cannot read model reference"),
    ],
)
def test_bad_refs(ref, match):
    with pytest.raises(UsageError) as err:
        refs.build(ref)
    assert match in err.value.one_line()


def test_parse_kwargs_types():
    assert refs.parse_kwargs("a=1,b=0.5,c=true,d=name,e=none") == {
        "a": 1,
        "b": 0.5,
        "c": True,
        "d": "name",
        "e": None,
    }
    with pytest.raises(UsageError):
        refs.parse_kwargs("novalue")


def test_bad_kwargs_for_arch():
    with pytest.raises(UsageError, match="unexpected keyword") as err:
        refs.build("sample:mlp", {"width": 3})
    assert "--arch-kwargs" in err.value.hint


def test_unknown_zoo_name_points_to_the_other_zoo():
    pytest.importorskip("timm")
    from compressor.cli.app import app  # noqa: F401 - the CLI is what users meet
    from tests.conftest import invoke

    result = invoke("info", "torchvision:vit_tiny_patch16_224")
    assert result.code == 2 and "did you mean timm:vit_tiny_patch16_224" in result.stderr
    result = invoke("info", "timm:vit_b_16")
    assert result.code == 2 and "torchvision:vit_b_16" in result.stderr
    result = invoke("info", "resnet18")  # a bare name is read as a file first
    assert result.code == 2 and "torchvision:resnet18" in result.stderr


def test_torchvision_tasks_build_with_their_input_shapes():
    seg = refs.build("torchvision:lraspp_mobilenet_v3_large", {"num_classes": 3})
    assert refs.default_input_shape("torchvision:lraspp_mobilenet_v3_large") == (1, 3, 520, 520)
    assert set(seg.eval()(torch.randn(1, 3, 32, 32))) == {"out"}
    fcn = refs.build("torchvision:fcn_resnet50", {"num_classes": 2})  # the published head layout: aux on
    assert fcn.aux_classifier is not None
    assert refs.build("torchvision:fcn_resnet50", {"aux_loss": False}).aux_classifier is None
    assert refs.default_input_shape("torchvision:r3d_18") == (1, 3, 16, 112, 112)
    assert refs.default_input_shape("torchvision:mvit_v2_s") == (1, 3, 16, 224, 224)
    assert refs.default_input_shape("torchvision:inception_v3") == (1, 3, 299, 299)


def test_torchvision_unknown_name_is_matched_across_tasks_and_quantized_builds_the_float_model():
    """torchvision's quantized builders make the float quantizable model by default (quant stubs,
    float adds), which prunes; ``quantize=True`` packs int8 weights and is refused (exit 3)."""
    from compressor.errors import UnsupportedError

    with pytest.raises(UsageError) as err:
        refs.build("torchvision:lraspp_mobilenet")
    assert "did you mean torchvision:lraspp_mobilenet_v3_large" in err.value.one_line()
    model = refs.build("torchvision:quantized_mobilenet_v3_large")
    assert type(model).__name__ == "QuantizableMobileNetV3"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(UnsupportedError, match="quantize=True: packs the weights into int8") as err:
        refs.build("torchvision:quantized_resnet18", {"quantize": True})
    assert err.value.exit_code == 3 and "--quantize int8" in err.value.hint


def test_timm_example_input_follows_the_configured_size():
    """``img_size`` goes to timm, and the example input follows it (the model's ``pretrained_cfg``
    keeps 224); an explicit input shape still wins. A 224 input would fail the 64 model's forward."""
    pytest.importorskip("timm")
    from compressor.io.artifact import load_model
    from tests.conftest import invoke

    ref, kwargs = "timm:vit_tiny_patch16_224", {"img_size": 64, "depth": 1}
    handle = load_model(ref, arch_kwargs=kwargs)
    assert handle.module.pretrained_cfg["input_size"] == (3, 224, 224)
    assert handle.input_shape == (1, 3, 64, 64)
    assert handle.module(handle.example_input()).shape == (1, 1000)
    assert load_model(ref, arch_kwargs=kwargs, input_shape=(1, 3, 32, 32)).input_shape == (1, 3, 32, 32)
    assert refs.default_input_shape("timm:vit_base_patch16_384") == (1, 3, 384, 384)  # the model's own
    result = invoke("info", ref, "--arch-kwargs", "img_size=64,depth=1", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["input_shape"] == [1, 3, 64, 64]
