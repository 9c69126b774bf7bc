"""NVIDIA Model Optimizer FastNAS on a pickled model, in the peer's own environment.

Runs with a separate interpreter that has ``nvidia-modelopt[torch]==0.47.0``, ``requests``,
``huggingface_hub`` and ``torchprofile==0.0.4`` (never a dependency of compressor)::

    PYTHONPATH=. PEER/bin/python -m benchmarks.peers.fastnas_prune --model dense.pkl \\
        --data data.pt --flops 47.5% --divisor 8 --checkpoint search.pth --out subnet.pkl

``--model``: a whole pickled ``nn.Module``; ``--data``: ``{"calib": x, "val_x": x, "val_y": y}``
(normalised tensors). The search maximises top-1 accuracy on ``val_x`` under the FLOPs limit
(BatchNorm statistics recalibrated on ``calib`` batches for every candidate, as FastNAS does);
the exported subnet (plain ``nn.Module``) is pickled to ``--out``. ``--checkpoint`` keeps the
search's per-layer sensitivity, so later limits on the same model reuse it.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(
            int((model(x[i : i + 500]).argmax(1) == y[i : i + 500]).sum()) for i in range(0, len(x), 500)
        )
    return hits / len(x)


def main() -> None:
    import modelopt.torch.prune as mtp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--flops", required=True, help="upper bound: a number or a percentage of the dense model")
    p.add_argument("--divisor", type=int, default=8, help="channel counts are multiples of this")
    p.add_argument("--calib-batches", type=int, default=20)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.manual_seed(0)
    model = torch.load(args.model, weights_only=False)
    data = torch.load(args.data)
    calib = [data["calib"][i : i + 128] for i in range(0, len(data["calib"]), 128)]
    conv = {
        "channels_ratio": tuple(0.05 * i for i in range(1, 21)),
        "kernel_size": (),
        "channel_divisor": args.divisor,
    }
    feat = {"features_ratio": tuple(0.05 * i for i in range(1, 21)), "feature_divisor": args.divisor}
    mode = [("fastnas", {"nn.Conv2d": {"*": conv}, "nn.BatchNorm2d": {"*": feat}, "nn.Linear": {"*": feat}})]
    config = {
        "data_loader": calib,
        "max_iter_data_loader": args.calib_batches,
        "collect_func": lambda batch: batch,
        "score_func": lambda m: accuracy(m, data["val_x"], data["val_y"]),
        "verbose": False,
    }
    if args.checkpoint:
        config["checkpoint"] = args.checkpoint
    start = time.perf_counter()
    subnet, _ = mtp.prune(
        model, mode, {"flops": args.flops}, torch.randn(1, *data["val_x"].shape[1:]), config
    )
    seconds = time.perf_counter() - start
    import modelopt.torch.nas as mtn

    # mtp.prune exports the best subnet in place; export again only if dynamic modules remain
    dynamic = any(type(m).__module__.startswith("modelopt") for m in subnet.modules())
    plain = mtn.export(subnet) if dynamic else subnet
    torch.save(plain, args.out)
    kinds = sorted({type(m).__module__.split(".")[0] for m in plain.modules()})
    print(
        json.dumps(
            {
                "seconds": seconds,
                "module_packages": kinds,
                "val_accuracy": accuracy(plain, data["val_x"], data["val_y"]),
            }
        )
    )


if __name__ == "__main__":
    main()
