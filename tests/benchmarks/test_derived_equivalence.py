"""The derived stylesheets (facturflow.validation.derive) give exactly the official results.

For every document, every built-in stylesheet the default rules apply is run twice, unmodified
and derived, through facturflow's own Saxon engine; the SVRL must carry the same failed asserts and
successful reports (same order, id, flag, role, location, test and text), the same number of fired
rules (the fail-closed check counts on them), and the same runtime error, if any.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytest
from benchmarks.generate import generate
from benchmarks.series import every_line_invalid, with_group_vat, with_groups, with_parent_lines
from lxml import etree

SVRL = "{http://purl.oclc.org/dsdl/svrl}"
CORPUS = Path(os.environ.get("FACTURFLOW_CORPUS", Path(__file__).parents[3] / "shared" / "corpus"))

Signature = tuple[Any, ...]


def _signature(svrl: str) -> Signature:
    root = etree.fromstring(svrl.encode("utf-8"), etree.XMLParser(huge_tree=True))
    results = []
    fired = 0
    for el in root.iter():
        if el.tag == f"{SVRL}fired-rule":
            fired += 1
        elif el.tag in (f"{SVRL}failed-assert", f"{SVRL}successful-report"):
            text = " ".join("".join(str(t) for t in el.itertext()).split())
            results.append(
                (el.tag, el.get("id"), el.get("flag"), el.get("role"), el.get("location"),
                 el.get("test"), text)
            )
    return fired, tuple(results)


def _run(executable: Any, node: Any) -> Signature:
    try:
        return ("ok", _signature(executable.transform_to_string(xdm_node=node)))
    except Exception as exc:  # the official file raising must raise the same way derived
        return ("error", re.sub(r"\s+", " ", str(exc))[:300])


def compare(named_xml: list[tuple[str, bytes]]) -> list[str]:
    """Mismatches (empty when equal) for documents given as (name, invoice XML bytes)."""
    from facturflow.detection import detect
    from facturflow.rules import DEFAULT_RULE_SETS, plan
    from facturflow.validation import schematron

    engine = schematron._get_engine()
    official: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    problems = []
    checked = 0
    for name, xml in named_xml:
        document = detect(xml)
        steps, _ = plan(document, DEFAULT_RULE_SETS)
        node = engine.processor.parse_xml(xml_text=document.xml.decode("utf-8"))
        for step in steps:
            artefact = step.artefact
            if step.layer != "schematron" or not artefact.key.startswith("sch-"):
                continue
            key = str(artefact.path)
            if key not in official:
                official[key] = engine.xslt.compile_stylesheet(stylesheet_file=key)
                derived[key] = schematron._compile(engine, artefact)
            want = _run(official[key], node)
            got = _run(derived[key], node)
            checked += 1
            if want != got:
                problems.append(f"{name} / {artefact.name}: official {want!r:.300} != derived "
                                f"{got!r:.300}")
    if not checked:
        problems.append("nothing was compared")
    return problems


def _corpus_batch(paths: list[str]) -> list[str]:
    from facturflow.detection import detect
    from facturflow.errors import FacturflowError

    docs = []
    for p in paths:
        try:
            d = detect(p)
        except FacturflowError:
            continue  # the invalid/ inputs facturflow rejects before any stylesheet runs
        if d.syntax in ("cii", "ubl-invoice", "ubl-creditnote"):
            docs.append((p, d.xml))
    return compare(docs) if docs else []


def _special_contract(xml: bytes, profile: bytes) -> bytes:
    """The invoice under a multi-vendor / sub-invoice billing frame (BR-FR-MV, BR-FR-BD)."""
    return (xml.replace(b"<cbc:ProfileID>S1<", b"<cbc:ProfileID>" + profile + b"<")
            .replace(b"<ram:ID>S1<", b"<ram:ID>" + profile + b"<"))


def _mutations(xml: bytes) -> Iterator[tuple[str, bytes]]:
    """Invalid variants that exercise the indexed code-list lookups and the arithmetic rules,
    failures on every line (SVRL locations past 64 siblings: sibling-position), and the
    special billing frames whose rules the root-call rewrite answers once."""
    syntax = "ubl" if b"<cbc:" in xml else "cii"
    yield "valid", xml
    yield "every-line", every_line_invalid(xml, syntax)
    yield "s8", _special_contract(xml, b"S8")
    yield "b9-every-line", _special_contract(every_line_invalid(xml, syntax), b"B9")
    yield "parents", with_parent_lines(xml, syntax)
    yield "groups", with_groups(xml, syntax)
    yield "groups-of-3-every-line", with_groups(every_line_invalid(xml, syntax), syntax, 3)
    # Sub-invoices with their own VAT breakdowns (BR-FR-MV-09's prefix-key, MV-05's filter-key,
    # MV-12's preceding-key, parent-child, root-predicate), valid and with each fallback taken.
    group_vat = with_group_vat(xml, syntax, 3)
    yield "group-vat", group_vat
    yield "group-vat-every-line", with_group_vat(every_line_invalid(xml, syntax), syntax, 3)
    yield "group-vat-384", (group_vat.replace(b"<cbc:InvoiceTypeCode>380<",
                                              b"<cbc:InvoiceTypeCode>384<")
                            .replace(b"<ram:TypeCode>380<", b"<ram:TypeCode>384<"))
    yield "group-vat-duplicate-number", group_vat.replace(b">F4<", b">F1<")
    yield "group-vat-empty-group", group_vat.replace(b">F4<", b">F999<")
    yield "group-vat-two-reasons", (  # starts-with raises: the original's error
        group_vat.replace(b"</cbc:TaxExemptionReason>", b"</cbc:TaxExemptionReason>"
                          b"<cbc:TaxExemptionReason>#F1#</cbc:TaxExemptionReason>", 1)
        .replace(b"</ram:ExemptionReason>", b"</ram:ExemptionReason>"
                 b"<ram:ExemptionReason>#F1#</ram:ExemptionReason>", 1))
    yield "group-vat-two-ids", (  # normalize-space raises: the original's error
        group_vat.replace(b"<cbc:ID>1</cbc:ID>", b"<cbc:ID>1</cbc:ID><cbc:ID>1</cbc:ID>")
        .replace(b"<ram:LineID>1</ram:LineID>", b"<ram:LineID>1</ram:LineID><ram:LineID>1"
                 b"</ram:LineID>"))
    # 100 failures of one rule on siblings of one parent (location paths past 64 siblings).
    yield "empty-notes", (xml.replace(b"</rsm:ExchangedDocument>",
                                      b"<ram:IncludedNote/>" * 100 + b"</rsm:ExchangedDocument>")
                          .replace(b"</cbc:ProfileID>", b"</cbc:ProfileID>" + b"<cbc:Note/>" * 100))
    yield "two-profiles", xml.replace(b"<cbc:ProfileID>S1</cbc:ProfileID>",
                                      b"<cbc:ProfileID>S1</cbc:ProfileID>"
                                      b"<cbc:ProfileID>M8</cbc:ProfileID>")
    yield "bad-unit", xml.replace(b'unitCode="C62"', b'unitCode="ZZ9"')
    yield "bad-currency", xml.replace(b'currencyID="EUR"', b'currencyID="EUX"', 1)
    yield "bad-scheme", xml.replace(b'schemeID="0002"', b'schemeID="9999"')
    yield "bad-country", xml.replace(b">FR</", b">XX</", 1)
    yield "bad-amount", xml.replace(b">20.00</", b">21.00</", 1)
    yield "empty-unit", xml.replace(b'unitCode="H87"', b'unitCode=""')


@pytest.mark.parametrize("syntax", ["ubl", "cii"])
def test_derived_equals_official_on_generated_invoices(syntax: str) -> None:
    docs = []
    for lines in (1, 7, 120):
        for label, xml in _mutations(generate(lines, syntax, seed=lines)):
            docs.append((f"{syntax}-{lines}-{label}", xml))
    assert compare(docs) == []


# The large-invoice sizes: 300 lines by default (past the 64 siblings of sibling-position, and
# quick enough for `make test`); FACTURFLOW_EQUIVALENCE_LINES=4000,16000 for the full proof of
# issue 19 (the official BR-FR stylesheets alone take minutes at 16,000 lines: they are the
# quadratic ones).
LARGE = [int(n) for n in os.environ.get("FACTURFLOW_EQUIVALENCE_LINES", "300").split(",")]


@pytest.mark.slow
@pytest.mark.parametrize("lines", LARGE)
@pytest.mark.parametrize("syntax", ["ubl", "cii"])
def test_derived_equals_official_on_large_invoices(syntax: str, lines: int) -> None:
    xml = generate(lines, syntax)
    bad = xml.replace(b'unitCode="KGM"', b'unitCode="QQ"')
    assert compare([
        (f"{syntax}-{lines}", xml),
        (f"{syntax}-{lines}-bad-unit", bad),
        (f"{syntax}-{lines}-every-line", every_line_invalid(xml, syntax)),
        (f"{syntax}-{lines}-s8", _special_contract(xml, b"S8")),
        (f"{syntax}-{lines}-parents", with_parent_lines(xml, syntax)),
        (f"{syntax}-{lines}-groups", with_groups(xml, syntax)),
        (f"{syntax}-{lines}-group-vat", with_group_vat(xml, syntax)),
        (f"{syntax}-{lines}-group-vat-every-line",
         with_group_vat(every_line_invalid(xml, syntax), syntax)),
    ]) == []


@pytest.mark.corpus
def test_derived_equals_official_on_the_whole_corpus() -> None:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"corpus not found at {CORPUS} (set FACTURFLOW_CORPUS)")
    paths = sorted(str(p) for p in CORPUS.rglob("*") if p.suffix.lower() in (".xml", ".pdf")
                   and "rules" not in p.relative_to(CORPUS).parts)
    chunks = [paths[i::2] for i in range(2)]
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        problems = [p for result in pool.map(_corpus_batch, chunks) for p in result]
    assert problems == []


def test_every_builtin_stylesheet_is_derived_and_the_official_file_untouched() -> None:
    import hashlib

    from facturflow.artefacts import BUILTIN, package_root
    from facturflow.validation.derive import derive

    for spec in BUILTIN:
        if spec.kind != "schematron":
            continue
        path = package_root() / spec.relpath
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        derived = derive(path)
        expected = {"no-text-walk", "rule-select", "bare-fired-rule", "bare-active-pattern"}
        assert expected <= set(derived.rewrites), spec.relpath
        if "_codedb.xml" in path.read_text(encoding="utf-8"):
            assert {"codedb-key", "codedb-param"} <= set(derived.rewrites), spec.relpath
            ((_, codedb),) = derived.documents
            assert codedb.parent == path.parent and codedb.name.endswith("_codedb.xml")
        assert derived.source_sha256 == before == hashlib.sha256(path.read_bytes()).hexdigest()
        assert derived.text != path.read_bytes()


def test_official_xslt_switch_compiles_the_unmodified_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from facturflow.artefacts import builtin
    from facturflow.validation import schematron

    def no_derivation(path: Path) -> None:
        raise AssertionError(f"derive() called for {path} although FACTURFLOW_OFFICIAL_XSLT=1")

    monkeypatch.setattr(schematron, "cached_derive", no_derivation)
    monkeypatch.setenv("FACTURFLOW_OFFICIAL_XSLT", "1")
    engine = schematron._get_engine()
    executable = schematron._compile(engine, builtin("sch-fx-minimum"))
    node = engine.processor.parse_xml(xml_text=generate(2, "cii").decode("utf-8"))
    assert _run(executable, node)[0] == "ok"
