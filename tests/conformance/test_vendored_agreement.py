"""Agreement on the vendored stylesheets: facturflow's findings equal an independent processor's.

The same check as test_agreement.py, for the stylesheets vendored in schematron/ (CEN CII 1.3.16,
XRechnung and Peppol BIS compiled with SchXslt, the FNFE BR-FR WARNING builds, BR-FR-CDV for CDAR):
per document and stylesheet, the failed assert/report ids with their severity and count that
facturflow reports equal those of Java Saxon-HE 9.9 (SaxonJS for the BR-FR UBL WARNING build,
which Saxon-HE 9.9 cannot compile, like its FATAL twin). The reference comes from the committed
golden file `vendored-reference.json`; FACTURFLOW_REFERENCE_LIVE=1 recomputes it now.

Documents: every corpus file (but rules/) that facturflow reads as CII or UBL, each given the
stylesheets of its syntax: CII gets CEN CII, XRechnung CII, Peppol CII and BR-FR CII WARNING; UBL
gets XRechnung UBL, Peppol UBL and BR-FR UBL WARNING (a stylesheet is compared on every document
of its syntax, not only on those of its scope: more documents, more asserts compared). And the
three CDAR messages of test_vendored_rulesets.py on both BR-FR-CDV builds.

    python -m pytest tests/conformance/test_vendored_agreement.py -q
    python -m tests.conformance.test_vendored_agreement --write   # regenerate (java, node)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conformance import test_vendored_rulesets as vendored  # noqa: E402
from tests.conformance.test_agreement import compare_one  # noqa: E402
from tests.reference import run_reference as ref  # noqa: E402

from facturflow.artefacts import builtin  # noqa: E402
from facturflow.detection import detect  # noqa: E402
from facturflow.errors import FacturflowError  # noqa: E402
from facturflow.validation import schematron  # noqa: E402
from facturflow.validation.report import LAYER_FAILED  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "vendored-reference.json"
LIVE = os.environ.get("FACTURFLOW_REFERENCE_LIVE") == "1"
BY_SYNTAX = {
    "cii": ("sch-en16931-cii", "sch-xrechnung-cii", "sch-peppol-cii", "sch-brfr-cii-warning"),
    "ubl-invoice": ("sch-xrechnung-ubl", "sch-peppol-ubl", "sch-brfr-ubl-warning"),
    "ubl-creditnote": ("sch-xrechnung-ubl", "sch-peppol-ubl", "sch-brfr-ubl-warning"),
    "cdar": ("sch-brfr-cdv-cdar", "sch-brfr-cdv-cdar-warning"),
}
# Saxon-HE 9.9 refuses to compile it ("Cannot convert the expression", as the FATAL build).
SAXONJS_KEYS = frozenset({"sch-brfr-ubl-warning"})
CDAR_DOCUMENTS = {
    "cdar:status-200": vendored.CDAR,
    "cdar:bad-type": vendored.CDAR_BAD_TYPE,
    "cdar:bad-status": vendored.CDAR_BAD_STATUS,
}


def documents() -> Iterator[tuple[str, str, bytes]]:
    """(name, syntax, XML) of every document compared: corpus files, then the CDAR messages."""
    corpus = ref.corpus_dir()
    if (corpus / "MANIFEST.tsv").is_file():
        for path in ref.corpus_files(corpus):
            try:
                document = detect(path)
            except FacturflowError:
                continue
            if document.syntax in BY_SYNTAX:
                yield str(path.relative_to(corpus)), document.syntax, document.xml
    for name, xml in CDAR_DOCUMENTS.items():
        yield name, "cdar", xml


def reference(docs: list[tuple[str, str, bytes]]) -> dict[str, Any]:
    """Run the independent processors on (name, syntax, XML) documents."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="facturflow-vendored-ref-") as tmp:
        pairs: list[tuple[Path, str]] = []
        origin: dict[str, tuple[str, str]] = {}
        key_of: dict[str, str] = {}
        for index, (name, syntax, xml) in enumerate(docs):
            path = Path(tmp) / f"{index}.xml"
            path.write_bytes(xml)
            origin[str(path)] = (name, syntax)
            out[name] = {"sha256": hashlib.sha256(xml).hexdigest(), "results": {}}
            for key in BY_SYNTAX[syntax]:
                sheet = str(builtin(key).path)
                key_of[sheet] = key
                pairs.append((path, sheet))
        saxonjs = frozenset(str(builtin(k).path) for k in SAXONJS_KEYS)
        for doc, by_sheet in ref.run_pairs(pairs, saxonjs).items():
            name, _ = origin[doc]
            out[name]["results"] = {key_of[s]: r for s, r in sorted(by_sheet.items())}
    return out


