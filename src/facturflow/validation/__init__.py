"""Validate invoices: XML well-formedness, XSD, Schematron (EN 16931, Factur-X, BR-FR) and PDF.

`validate()` checks one input and returns a Report; `validate_many()` checks a batch on a process
pool (saxonche holds the GIL during a transform, so threads would not help). Each takes a
`cache=VerdictCache(...)` (validation/verdict_cache.py) that returns the stored report of an input
already validated with the same bytes, rules, artefacts and version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..detection import Document, Source, detect, detect_bytes, read_source
from ..errors import (
    EmptyInputError,
    InputError,
    InputTooLargeError,
    MalformedPDFError,
    MalformedXMLError,
    NoInvoiceInPDFError,
    NotAnInvoiceError,
)
from ..rules import (
    RulePack,
    Step,
    effective,
    explicit_names,
    load_rule_pack,
    not_applicable,
    parse_rule_sets,
    plan,
)
from ..xmlsafe import DEFAULT_LIMITS, Limits
from . import pdf as pdf_layer
from . import pool, schematron, xsd
from .report import (
    LAYER_FAILED,
    RULES_NOT_APPLICABLE,
    RULES_NOT_IN_SCOPE,
    RULES_NOT_INSTALLED,
    Finding,
    LayerRun,
    Report,
    fatal_report,
)
from .verdict_cache import VerdictCache

__all__ = [
    "BatchValidator",
    "Finding",
    "Report",
    "VerdictCache",
    "validate",
    "validate_document",
    "validate_many",
]

_INPUT_RULES: tuple[tuple[type[InputError], str, str], ...] = (
    (EmptyInputError, "xml", "INPUT-EMPTY"),
    (InputTooLargeError, "xml", "INPUT-TOO-LARGE"),
    (MalformedXMLError, "xml", "XML-MALFORMED"),
    (MalformedPDFError, "pdf", "PDF-UNREADABLE"),
    (NoInvoiceInPDFError, "pdf", "PDF-NO-INVOICE"),
    (NotAnInvoiceError, "xml", "NOT-AN-INVOICE"),
)


def _packs(rule_packs: Iterable[str | os.PathLike[str] | RulePack]) -> list[RulePack]:
    return [p if isinstance(p, RulePack) else load_rule_pack(p) for p in rule_packs]


def unreadable_report(name: str, exc: InputError) -> Report:
    """The report of an input that cannot be read: not valid, with the error and a finding."""
    layer, rule = "xml", "INPUT-UNREADABLE"
    for cls, cls_layer, cls_rule in _INPUT_RULES:
        if isinstance(exc, cls):
            layer, rule = cls_layer, cls_rule
            break
    return fatal_report(name, layer, rule, exc.message, error=exc.message,  # type: ignore[arg-type]
                        error_type=type(exc).__name__)


def validate(
    source: Source | Document,
    rules: str | Iterable[str] | None = None,
    *,
    rule_packs: Iterable[str | os.PathLike[str] | RulePack] = (),
    limits: Limits = DEFAULT_LIMITS,
    french_rules: str | None = None,
    as_of: dt.date | str | None = None,
    cache: VerdictCache | None = None,
) -> Report:
    """Validate one invoice (path, bytes, file object or detected Document).

    `rules` selects rule sets by name (see facturflow.rules; default: XSD, EN 16931 and the
    Factur-X profile rules, plus the French, XRechnung or Peppol BIS rules when the invoice is
    in their scope). `french_rules` ("fatal" or "warning") or `as_of` (a date) pick the build of
    the French rules (see facturflow.rules_calendar). An unreadable input gives a Report with
    `error` set, never an exception.
    An unknown name raises UnknownRuleSetError (a ValueError), an empty selection ("" or [])
    its subclass EmptyRuleSelectionError; a malformed rule pack raises RulePackError. A
    selection none of whose sets applies to the input (`rules="pdf"` on an XML file) gives a
    Report that is not ok, with a fatal RULES-NOT-APPLICABLE finding saying why.
    With a `cache` (a VerdictCache), an input validated before with the same bytes, selection,
    artefacts and version gives the stored report (`cached` True), and a complete verdict is
    stored (a Document given as such is not cached: its bytes are not known).
    """
    packs = _packs(rule_packs)
    rule_sets = parse_rule_sets(rules, packs, french_build=french_rules, as_of=as_of)
    if cache is not None and not isinstance(source, Document):
        return _validate_cached(source, rule_sets, packs, limits, cache)
    if isinstance(source, Document):
        document = source
    else:
        try:
            document = detect(source, limits=limits, lifecycle=True)
        except InputError as exc:
            return unreadable_report(exc.source or _name_of(source), exc)
    return validate_document(document, rule_sets, packs)


def _validate_cached(
    source: Source, rule_sets: Any, packs: list[RulePack], limits: Limits, cache: VerdictCache
) -> Report:
    """validate() through the cache: the bytes read once are the ones keyed and validated."""
    try:
        data, name = read_source(source, limits=limits)
    except InputError as exc:
        return unreadable_report(exc.source or _name_of(source), exc)
    key = cache.key(data, rule_sets, packs, limits) if cache.problem is None else None
    if key is not None:
        found = cache.get(key, name, rule_sets)
        if found is not None:
            return found
    try:
        document = detect_bytes(data, name=name, limits=limits, lifecycle=True)
    except InputError as exc:
        return unreadable_report(exc.source or name, exc)
    report = validate_document(document, rule_sets, packs)
    if key is not None:
        cache.put(key, report)
    return report


def _name_of(source: object) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return str(getattr(source, "name", "<bytes>"))


def validate_document(
    document: Document, rule_sets: Sequence[str], packs: Sequence[RulePack] = ()
) -> Report:
    """Run every applicable layer on one detected document."""
    steps, notes = plan(document, rule_sets, packs)
    header = run_header(document, rule_sets, packs)
    results = run_steps(document, steps, range(len(steps)))
    return assemble(document, rule_sets, notes, header, results)


@dataclass(frozen=True)
class StepResult:
    """What one planned step (an XSD or a stylesheet) found."""

    index: int
    layer: LayerRun
    findings: tuple[Finding, ...]


def selection_findings(
    document: Document, rule_sets: Sequence[str], packs: Sequence[RulePack] = ()
) -> list[Finding]:
    """What the rule selection leaves unjudged: a fatal finding when no selected set applies to
    the document (no XSD, Schematron or PDF layer would run: the file is then not valid), else a
    warning naming the sets the user named that do not apply; and one information finding per
    default set that the invoice's scope left out (RULES-NOT-IN-SCOPE)."""
    chosen = effective(document, rule_sets, packs)
    scoped = [
        Finding(layer="selection", rule=rule, severity="information", message=why)
        for rule, items in (
            (RULES_NOT_IN_SCOPE, chosen.not_in_scope),
            (RULES_NOT_INSTALLED, chosen.not_installed),
        )
        for _, why in items
    ]
    return _not_applicable_findings(document, chosen.rule_sets, packs) + scoped


