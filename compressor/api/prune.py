"""``compress prune``: load, score and prune with one registry method, report, save."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from compressor.api.common import ModelSpec, Progress, as_spec, quiet
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext

__all__ = ["PruneConfig", "PruneResult", "prune"]


@dataclass(frozen=True)
class PruneResult:
    """Before/after figures, per-layer widths and what the method reported."""

    output: str | None
    method: str
    kind: str
    before: dict[str, Any]
    after: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def landed(self) -> bool:
        """False when a target was given and not met (the closest plan was written); else True."""
        return self.figures.get("landed", True) is not False

    def to_json(self) -> dict[str, Any]:
        """Flat ``*_before`` / ``*_after`` keys plus the details."""
        flat = {f"{k}_before": v for k, v in self.before.items()}
        flat.update({f"{k}_after": v for k, v in self.after.items()})
        body = asdict(self)
        del body["before"], body["after"]
        return {**body, **flat, **self.figures}


def prune(
    model: ModelSpec | str,
    config: PruneConfig,
    output: str | None = None,
    *,
    progress: Progress | None = None,
    dry_run: bool = False,
    measure_input: bool = True,
) -> PruneResult:
    """Prune ``model`` with ``config``; write the artifact to ``output`` unless ``dry_run``.

    With a target (``cfg.budget``) the result's ``landed`` says whether it was met; when it was not,
    the closest plan is still written (the CLI exits 1).

    ``measure_input=False`` skips the input model's test accuracy (recipes and sweeps measure the
    baseline once, not once per point). Under ``torchrun --nproc-per-node N`` every process prunes
    the same way (methods are seeded), fine-tuning trains with DDP, and only rank 0 writes ``output``.
    """
    from compressor import registry
    from compressor.errors import UsageError
    from compressor.io.atomic import check_writable

    model, cfg, log = as_spec(model), config, progress or quiet
    info = registry.method(cfg.method)
    if not dry_run:
        if not output:
            raise UsageError("no output file", "add -o OUT.pt (or --dry-run to only list the plan)")
        check_writable(output)
    import torch

    torch.manual_seed(cfg.seed)  # a reference (sample:mlp) starts from the same init every run/rank
    handle = model.load()
    from compressor import outputs

    shapes = outputs.model_shapes(handle.module, handle.example_input())
    outputs.check_allowed(cfg.allow_output_change, list(shapes))
    impl = info.load()
    if dry_run:
        before = measure(handle, None, source_file(model, handle), compressed=False)
        if cfg.budget is not None:  # the first plan the budget engine would measure, predicted
            rows, figures = impl.preview(handle, cfg, PruneContext(log=log))
            after = {**before, "macs": figures["predicted_macs"], "params": figures["predicted_params"]}
            return PruneResult(
                None, cfg.method, info.kind, before, after, figures=figures, plan=rows, dry_run=True
            )
        plan = impl.plan(handle, cfg) if hasattr(impl, "plan") else []
        return PruneResult(None, cfg.method, info.kind, before, before, plan=plan, dry_run=True)
    from compressor.api.distill import device_kind
    from compressor.train import distributed

    assert output is not None  # checked above for every run that is not a dry run
    with distributed.process_group(device_kind(cfg.device)):  # fine-tuning trains with DDP under torchrun
        return _prune(model, handle, impl, info.kind, cfg, output, log, measure_input, shapes)


def _prune(
    model: ModelSpec,
    handle,
    impl,
    kind: str,
    cfg: PruneConfig,
    output: str,
    log,
    measure_input: bool,
    shapes: dict[str, list[int]],
) -> PruneResult:
    """Measure, prune (and fine-tune), check every output kept its shape (``shapes``, unless
    allowed to change), record; only rank 0 writes ``output`` under torchrun."""
    from compressor import outputs
    from compressor.io.artifact import save_artifact
    from compressor.stats import file_sizes
    from compressor.train import distributed

    ctx = make_context(cfg, log)
    if ctx.test is not None:  # accuracy and fine-tuning need labels the head can score
        from compressor.train.loop import check_classes

        check_classes(handle.module, ctx.test)
    masked = kind == "unstructured"  # only masks create zeros worth compressing
    before = measure(
        handle, ctx.test if measure_input else None, source_file(model, handle), compressed=masked
    )
    widths_before = _widths(handle.module)
    report: MethodReport = impl.run(handle, cfg, ctx)
    report.notes += outputs.check_kept(
        shapes, outputs.model_shapes(handle.module, handle.example_input()), cfg.allow_output_change
    )
    after = measure(handle, ctx.test, sizes=False)
    handle.record("prune", cfg.method, _params(cfg), {**after, **report.figures})
    if distributed.is_main():
        save_artifact(handle, output)
        after.update(file_sizes(output, compressed=masked))
    distributed.barrier()
    return PruneResult(
        output,
        cfg.method,
        kind,
        before,
        after,
        _layer_rows(widths_before, _widths(handle.module), report.layers),
        report.figures,
        report.steps,
        report.notes,
    )


def make_context(cfg: PruneConfig, log) -> PruneContext:
    """Data splits and a fine-tune function bound to ``cfg``."""
    ctx = PruneContext(log=log)
    if cfg.data:
        from compressor.io.data import load_data

        ctx.train, ctx.val = load_data(cfg.data, "train"), load_data(cfg.data, "val")
        ctx.test = load_data(cfg.data, "test")
        teacher_loss = _teacher_loss(cfg)
        calls = [0]

        def finetune(handle, epochs: int) -> dict[str, Any]:
            from compressor.train import fit

            # capped fine-tunes (a budget spread over steps) each see different batches
            seed = cfg.seed + calls[0] if cfg.finetune_batches else cfg.seed
            calls[0] += 1
            tc = cfg.train_config(epochs, seed=seed, max_batches=cfg.finetune_batches)
            # a capped single-epoch fine-tune keeps its only epoch: no held-out pass to choose one
            val = None if cfg.finetune_batches and epochs == 1 else ctx.val
            result = fit(
                handle.module,
                ctx.train,
                tc,
                val=val,
                masks=handle.masks,
                loss_fn=teacher_loss,
                description="fine-tune",
            )
            return {"best_epoch": result.best_epoch, "val_accuracy": result.best_val_accuracy}

        ctx.finetune = finetune
    return ctx


def _teacher_loss(cfg: PruneConfig):
    """Hinton's KD loss against ``--distill-from`` (None: plain cross-entropy fine-tuning)."""
    if not cfg.distill_from:
        return None
    from compressor.train.distill import distill_loss_fn

    teacher = ModelSpec(cfg.distill_from).load().module
    return distill_loss_fn(teacher, cfg.temperature, cfg.alpha)


def source_file(model: ModelSpec, handle) -> str | None:
    """The input file, when the model came from one (not from a reference)."""
    return model.path if handle.source_kind != "reference" else None


def measure(
    handle, data, file: str | None = None, compressed: bool = False, sizes: bool = True
) -> dict[str, Any]:
    """params, nonzero_params, sparsity, macs, sizes of ``file`` (+ accuracy on ``data``)."""
    from compressor.stats import model_figures

    figures = model_figures(handle.module, handle.example_input(), file, compressed, sizes)
    if data is not None:
        from compressor.train.loop import evaluate

        figures["accuracy"] = evaluate(handle.module, data)["accuracy"]
    return figures


def _widths(module) -> dict[str, int]:
    from compressor.stats import layer_table

    return {row["name"]: row["shape"][0] for row in layer_table(module)}


def _layer_rows(
    before: dict[str, int], after: dict[str, int], extra: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "channels_before": width,
            "channels_after": after.get(name, 0),
            **(extra or {}).get(name, {}),
        }
        for name, width in before.items()
    ]


def _params(cfg: PruneConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(cfg).items() if v not in (None, (), {})}
