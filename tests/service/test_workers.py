"""The bridge as a library: Workers validates as BatchValidator does."""

from __future__ import annotations

from pathlib import Path

from facturflow.rules import parse_rule_sets
from facturflow.service.workers import Workers
from facturflow.validation import BatchValidator
from facturflow.validation.verdict_cache import VerdictCache
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


def test_workers_look_up_the_verdict_cache_and_their_workers_store(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "verdicts")
    data = (FIXTURES / "invalid" / "br-co-10-line-sum.xml").read_bytes()
    workers = Workers(packs=(), jobs=1, timeout=120, limits=DEFAULT_LIMITS, queue=4, cache=cache)
    workers.start()
    try:
        assert workers.ready.wait(300)
        assert cache.info().entries == 0  # the warm-up's verdicts are not kept
        selection = parse_rule_sets(None)
        assert workers.cached(data, selection, "a.xml") is None
        fresh = workers.validate(workers.scratch(data), selection).result(300)
        found = workers.cached(data, selection, "b.xml")
        assert found is not None and found.cached and found.path == "b.xml"
        assert found.findings == fresh.findings and not fresh.cached
        assert (cache.stats["hits"], cache.stats["misses"]) == (1, 1)
    finally:
        workers.close()
