"""Every valid UBL and CII instance of the shared corpus, made into a Factur-X PDF/A-3.

Acceptance (issue 3, Factur-X part): each PDF validates (XSD, EN 16931 / Factur-X Schematron,
PDF container), with no fatal finding its source did not have; extracting its XML gives back
exactly the CII embedded; the model read from that CII equals the source's, term by term.
The French BR-FR rules are left out: the corpus is mostly not French. One refusal is accepted:
Factur-X narrows some EN 16931 code lists, so an invoice using such a code (counted under
"refused") has no valid Factur-X form and convert() rightly refuses it.

Prints a table per source group; run with `-s` (or see the README) to read it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from convert_helpers import FIXED_TIME, corpus_manifest

RULES = "xsd,en16931,pdf"

# Corpus files the conversion refuses today, each for a known gap of a syntax binding (see the
# README, "Converting to Factur-X"). The test fails on any other failure, and on any of these
# that starts passing (then delete its line): the list can only shrink.
KNOWN_GAPS = {
    "ubl/cen-guide-example2.xml": "price discount BT-147 without gross price BT-148",
    "ubl/cen-testfiles-ubl-tc434-test-1.xml": "price discount BT-147 without gross price BT-148",
    "ubl/cen-ubl-tc434-example2.xml": "price discount BT-147 without gross price BT-148",
    "ubl/cen-sample-discount-price.xml": "BT-111 implied by one TaxTotal when BT-6 = BT-5",
    "ubl/peppol-GR-base-example-TaxRepresentative.xml": "no seller name BT-27; CII needs one",
}
SYNTAXES = ("ubl-invoice", "ubl-creditnote", "cii")


@dataclass
class Outcome:
    group: str
    path: str
    converted: bool = False
    valid: bool = False
    xml_round_trip: bool = False
    model_equal: bool = False
    dropped: tuple[str, ...] = ()
    new_fatal_rules: tuple[str, ...] = ()
    code_list_rules: tuple[str, ...] = ()  # the new ones that are Factur-X code-list limits
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def _check(args: tuple[str, str]) -> Outcome:
    group, path = args
    from facturflow.convert import ConversionRejected, convert, lost_terms
    from facturflow.errors import FacturflowError
    from facturflow.facturx import extract_xml
    from facturflow.read import read
    from facturflow.validate import validate

    outcome = Outcome(group, path)
    try:
        result = convert(path, to="facturx", lossy=True, rules=RULES, timestamp=FIXED_TIME)
        outcome.valid = True
    except ConversionRejected as exc:
        if exc.result is None:
            outcome.error = exc.message[:200]
            return outcome
        # Refused as invalid: it passes here if its source has the same fatal findings.
        result = exc.result
        source_rules = {f.rule for f in validate(path, RULES).fatal}
        new = [f for f in result.report.fatal if f.rule not in source_rules]
        outcome.new_fatal_rules = tuple(sorted({f.rule for f in new}))
        # Factur-X narrows some EN 16931 code lists ("Value of 'ram:…' is not allowed"): an
        # invoice using such a code has no valid Factur-X form, and refusing it is right.
        outcome.code_list_rules = tuple(sorted(
            {f.rule for f in new if f.rule.startswith("FX-") and f.message.endswith("not allowed.")}
        ))
        outcome.valid = not outcome.new_fatal_rules
    except FacturflowError as exc:
        outcome.error = f"{type(exc).__name__}: {exc.message[:200]}"
        return outcome
    except Exception as exc:  # a crash is a failure to report, not a reason to stop the run
        outcome.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return outcome
    outcome.converted = True
    outcome.dropped = result.dropped
    embedded = extract_xml(result.data)
    outcome.xml_round_trip = embedded == result.xml
    try:
        # BT-24 changes on purpose when the source profile has no Factur-X level (Peppol).
        lost = lost_terms(read(path, check_codes=False), read(embedded, check_codes=False),
                          ignore={"BT-24"})
        outcome.model_equal = not lost
        outcome.notes.extend(lost)
    except FacturflowError as exc:
        outcome.error = f"re-read: {exc.message[:200]}"
    return outcome


def _refused_by_code_list(outcome: Outcome) -> bool:
    return bool(outcome.new_fatal_rules) and set(outcome.new_fatal_rules) == set(
        outcome.code_list_rules
    )


def _table(outcomes: list[Outcome]) -> str:
    header = (f"{'group':<8} {'files':>5} {'converted':>9} {'valid':>5} {'refused':>7} "
              f"{'xml=':>5} {'model=':>6}  failures")
    lines = ["Factur-X PDF/A-3 from the valid corpus instances (rules: " + RULES + ")", header]
    for group in sorted({o.group for o in outcomes}):
        mine = [o for o in outcomes if o.group == group]
        failures: Counter[str] = Counter()
        for o in mine:
            for term in o.dropped:
                failures[f"dropped {term}"] += 1
            for rule in o.new_fatal_rules:
                kind = "code list" if rule in o.code_list_rules else "new"
                failures[f"{kind} {rule}"] += 1
            for term in o.notes:
                failures[f"changed {term}"] += 1
            if o.error:
                failures[o.error.split(":")[0]] += 1
        summary = ", ".join(f"{k} ×{v}" for k, v in failures.most_common(12)) or "none"
        lines.append(
            f"{group:<8} {len(mine):>5} {sum(o.converted for o in mine):>9} "
            f"{sum(o.valid for o in mine):>5} {sum(_refused_by_code_list(o) for o in mine):>7} "
            f"{sum(o.xml_round_trip for o in mine):>5} "
            f"{sum(o.model_equal for o in mine):>6}  {summary}"
        )
    return "\n".join(lines)


@pytest.mark.corpus
@pytest.mark.slow
def test_every_valid_corpus_instance_makes_a_valid_factur_x_pdf(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [r for r in corpus_manifest() if r["expected"] == "valid" and r["format"] in SYNTAXES]
    group = os.environ.get("FACTURFLOW_CORPUS_GROUP")
    if group:
        rows = [r for r in rows if r["path"].startswith(group + "/")]
    limit = int(os.environ.get("FACTURFLOW_CORPUS_LIMIT", "0"))
    if limit:
        rows = rows[:limit]
    jobs = [(r["path"].split("/")[0], str(corpus / r["path"])) for r in rows]
    assert jobs, "the corpus lists no valid UBL or CII instance"
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=context) as pool:
        outcomes = list(pool.map(_check, jobs, chunksize=4))
    table = _table(outcomes)
    with capsys.disabled():
        print("\n" + table)
    failed = [
        o for o in outcomes
        if not ((o.valid or _refused_by_code_list(o)) and o.xml_round_trip and o.model_equal
                and not o.dropped and o.error is None)
    ]
    def key(outcome: Outcome) -> str:
        return Path(outcome.path).relative_to(corpus).as_posix()

    unexpected = [o for o in failed if key(o) not in KNOWN_GAPS]
    assert not unexpected, f"{len(unexpected)} of {len(outcomes)} failed:\n" + "\n".join(
        f"{o.path}: {o.error or ''} new={o.new_fatal_rules} dropped={o.dropped} "
        f"changed={o.notes} xml_round_trip={o.xml_round_trip}"
        for o in unexpected[:40]
    )
    ran = {key(o) for o in outcomes}
    fixed = sorted(set(KNOWN_GAPS) & ran - {key(o) for o in failed})
    assert not fixed, f"these now convert: remove them from KNOWN_GAPS: {fixed}"
