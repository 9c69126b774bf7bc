"""Train the sample models on Fashion-MNIST and write ``sample_models/<name>.pt`` artifacts.

Seeded and deterministic on CPU for a given torch build. Usage::

    python -m sample_models.train                 # all models
    python -m sample_models.train simple_cnn mlp  # some

Each artifact records its recipe and its test accuracy in the history and the metrics.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from compressor.io.artifact import save_artifact
from compressor.io.data import load_data
from compressor.io.refs import build
from compressor.model import ModelHandle
from compressor.train import TrainConfig, evaluate, fit

HERE = Path(__file__).parent
RECIPES: dict[str, TrainConfig] = {
    "simple_cnn": TrainConfig(epochs=6, lr=0.05, weight_decay=5e-4, optimizer="sgd", schedule="cosine"),
    "resnet_small": TrainConfig(epochs=8, lr=0.1, weight_decay=5e-4, optimizer="sgd", schedule="cosine"),
    "resnet_wide": TrainConfig(epochs=10, lr=0.1, weight_decay=5e-4, optimizer="sgd", schedule="cosine"),
    "mobilenet_small": TrainConfig(epochs=6, lr=0.1, weight_decay=5e-4, optimizer="sgd", schedule="cosine"),
    "vgg_bn": TrainConfig(epochs=6, lr=0.1, weight_decay=5e-4, optimizer="sgd", schedule="cosine"),
    "mlp": TrainConfig(epochs=8, lr=0.05, weight_decay=1e-4, optimizer="sgd", schedule="cosine"),
    "tiny_vit": TrainConfig(epochs=12, lr=2e-3, weight_decay=0.05, optimizer="adamw", schedule="cosine"),
}


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random 2-pixel shifts and horizontal flips (same for every run of a seed)."""
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=float(x.min()))
    dx, dy = torch.randint(0, 5, (2,)).tolist()
    x = padded[:, :, dy : dy + 28, dx : dx + 28]
    flip = torch.rand(x.shape[0]) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def train_one(name: str) -> dict[str, float]:
    """Train one sample model and save its artifact; return its figures."""
    torch.manual_seed(0)
    cfg = RECIPES[name]
    train, val, test = (load_data("fashion-mnist", s) for s in ("train", "val", "test"))
    ref = f"sample:{name}"
    model = build(ref)
    start = time.time()
    result = fit(model, train, cfg, val=val, batch_transform=augment, description=name)
    figures = evaluate(model, test)
    metrics = {
        "accuracy": figures["accuracy"],
        "loss": figures["loss"],
        "eval_data": "fashion-mnist/test",
        "best_epoch": result.best_epoch,
        "train_seconds": round(time.time() - start, 1),
    }
    handle = ModelHandle(
        module=model, ref=ref, input_shape=(1, 1, 28, 28), mean=train.mean, std=train.std, source=ref
    )
    params = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    handle.record("train", "sample_models.train", params, metrics)
    save_artifact(handle, HERE / f"{name}.pt")
    return metrics


def main(names: list[str]) -> None:
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    for name in names or list(RECIPES):
        figures = train_one(name)
        print(json.dumps({"model": name, **figures}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