def _not_applicable_findings(
    document: Document, rule_sets: Sequence[str], packs: Sequence[RulePack]
) -> list[Finding]:
    skipped = {
        name: reason
        for name in rule_sets
        if (reason := not_applicable(document, name, packs)) is not None
    }
    if not skipped:
        return []
    reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
    if len(skipped) == len(rule_sets):
        return [
            Finding(
                layer="selection",
                rule=RULES_NOT_APPLICABLE,
                severity="fatal",
                message="no selected rule set applies to this file, so no rule checked it: "
                + reasons,
            )
        ]
    explicit = explicit_names(rule_sets)
    named = {name: reason for name, reason in skipped.items() if name in explicit}
    if not named:
        return []  # sets implied by the default or 'all': not applying is expected
    return [
        Finding(
            layer="selection",
            rule=RULES_NOT_APPLICABLE,
            severity="warning",
            message="selected rule sets not applied to this file (they do not apply to it): "
            + "; ".join(f"{name}: {reason}" for name, reason in named.items()),
        )
    ]


def run_header(
    document: Document, rule_sets: Sequence[str], packs: Sequence[RulePack] = ()
) -> tuple[list[LayerRun], list[Finding]]:
    """The layers that precede the planned steps: the XML parser, the rule selection's findings
    (sets that do not apply), and the PDF rules."""
    layers = [LayerRun("xml", "xml", "facturflow hardened parser", "lxml", True)]
    findings: list[Finding] = selection_findings(document, rule_sets, packs)
    if document.container == "pdf" and "pdf" in rule_sets:
        started = time.perf_counter()
        findings.extend(pdf_layer.check(document))
        layers.append(
            LayerRun(
                "pdf",
                "pdf",
                "Factur-X 1.0 PDF rules",
                "1.0",
                True,
                seconds=time.perf_counter() - started,
            )
        )
    return layers, findings


