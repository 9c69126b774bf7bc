"""Choose how Wanda's --scope global compares layers: validation accuracy of four variants.

Variants: each layer's dense scores used as they are ("raw") or divided by the layer's mean
("mean"), then each layer ranked per layer or per output row; global magnitude (with BatchNorm
recalibration on BatchNorm models) alongside. Trained sample models, no fine-tuning, scored on
5000 images of the Fashion-MNIST *validation* split (not the test split the results report), so
the choice does not tune on the test set. Rows: results/wanda_global_variants_val.jsonl.

    python -m benchmarks.wanda_global_variants resnet_small,vgg_bn,tiny_vit,mlp,simple_cnn \
        benchmarks/results/wanda_global_variants_val.jsonl

Command (from the repository root; further arguments pass through)::

    python -m benchmarks run wanda_global_variants   # -> benchmarks/results/wanda_global_variants_val.jsonl
"""

import itertools
import json
import sys

from compressor.io.artifact import load_model
from compressor.io.data import load_data
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.batchnorm import batchnorms
from compressor.pruning.unstructured import magnitude, wanda
from compressor.pruning.unstructured.settings import WandaConfig
from compressor.train.loop import evaluate

VARIANTS = [("wanda", norm, rank) for norm in ("raw", "mean") for rank in ("layer", "row")]


def prune(model: str, method: str, norm, rank, sparsity: float, ends: bool, train):
    handle = load_model(f"sample_models/{model}.pt")
    if method == "wanda":
        cfg = PruneConfig(
            "wanda",
            sparsity=sparsity,
            scope="global",
            data="fashion-mnist",
            keep_first_last=ends,
            settings=WandaConfig(global_normalize=norm, global_ranking=rank),
        )
        report = wanda.run(handle, cfg, PruneContext(train=train))
        return handle, report, report.figures["wanda_layer_allocation"]
    bn = bool(batchnorms(handle.module)) or None
    cfg = PruneConfig(
        "magnitude",
        sparsity=sparsity,
        scope="global",
        data="fashion-mnist",
        keep_first_last=ends,
        recalibrate_bn=bn,
        calib_samples=128,
    )
    return handle, magnitude.run(handle, cfg, PruneContext(train=train)), None


def main(models: str, out_path: str) -> None:
    train, val = load_data("fashion-mnist", "train"), load_data("fashion-mnist", "val")
    with open(out_path, "a") as out:
        for model in models.split(","):
            for ends, s in itertools.product((True, False), (0.5, 0.6, 0.7)):
                for method, norm, rank in VARIANTS + [("magnitude", None, None)]:
                    handle, report, alloc = prune(model, method, norm, rank, s, ends, train)
                    acc = evaluate(handle.module, val, limit=5000)["accuracy"]
                    row = dict(
                        model=model,
                        ends=ends,
                        s=s,
                        method=method,
                        norm=norm,
                        rank=rank,
                        acc=acc,
                        sparsity=report.figures["layer_sparsity"],
                        alloc=alloc,
                    )
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    print(model, ends, s, method, norm, rank, round(acc, 4), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