def write_golden() -> dict[str, Any]:
    docs = list(documents())
    golden = {
        "about": (
            "Failed Schematron ids per document and vendored stylesheet, from processors "
            "independent of saxonche. Regenerate: python -m tests.conformance."
            "test_vendored_agreement --write"
        ),
        "processors": ref.processor_versions(),
        "stylesheets": {
            key: {
                "sha256": ref.sha256_file(builtin(key).path),
                "processor": "saxonjs" if key in SAXONJS_KEYS else "java",
            }
            for keys in BY_SYNTAX.values()
            for key in keys
        },
        "documents": reference(docs),
    }
    GOLDEN.write_text(ref.dump_golden(golden), encoding="utf-8")
    return golden


@cache
def golden() -> dict[str, Any]:
    if not GOLDEN.is_file():
        return {"stylesheets": {}, "documents": {}}
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


@cache
def live() -> dict[str, Any]:
    return reference(list(documents()))


@cache
def current_documents() -> dict[str, tuple[str, bytes]]:
    return {name: (syntax, xml) for name, syntax, xml in documents()}


def facturflow_result(key: str, xml: bytes) -> dict[str, Any]:
    tree = etree.ElementTree(etree.fromstring(xml, etree.XMLParser(huge_tree=True)))
    findings, ran = schematron.run(builtin(key), schematron.SaxonDocument(xml), tree)
    slot: dict[str, Any] = {"ran": ran, "layer_failed": [], "truncated": False, "findings": []}
    for finding in findings:
        if finding.rule == LAYER_FAILED:
            slot["layer_failed"].append(finding.message)
        elif finding.rule == "TRUNCATED":
            slot["truncated"] = True
        else:
            slot["findings"].append(finding)
    return slot


pytestmark = pytest.mark.corpus
NAMES = sorted(golden()["documents"])


def test_golden_matches_the_vendored_stylesheets() -> None:
    assert golden()["stylesheets"], f"{GOLDEN.name} missing: run --write (needs java and node)"
    changed = [
        key
        for key, info in golden()["stylesheets"].items()
        if ref.sha256_file(builtin(key).path) != info["sha256"]
    ]
    assert not changed, f"stylesheets changed since {GOLDEN.name} was written: {changed}"


def test_golden_covers_the_documents() -> None:
    if not (ref.corpus_dir() / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {ref.corpus_dir()} (set FACTURFLOW_CORPUS)")
    now = {n: hashlib.sha256(x).hexdigest() for n, (_, x) in current_documents().items()}
    was = {n: d["sha256"] for n, d in golden()["documents"].items()}
    assert now == was, "corpus or CDAR samples changed: regenerate the golden file"


@pytest.mark.parametrize("name", NAMES or ["<no golden file>"])
def test_facturflow_agrees_with_the_reference_on_vendored_stylesheets(name: str) -> None:
    if name not in current_documents():
        pytest.skip(f"{name}: shared corpus not found at {ref.corpus_dir()}")
    _, xml = current_documents()[name]
    expected = live()[name] if LIVE else golden()["documents"][name]
    problems = []
    for key, want in sorted(expected["results"].items()):
        problems.extend(f"{key}: {p}" for p in compare_one(want, facturflow_result(key, xml)))
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def test_the_comparison_is_not_vacuous() -> None:
    """Enough failed asserts are compared, on every stylesheet, and a perturbation disagrees."""
    totals: dict[str, int] = {}
    for doc in golden()["documents"].values():
        for key, result in doc["results"].items():
            totals[key] = totals.get(key, 0) + sum(c for _, c in result.get("failed", {}).values())
    every = {key for keys in BY_SYNTAX.values() for key in keys}
    assert every <= {k for k, n in totals.items() if n > 0}, totals
    name = "cdar:bad-type"
    want = golden()["documents"][name]["results"]["sch-brfr-cdv-cdar"]
    got = facturflow_result("sch-brfr-cdv-cdar", CDAR_DOCUMENTS[name])
    assert compare_one(want, got) == []
    assert compare_one({"failed": {"BR-FR-CDV-09_MDT-77": ["warning", 1]}}, got)
    assert compare_one({"failed": {}}, got)


def figures() -> dict[str, Any]:
    runs: dict[str, int] = {}
    failing: dict[str, int] = {}
    firings = 0
    for doc in golden()["documents"].values():
        for key, result in doc["results"].items():
            runs[key] = runs.get(key, 0) + 1
            fired = sum(c for _, c in result.get("failed", {}).values())
            failing[key] = failing.get(key, 0) + bool(fired)
            firings += fired
    return {
        "documents": len(golden()["documents"]),
        "runs": runs,
        "failing runs": failing,
        "firings compared": firings,
    }


if __name__ == "__main__":
    if "--write" in sys.argv:
        missing = ref.missing_tools()
        if missing:
            print("missing: " + ", ".join(missing), file=sys.stderr)
            sys.exit(2)
        write_golden()
        golden.cache_clear()
    print(json.dumps(figures(), indent=1))