def run_steps(
    document: Document, steps: Sequence[Step], indices: Iterable[int]
) -> list[StepResult]:
    """Apply the planned steps at `indices`, parsing the document for Saxon once."""
    results: list[StepResult] = []
    saxon_document: schematron.SaxonDocument | None = None
    for index in indices:
        step = steps[index]
        started = time.perf_counter()
        ran = True
        findings: list[Finding] = []
        if step.layer == "xsd":
            try:
                findings.extend(xsd.check(document.tree, step.artefact))
            except Exception as exc:  # an unreadable or broken schema must fail closed
                ran = False
                findings.append(
                    Finding(
                        layer="xsd",
                        rule=LAYER_FAILED,
                        severity="fatal",
                        message=f"{step.artefact.name} could not run: {exc}",
                        artefact=step.artefact.name,
                    )
                )
        else:
            if saxon_document is None:
                saxon_document = schematron.SaxonDocument(document.xml)
            layer_findings, ran = schematron.run(step.artefact, saxon_document, document.tree)
            findings.extend(layer_findings)
        layer = LayerRun(
            name=step.rule_set,
            layer=step.layer,
            artefact=step.artefact.name,
            version=step.artefact.version,
            ran=ran,
            seconds=time.perf_counter() - started,
            sha256=_sha256(step.artefact.path),
        )
        results.append(StepResult(index, layer, tuple(findings)))
    return results


@cache
def _sha256(path: Path) -> str | None:
    """The artefact file's sha256, once per process (None when it cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def selection_summary(
    document: Document, rule_sets: Sequence[str], packs: Sequence[RulePack] = ()
) -> dict[str, Any]:
    """How the rule sets were chosen for this document, for the report."""
    chosen = effective(document, rule_sets, packs)
    french = getattr(chosen.rule_sets, "french", None)
    return {
        "scope": chosen.scope.as_dict() if chosen.scope is not None else None,
        "french_rules": french.as_dict()
        # the French rules' build picks BR-FR for an invoice, BR-FR-CDV for a CDAR message
        if french is not None
        and ("cdar" if document.syntax == "cdar" else "fr-ctc") in chosen.rule_sets
        else None,
        "not_in_scope": [name for name, _ in chosen.not_in_scope],
        "not_installed": [name for name, _ in chosen.not_installed],
    }


def assemble(
    document: Document,
    rule_sets: Sequence[str],
    notes: Sequence[str],
    header: tuple[list[LayerRun], list[Finding]],
    results: Iterable[StepResult],
) -> Report:
    """The report of one document: the header layers, then each step's, in plan order."""
    layers, findings = combine(header, results)
    return Report(
        path=document.name,
        container=document.container,
        syntax=document.syntax,
        profile=document.profile,
        findings=findings,
        layers=layers,
        warnings=tuple([*document.warnings, *notes]),
        rule_sets=tuple(effective(document, rule_sets).rule_sets),
        selection=selection_summary(document, rule_sets),
        attachment=document.attachment_name,
    )


