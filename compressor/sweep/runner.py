"""Running sweep points: in this process (``--jobs 1``) or in a pool of processes, one bar over all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Todo = list[tuple[str, dict[str, Any]]]
PointRunner = Callable[[str, dict[str, Any], str], dict[str, Any]]


def run_all(
    todo: Todo,
    points_dir: str,
    jobs: int,
    total: int,
    run_point: PointRunner,
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield each point's record as it finishes; the bar counts all ``total`` points of the sweep.

    ``run_point(pid, mapping, points_dir)`` runs one point; with ``jobs > 1`` it is sent to
    worker processes, so it must be a module-level function.
    """
    from compressor.progress import progress

    with progress(total, "sweep") as advance:
        advance(total - len(todo), point="resumed" if len(todo) < total else "")
        runs = (
            _serial(todo, points_dir, run_point)
            if jobs == 1 or len(todo) <= 1
            else _pool(todo, points_dir, jobs, run_point)
        )
        for record in runs:
            advance(1, point=record["id"], status=record["status"])
            if on_point is not None:
                on_point(record)
            yield record


def _serial(todo: Todo, points_dir: str, run_point: PointRunner) -> Iterator[dict[str, Any]]:
    for pid, mapping in todo:
        yield run_point(pid, mapping, points_dir)


def _pool(todo: Todo, points_dir: str, jobs: int, run_point: PointRunner) -> Iterator[dict[str, Any]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(
        min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
    )
    try:
        futures = [pool.submit(run_point, pid, mapping, points_dir) for pid, mapping in todo]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_init() -> None:
    """One torch thread per worker (the recipes pin it too) and no bars from workers."""
    import torch

    from compressor.progress import suppress

    torch.set_num_threads(1)
    suppress()
