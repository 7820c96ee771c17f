"""The bridge as a library: Workers validates as BatchValidator does."""

from __future__ import annotations

from facturflow.rules import parse_rule_sets
from facturflow.service.workers import Workers
from facturflow.validate import BatchValidator
from facturflow.xmlsafe import DEFAULT_LIMITS

from .conftest import FIXTURES


def test_workers_give_batchvalidators_reports() -> None:
    files = [FIXTURES / "invalid" / "br-co-10-line-sum.xml",
             FIXTURES / "valid" / "fr-invoice-ubl-en16931.xml",
             FIXTURES / "invalid" / "not-well-formed.xml"]
    with BatchValidator(jobs=1) as validator:
        expected = list(validator.validate_many(files))
    workers = Workers(packs=(), jobs=2, timeout=120, limits=DEFAULT_LIMITS, queue=4)
    workers.start()
    try:
        assert workers.ready.wait(300)
        selection = parse_rule_sets(None)
        for path, want in zip(files, expected, strict=True):
            got = workers.validate(workers.scratch(path.read_bytes()), selection).result(300)
            assert got.ok == want.ok and got.error == want.error
            assert [(f.rule, f.severity, f.location) for f in got.findings] == [
                (f.rule, f.severity, f.location) for f in want.findings]
        # Nothing left behind: no request waiting, none in flight, no worker replaced.
        assert (workers.waiting(), workers.in_flight(), workers.restarts()) == (0, 0, 0)
        # The queue bound (503 QueueFull) is tested end to end, with a stuck rule pack holding
        # the worker (test_limits.py): without one, the order here would be a race.
    finally:
        workers.close()