def combine(
    header: tuple[list[LayerRun], list[Finding]], results: Iterable[StepResult]
) -> tuple[tuple[LayerRun, ...], tuple[Finding, ...]]:
    """The header's layers and findings, then each step's, in plan order."""
    layers, findings = list(header[0]), list(header[1])
    for result in sorted(results, key=lambda r: r.index):
        layers.append(result.layer)
        findings.extend(result.findings)
    return tuple(layers), tuple(findings)


# --- batches -----------------------------------------------------------------------------------

_worker_rules: tuple[str, ...] = ()
_worker_packs: list[RulePack] = []
_worker_limits: Limits = DEFAULT_LIMITS
_worker_cache: VerdictCache | None = None


def _init_worker(
    rules: tuple[str, ...],
    packs: list[RulePack],
    limits: Limits,
    cache: VerdictCache | None = None,
) -> None:
    global _worker_rules, _worker_packs, _worker_limits, _worker_cache
    _worker_rules, _worker_packs, _worker_limits = rules, packs, limits
    _worker_cache = cache


def _validate_path(path: str) -> Report:
    try:
        # With a cache, the worker stores what it validated: the bytes it read are those keyed.
        return validate(
            path,
            _worker_rules,
            rule_packs=_worker_packs,
            limits=_worker_limits,
            cache=_worker_cache,
        )
    except Exception as exc:  # a bug must not kill the batch; the file is reported, not lost
        return internal_error_report(path, exc)


def validate_source(
    name: str, source: Source, config: tuple[Sequence[str], Sequence[RulePack], Limits]
) -> Report:
    """The batch entry point on a cluster worker (facturflow.cluster): `source` (a path, or the
    file's bytes named `name`) validated as `_validate_path` validates a file locally."""
    rules, packs, limits = config
    try:
        return validate(source, rules, rule_packs=packs, limits=limits)
    except Exception as exc:  # a bug must not kill the batch; the file is reported, not lost
        return internal_error_report(name, exc)


def internal_error_report(path: str, exc: Exception) -> Report:
    """The report of a file whose validation raised (a bug): invalid, never lost."""
    return Report(
        path=path,
        container=None,
        syntax=None,
        profile=None,
        findings=(
            Finding(
                layer="xml",
                rule=LAYER_FAILED,
                severity="fatal",
                message=f"internal error: {type(exc).__name__}: {exc}",
            ),
        ),
        error=f"internal error: {type(exc).__name__}: {exc}",
        error_type=type(exc).__name__,
    )


_SNIFF_BYTES = (4096, 65536)  # most files declare their root in the first 4 KB; some open
# with a long licence comment (the ZUGFeRD samples)


def syntax_family(path: str) -> str | None:
    """A cheap guess of a file's syntax family ("ubl" or "cii") from its first bytes, or None.

    Only used to keep each batch worker to one syntax (pool affinity): a wrong guess costs
    memory, never correctness, since the worker detects and validates the file in full.
    """
    # Non-blocking open and a regular-file check: a FIFO or a device named in a batch must not
    # hang the parent (the worker reports it as unreadable).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = b""
        for size in _SNIFF_BYTES:
            head += stream.read(size - len(head))
            if head.lstrip()[:5] == b"%PDF-":
                return "cii"  # Factur-X / ZUGFeRD: the embedded invoice is CII
            if b"urn:oasis:names:specification:ubl:schema:xsd:" in head:
                return "ubl"
            if b"urn:un:unece:uncefact:data:standard:CrossIndustry" in head:
                return "cii"
    return None


