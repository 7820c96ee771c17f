"""Corpus fidelity: read -> write -> read in the same syntax and across syntaxes, term by term.

`measure()` checks one corpus file; `table()` renders the per-group summary that the test
session prints (tests/model/conftest.py) and that the README records.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facturflow.conversion import rule_family as convert_rule_family
from facturflow.detection import Document, detect, detect_bytes
from facturflow.model import Invoice, unchecked_codes
from facturflow.model.codelists import CodeListError
from facturflow.model.implied import canonical
from facturflow.syntax import BindingError, read_tree, to_xml

# Terms a syntax cannot carry from another one, with why (the README lists them too). Terms
# that only become explicit or implicit (facturflow.model.implied: BT-148 beside BT-147, BT-110
# beside a VAT breakdown, a BT-6 equal to BT-5) are not losses: they are counted apart as
# "implied", and the canonical forms must be equal.
KNOWN_LOSSES: dict[str, dict[str, str]] = {
    "cii->ubl": {
        "BT-83": "UBL carries the remittance information (BT-83) only in cac:PaymentMeans/"
                 "cbc:PaymentID, and the UBL schema requires that cac:PaymentMeans to have a "
                 "cbc:PaymentMeansCode (BT-81), which the source lacks (it states BG-16 without "
                 "its mandatory BT-81, which the CII Schematron's BR-49 only checks inside a "
                 "ram:SpecifiedTradeSettlementPaymentMeans); inventing a code would add a term",
    },
    "ubl->cii": {},
}


def corpus_path() -> Path:
    """The shared corpus: $FACTURFLOW_CORPUS, else ../shared/corpus beside the checkout."""
    env = os.environ.get("FACTURFLOW_CORPUS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "corpus"


def corpus_rows() -> list[dict[str, str]]:
    """MANIFEST.tsv rows (empty when the corpus is absent)."""
    manifest = corpus_path() / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


@dataclass
class Outcome:
    """What happened to one corpus file."""

    group: str
    name: str
    skipped: str | None = None
    code_refusal: str | None = None
    error: str | None = None
    round_trip: set[str] = field(default_factory=set)
    cross: set[str] = field(default_factory=set)  # canonical forms differ (a loss)
    implied: set[str] = field(default_factory=set)  # only made explicit or left out (no loss)
    direction: str = ""
    new_fatal_round_trip: set[str] | None = None  # None: not validated
    new_fatal: set[str] | None = None  # after conversion to the other syntax


RESULTS: list[Outcome] = []


def diff_terms(before: Any, after: Any, key: str = "Invoice") -> set[str]:
    """The innermost business term ids whose values differ between two to_dict() trees."""
    if isinstance(before, dict) or isinstance(after, dict):
        left = before if isinstance(before, dict) else {}
        right = after if isinstance(after, dict) else {}
        if not _is_term_dict(left) and not _is_term_dict(right):
            return {key} if before != after else set()
        out: set[str] = set()
        for name in sorted(set(left) | set(right)):
            out |= diff_terms(left.get(name), right.get(name), name)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = set()
        for left_item, right_item in zip(before, after, strict=True):
            out |= diff_terms(left_item, right_item, key)
        return out
    return {key} if before != after else set()


def _is_term_dict(data: dict[str, Any]) -> bool:
    return any(name.startswith(("BT-", "BG-", "EXT-")) for name in data)


def _read(document: Document) -> tuple[Invoice, str | None]:
    """Read strictly; on a code-list refusal, read again without code checks."""
    try:
        return read_tree(document.tree, document.syntax), None
    except (BindingError, CodeListError) as exc:
        refusal = str(exc)
    with unchecked_codes():
        return read_tree(document.tree, document.syntax), refusal


def _reread(xml: bytes, name: str) -> Invoice:
    document = detect_bytes(xml, name=name)
    with unchecked_codes():
        return read_tree(document.tree, document.syntax)


def measure(path: Path, group: str, *, validate: bool = False) -> Outcome:
    """Round-trip one corpus file through its own syntax and the other one."""
    outcome = Outcome(group=group, name=path.name)
    RESULTS.append(outcome)
    document = detect(path)
    if document.syntax == "zugferd1":
        outcome.skipped = "ZUGFeRD 1.0 (its mapping has its own test: test_zugferd1.py)"
        return outcome
    try:
        model, outcome.code_refusal = _read(document)
    except Exception as exc:  # recorded, then asserted on by the test
        outcome.error = f"read: {type(exc).__name__}: {exc}"
        return outcome
    before = model.to_dict()
    same = "cii" if document.syntax == "cii" else document.syntax
    other = "ubl" if same == "cii" else "cii"
    outcome.direction = "cii->ubl" if same == "cii" else "ubl->cii"
    try:
        same_xml = to_xml(model, same)
        again = _reread(same_xml, f"{path.name} (round trip)")
        outcome.round_trip = diff_terms(before, again.to_dict())
        converted_xml = to_xml(model, other)  # type: ignore[arg-type]
        converted = _reread(converted_xml, f"{path.name} (as {other})")
        outcome.cross = diff_terms(canonical(model).to_dict(), canonical(converted).to_dict())
        outcome.implied = diff_terms(before, converted.to_dict()) - outcome.cross
    except Exception as exc:
        outcome.error = f"write: {type(exc).__name__}: {exc}"
        return outcome
    if validate:
        source_fatal = fatal_families(document.xml, path.name)
        outcome.new_fatal_round_trip = new_fatal_findings(document, same_xml, path.name,
                                                          source_fatal)
        outcome.new_fatal = new_fatal_findings(document, converted_xml, path.name, source_fatal)
    return outcome


# One id per business rule across syntaxes (the French rules are named per syntax): the same
# function convert() uses to tell source defects from conversion defects.
rule_family = convert_rule_family


def fatal_families(xml: bytes, name: str) -> set[str]:
    """The rule families of the fatal findings of one XML document (default rules)."""
    from facturflow.validation import validate

    report = validate(detect_bytes(xml, name=name))
    return {rule_family(f.rule) for f in report.findings if f.severity == "fatal"}


def new_fatal_findings(source: Document, converted_xml: bytes, name: str,
                       source_fatal: set[str] | None = None) -> set[str]:
    """Fatal rule families the converted document breaks and its source (its XML alone,
    without the PDF) does not."""
    if source_fatal is None:
        source_fatal = fatal_families(source.xml, name)
    return fatal_families(converted_xml, f"{name} (converted)") - source_fatal


def validates(index: int) -> bool:
    """Validating conversions is slow (Schematron, about a second a document, three documents a
    file), so by default one file in twenty is validated. FACTURFLOW_FIDELITY_VALIDATE says
    otherwise: 'all', 'off', or 'every:N'."""
    mode = os.environ.get("FACTURFLOW_FIDELITY_VALIDATE", "every:20")
    if mode == "all":
        return True
    if mode == "off":
        return False
    try:
        step = int(mode.removeprefix("every:"))
    except ValueError:
        step = 20
    return index % max(step, 1) == 0


def table(results: list[Outcome]) -> str:
    """The fidelity table in Markdown: per source group, files and failures by business term."""
    header = (
        "| group | files | read | code-list refusals (strict) | round trip equal | "
        "converted | UBL<->CII equal | UBL<->CII equal up to implied terms | "
        "failures by business term | implied terms made explicit or left out | validated | "
        "new fatal after round trip | new fatal after conversion (rule families) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|"
    )
    rows = [header]
    for group in sorted({r.group for r in results}):
        mine = [r for r in results if r.group == group]
        measured = [r for r in mine if r.skipped is None and r.error is None]
        terms: Counter[str] = Counter()
        implied: Counter[str] = Counter()
        for r in measured:
            terms.update(f"round trip {t}" for t in r.round_trip)
            terms.update(f"{r.direction} {t}" for t in r.cross)
            implied.update(f"{r.direction} {t}" for t in r.implied)
        refusals: Counter[str] = Counter(
            (r.code_refusal or "").split(":")[0] for r in mine if r.code_refusal
        )
        validated = [r for r in measured if r.new_fatal is not None]
        fatal: Counter[str] = Counter()
        fatal_same: Counter[str] = Counter()
        for r in validated:
            fatal.update(r.new_fatal or ())
            fatal_same.update(r.new_fatal_round_trip or ())
        skipped = sum(1 for r in mine if r.skipped)
        rows.append(
            f"| {group} | {len(mine)}"
            + (f" ({skipped} ZUGFeRD 1.0 skipped)" if skipped else "")
            + f" | {len(measured)} | "
            + (", ".join(f"{k} x{v}" for k, v in sorted(refusals.items())) or "0")
            + f" ({sum(refusals.values())})"
            + f" | {sum(1 for r in measured if not r.round_trip)}/{len(measured)}"
            + f" | {len(measured)}"
            + f" | {sum(1 for r in measured if not r.cross and not r.implied)}/{len(measured)}"
            + f" | {sum(1 for r in measured if not r.cross)}/{len(measured)} | "
            + (", ".join(f"{k} x{v}" for k, v in sorted(terms.items())) or "none")
            + " | "
            + (", ".join(f"{k} x{v}" for k, v in sorted(implied.items())) or "none")
            + f" | {len(validated)} | "
            + (", ".join(f"{k} x{v}" for k, v in sorted(fatal_same.items())) or "none")
            + " | "
            + (", ".join(f"{k} x{v}" for k, v in sorted(fatal.items())) or "none")
            + " |"
        )
    errors = [r for r in results if r.error]
    if errors:
        rows.append("")
        rows.extend(f"error: {r.group}/{r.name}: {r.error}" for r in errors)
    return "\n".join(rows)
