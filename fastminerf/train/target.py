"""Train until a held-out quality target: the time-to-quality measurement.

:func:`train_to_target` steps a :class:`~fastminerf.train.trainer.Trainer` and evaluates
the held-out frames on a geometric schedule (every ~15 % more steps, so the relative
resolution of the time is the same for a 1-minute and a 10-hour run) until the mean
held-out metric reaches the target, a time budget or a step cap. Only training steps are
on the clock (wall and process CPU time); evaluations are not. It backs
``benchmarks/train_time.py`` (joint vs single-identity cost curves) and is useful on its
own, e.g. "train until 30 dB held-out PSNR, at most 2 h"::

    trainer = Trainer(cfg, cast, run_dir)
    res = train_to_target(trainer, 30.0, max_seconds=7200)
    print(res.reached, res.train_seconds, res.steps)
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

from ..eval.evaluate import evaluate_cast

METRICS = ("psnr", "psnr_masked", "ssim")


def eval_steps(first: int = 25, growth: float = 1.15, min_gap: int = 25) -> Iterator[int]:
    """Steps at which to evaluate: ``first``, then ``max(prev + min_gap, ceil(prev · growth))``.

    >>> from itertools import islice
    >>> list(islice(eval_steps(25, 1.5, 10), 5))
    [25, 38, 57, 86, 129]
    """
    if first < 1 or growth < 1 or min_gap < 1:
        raise ValueError(f"eval_steps needs first ≥ 1, growth ≥ 1, min_gap ≥ 1 (got {first}, {growth}, {min_gap})")
    step = first
    while True:
        yield step
        step = max(step + min_gap, math.ceil(step * growth))


def heldout_metric(trainer, metric: str = "psnr", frames_per_identity: int | None = None) -> float:
    """Mean ``metric`` over the held-out frames of the trainer's cast (no transfer evaluation)."""
    avatar = trainer.avatar
    avatar.eval()
    try:
        res = evaluate_cast(avatar, trainer.cast, "test", frames_per_identity, trainer.cfg.render.eval_background,
                            transfer=False)
    finally:
        avatar.train()
    return float(res[metric])


@dataclass
class EvalPoint:
    """One held-out evaluation: the step, training time so far (wall and process CPU,
    evaluations excluded) and the metric's value."""

    step: int
    train_seconds: float
    cpu_seconds: float
    value: float


@dataclass
class TargetResult:
    """What :func:`train_to_target` measured.

    Attributes:
        target, metric: the goal (e.g. 30.0, "psnr").
        reached: whether an evaluation reached it.
        stop: why the loop ended: "target", "time budget" or "step cap".
        steps, train_seconds, cpu_seconds: at the first evaluation at/above the target (None
            when not reached). The target was crossed between the previous evaluation and this
            one: ``lower_steps`` / ``lower_seconds`` bound it from below.
        total_steps, total_train_seconds, total_cpu_seconds: the whole run (training only).
        eval_seconds: wall time spent in the held-out evaluations (not on the clock).
        best: the best evaluated value. history: every evaluation, in order.
        snapshot: what the ``snapshot`` callable returned, taken at ``snapshot_step``
            (or at the end of the run when it stopped earlier; ``snapshot_step`` says when).
    """

    target: float
    metric: str
    reached: bool = False
    stop: str = ""
    steps: int | None = None
    train_seconds: float | None = None
    cpu_seconds: float | None = None
    lower_steps: int | None = None
    lower_seconds: float | None = None
    total_steps: int = 0
    total_train_seconds: float = 0.0
    total_cpu_seconds: float = 0.0
    eval_seconds: float = 0.0
    best: float | None = None
    history: list[EvalPoint] = field(default_factory=list)
    snapshot: dict | None = None
    snapshot_step: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def train_to_target(trainer, target: float, *, metric: str = "psnr", frames_per_identity: int | None = None,
                    max_seconds: float | None = None, max_steps: int | None = None,
                    schedule: Iterable[int] | None = None, snapshot_step: int | None = None,
                    snapshot: Callable[[object], dict] | None = None,
                    on_eval: Callable[[EvalPoint], None] | None = None) -> TargetResult:
    """Train ``trainer`` until its mean held-out ``metric`` reaches ``target``.

    Args:
        trainer: a Trainer (its cast's test split is the held-out set).
        target: the value to reach (dB for PSNR). metric: "psnr", "psnr_masked" or "ssim".
        frames_per_identity: held-out frames per identity in each evaluation (None = all).
        max_seconds: budget of training wall time (evaluations excluded); None = none.
        max_steps: cap on ``trainer.step``; None = ``trainer.cfg.train.steps``.
        schedule: increasing steps at which to evaluate (default :func:`eval_steps`).
        snapshot_step, snapshot: call ``snapshot(trainer)`` (off the clock) when the run is at
            ``snapshot_step``; the run then goes on until both the target is reached and the
            snapshot is taken (the fixed-budget quality of the same run), or a budget ends.
        on_eval: called with every :class:`EvalPoint` (progress lines).
    Returns:
        A :class:`TargetResult`. When the run stops without reaching the target it ends with
        an evaluation of its last step (unless one was just made).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    cap = int(max_steps if max_steps is not None else trainer.cfg.train.steps)
    res = TargetResult(float(target), metric)
    sched = iter(schedule if schedule is not None else eval_steps())
    next_eval = next(sched, None)
    wall = cpu = 0.0
    last_point: EvalPoint | None = None

    def evaluate() -> EvalPoint:
        nonlocal last_point
        t0 = time.perf_counter()
        value = heldout_metric(trainer, metric, frames_per_identity)
        res.eval_seconds += time.perf_counter() - t0
        point = EvalPoint(trainer.step, round(wall, 3), round(cpu, 3), value)
        res.history.append(point)
        res.best = value if res.best is None else max(res.best, value)
        if value >= target and not res.reached:
            res.reached, res.steps, res.train_seconds, res.cpu_seconds = True, point.step, point.train_seconds, point.cpu_seconds
            if last_point is not None:
                res.lower_steps, res.lower_seconds = last_point.step, last_point.train_seconds
        last_point = point
        if on_eval is not None:
            on_eval(point)
        return point

    def take_snapshot() -> None:
        if snapshot is not None and res.snapshot is None:
            res.snapshot, res.snapshot_step = snapshot(trainer), trainer.step

    while True:
        if res.reached and (snapshot is None or res.snapshot is not None):
            res.stop = "target"
            break
        if trainer.step >= cap:
            res.stop = "step cap"
            break
        if max_seconds is not None and wall >= max_seconds:
            res.stop = "time budget"
            break
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.train_step()
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if snapshot_step is not None and trainer.step >= snapshot_step:
            take_snapshot()
        if not res.reached and next_eval is not None and trainer.step >= next_eval:
            while next_eval is not None and next_eval <= trainer.step:
                next_eval = next(sched, None)
            evaluate()
    if not res.reached and (last_point is None or last_point.step != trainer.step):
        evaluate()
    take_snapshot()
    res.total_steps, res.total_train_seconds, res.total_cpu_seconds = trainer.step, round(wall, 3), round(cpu, 3)
    return res