def default_jobs() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def validate_many(
    paths: Iterable[str | os.PathLike[str]],
    rules: str | Iterable[str] | None = None,
    *,
    rule_packs: Iterable[str | os.PathLike[str] | RulePack] = (),
    jobs: int | None = None,
    timeout: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
    recycle_after: int | None = None,
    max_worker_rss_mb: float | None = pool.DEFAULT_MAX_RSS_MB,
    syntax_affinity: bool = True,
    french_rules: str | None = None,
    as_of: dt.date | str | None = None,
    cache: VerdictCache | None = None,
    executor: Any = None,
    ship_bytes: bool | None = None,
) -> Iterator[Report]:
    """Validate many files, in input order, on `jobs` worker processes (default: all cores).

    Each worker keeps its compiled stylesheets for the whole batch. With `timeout` (seconds per
    file), a file that takes longer is stopped and reported with a fatal LAYER-FAILED finding,
    and the batch goes on; without it and with one job, files are validated in this process.
    A worker is replaced between two files after `recycle_after` files, or once its resident
    memory passes `max_worker_rss_mb` (None: no limit), so that a long batch cannot grow. With
    `syntax_affinity` (default), each worker keeps to files of one syntax (UBL or CII) and so
    holds only that syntax's stylesheets (see validation/pool.py). `french_rules` and `as_of` as
    for `validate`. With a `cache`, every file is looked up first and only the others go to
    workers: a batch of files all validated before starts no worker and compiles nothing.

    With `executor` (a dask.distributed Client, or any concurrent.futures.Executor), the files
    are validated in chunks on its workers instead (see facturflow.cluster; `jobs`, `timeout`,
    the recycling and affinity options then do not apply); `ship_bytes` says whether the files'
    bytes travel to the workers (True), their paths (False), or a probe decides (None).
    """
    packs = _packs(rule_packs)
    rule_sets = parse_rule_sets(rules, packs, french_build=french_rules, as_of=as_of)
    names = [str(Path(p)) for p in paths]
    if cache is not None and not cache.ready():
        cache = None
    if executor is not None:
        with BatchValidator(
            rule_sets, rule_packs=packs, limits=limits, cache=cache, executor=executor,
            ship_bytes=ship_bytes,
        ) as remote:
            yield from remote.validate_many(names)
        return
    jobs = default_jobs() if jobs is None else max(1, jobs)
    if timeout is None and (jobs == 1 or len(names) <= 1):
        _init_worker(rule_sets, packs, limits, cache)
        for name in names:
            yield _validate_path(name)
        return
    found: list[Report | None] = [None] * len(names)
    keys: list[str | None] = [None] * len(names)
    if cache is not None:
        for index, name in enumerate(names):
            found[index], keys[index] = cache.lookup(name, rule_sets, packs, limits)
    missed = [name for name, report in zip(names, found, strict=True) if report is None]
    if not missed:
        yield from (report for report in found if report is not None)
        return
    if len(missed) == 1 and jobs > 1:
        # One file: its stylesheets compile and run on several cores at once (see split.py).
        from .split import validate_one

        position = found.index(None)
        yield from found[:position]  # type: ignore[misc]
        report = validate_one(missed[0], (rule_sets, packs, limits), min(jobs, 2), timeout)
        key = keys[position]
        if cache is not None and key is not None:
            # Its workers read the file themselves: stored only if it still has the bytes keyed.
            cache.put_if_unchanged(missed[0], key, report, rule_sets, packs, limits)
        yield report
        yield from found[position + 1 :]  # type: ignore[misc]
        return
    with BatchValidator(
        rule_sets,
        rule_packs=packs,
        jobs=jobs,
        timeout=timeout,
        limits=limits,
        recycle_after=recycle_after,
        max_worker_rss_mb=max_worker_rss_mb,
        syntax_affinity=syntax_affinity,
        cache=cache,
    ) as batch:
        yield from batch._merge(found, batch._pool_run(missed))


def _runner(
    executor: Any,
    rule_sets: Sequence[str],
    packs: Sequence[RulePack],
    limits: Limits,
    ship_bytes: bool | None,
) -> Any:
    """A facturflow.cluster.Runner of validate_source on `executor`."""
    from ..cluster import Runner

    return Runner(
        executor,
        validate_source,
        pool.failed_report,
        (rule_sets, list(packs), limits),
        limits=limits,
        ship_bytes=ship_bytes,
        folders=[str(pack.folder) for pack in packs],
    )


