"""One file on several cores: its stylesheets shared out between worker processes.

A fresh process validating one invoice spends most of its time compiling stylesheets (0.3 to
0.8 s each), and Saxon compiles one at a time per process. When a single file goes to the
worker pool, each worker instead detects the file itself and applies its own share of the
planned steps (the most expensive stylesheets first, each to the least loaded worker); the
parent puts the shares back in plan order, so the report is the one a single process gives.
A share that fails (time limit, dead worker, unreadable input) makes the whole report that
failure: the layer fails closed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..detection import detect
from ..errors import InputError
from ..rules import Step, plan
from . import pool
from .report import Finding, LayerRun, Report

# Compiling an XSD costs next to nothing beside a Schematron stylesheet.
_XSD_COST = 1


class PartJob(str):
    """A file name that also says which share of its steps a worker applies.

    It is a `str`, so the pool treats it as the file name (in reports of a worker that died
    or ran out of time) and sends it to a worker as it sends a name.
    """

    part: int
    parts: int

    def __new__(cls, name: str, part: int, parts: int) -> PartJob:
        job = super().__new__(cls, name)
        job.part, job.parts = part, parts
        return job

    def __reduce__(self) -> tuple[Any, ...]:
        return (PartJob, (str(self), self.part, self.parts))


@dataclass(frozen=True)
class PartResult:
    """One worker's share of a file: the steps it applied, with their layers and findings."""

    header: tuple[list[LayerRun], list[Finding]] | None
    results: tuple[Any, ...]  # StepResult
    report: Report  # the document's identity (path, syntax, profile, warnings)


def _cost(step: Step) -> int:
    if step.layer == "xsd":
        return _XSD_COST
    try:
        return max(_XSD_COST + 1, os.path.getsize(step.artefact.path))
    except OSError:
        return _XSD_COST + 1


def assign(steps: Sequence[Step], parts: int) -> list[list[int]]:
    """Share the step indices out: costliest first, each to the least loaded part."""
    shares: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for index in sorted(range(len(steps)), key=lambda i: (-_cost(steps[i]), i)):
        target = min(range(parts), key=lambda p: (loads[p], p))
        shares[target].append(index)
        loads[target] += _cost(steps[index])
    return [sorted(share) for share in shares]


def run_part(job: PartJob) -> Report | PartResult:
    """Apply one share of a file's steps (in a worker set up by the pool's initialiser)."""
    from . import (
        _worker_limits,
        _worker_packs,
        _worker_rules,
        assemble,
        run_header,
        run_steps,
        unreadable_report,
    )

    name = str(job)
    try:
        document = detect(name, limits=_worker_limits, lifecycle=True)
    except InputError as exc:
        return unreadable_report(exc.source or name, exc)
    steps, notes = plan(document, _worker_rules, _worker_packs)
    mine = assign(steps, job.parts)[job.part]
    header = run_header(document, _worker_rules, _worker_packs) if job.part == 0 else None
    results = run_steps(document, steps, mine)
    identity = assemble(document, _worker_rules, notes, ([], []), [])
    return PartResult(header, tuple(results), identity)


def _task(job: str) -> Any:
    from . import _validate_path

    try:
        return run_part(job) if isinstance(job, PartJob) else _validate_path(job)
    except Exception as exc:  # a bug must not lose the file: report it like the batch does
        return pool.failed_report(str(job), f"internal error: {type(exc).__name__}: {exc}")


def merge(parts: Sequence[Report | PartResult]) -> Report:
    """The single-process report from every share, or the first share's failure."""
    for part in parts:
        if isinstance(part, Report):
            return replace(part, path=str(part.path))
    results = [r for part in parts if isinstance(part, PartResult) for r in part.results]
    first = parts[0]
    assert isinstance(first, PartResult) and first.header is not None
    from . import combine

    layers, findings = combine(first.header, results)
    return replace(first.report, findings=findings, layers=layers)


def validate_one(
    name: str,
    init_args: tuple[Any, ...],
    parts: int,
    timeout: float | None,
) -> Report:
    """Validate one file on `parts` worker processes, each applying a share of its steps."""
    from . import _init_worker

    jobs = [PartJob(name, part, parts) for part in range(parts)]
    shares: list[Any] = list(pool.run(jobs, _task, _init_worker, init_args, parts, timeout))
    return merge(shares)