class BatchValidator:
    """Worker processes kept from one batch to the next, with their compiled stylesheets.

    For an application that validates batches again and again (an invoicing backend, a queue
    consumer): `validate_many` below starts and compiles workers for every call, a
    BatchValidator does it once. The options are those of `validate_many` (with `executor`, the
    batches go to its workers, which keep their stylesheets between batches too); use it as a
    context manager, or call `close()`.

        with BatchValidator(jobs=2) as validator:
            for batch in batches:
                for report in validator.validate_many(batch):
                    ...

    With `cache=VerdictCache(...)`, each batch's files are looked up first; workers start (on
    first need) and validate only the files not found, and store their verdicts.
    """

    def __init__(
        self,
        rules: str | Iterable[str] | None = None,
        *,
        rule_packs: Iterable[str | os.PathLike[str] | RulePack] = (),
        jobs: int | None = None,
        timeout: float | None = None,
        limits: Limits = DEFAULT_LIMITS,
        recycle_after: int | None = None,
        max_worker_rss_mb: float | None = pool.DEFAULT_MAX_RSS_MB,
        syntax_affinity: bool = True,
        french_rules: str | None = None,
        as_of: dt.date | str | None = None,
        cache: VerdictCache | None = None,
        executor: Any = None,
        ship_bytes: bool | None = None,
    ) -> None:
        packs = _packs(rule_packs)
        rule_sets = parse_rule_sets(rules, packs, french_build=french_rules, as_of=as_of)
        self.stats: dict[str, int] = {}
        self.cache = cache if cache is not None and cache.ready() else None
        self._selection = (rule_sets, packs, limits)
        # Workers start on the first file a run gives them (pool.py), so a batch found whole in
        # the cache starts none.
        self._remote = (
            None if executor is None else _runner(executor, rule_sets, packs, limits, ship_bytes)
        )
        if self._remote is not None:
            self._remote.stats = self.stats
        self._pool = pool.WorkerPool(
            _validate_path,
            _init_worker,
            (rule_sets, packs, limits, self.cache),
            default_jobs() if jobs is None else max(1, jobs),
            timeout,
            max_tasks=recycle_after,
            max_rss_mb=max_worker_rss_mb,
            stats=self.stats,
            affinity=syntax_family if syntax_affinity else None,
        )

    def validate_many(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[Report]:
        """Validate the files on the kept workers; reports in input order."""
        names = [str(Path(p)) for p in paths]
        if self.cache is None:
            yield from self._pool_run(names)
            return
        rule_sets, packs, limits = self._selection
        looked = [self.cache.lookup(name, rule_sets, packs, limits) for name in names]
        found = [report for report, _ in looked]
        missed = [name for name, report in zip(names, found, strict=True) if report is None]
        fresh = self._pool_run(missed)
        if self._remote is not None:
            keys = [key for report, key in looked if report is None]
            fresh = self._stored(missed, keys, fresh)
        yield from self._merge(found, fresh)

    def _pool_run(self, names: list[str]) -> Iterator[Report]:
        if not names:
            return
        if self._remote is not None:
            yield from self._remote.run(names)
        else:
            yield from self._pool.run(names)

    def _stored(
        self, names: list[str], keys: list[str | None], fresh: Iterator[Report]
    ) -> Iterator[Report]:
        """Cluster workers have no cache of their own: this process stores what they found."""
        assert self.cache is not None
        try:
            for name, key, report in zip(names, keys, fresh, strict=False):
                if key is not None:
                    self.cache.put_if_unchanged(name, key, report, *self._selection)
                yield report
        finally:
            close = getattr(fresh, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _merge(found: list[Report | None], fresh: Iterator[Report]) -> Iterator[Report]:
        """The reports found in the cache, with the fresh ones in the gaps, in input order."""
        try:
            for report in found:
                yield report if report is not None else next(fresh)
        finally:
            close = getattr(fresh, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        """Stop the workers."""
        self._pool.close()

    def __enter__(self) -> BatchValidator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
