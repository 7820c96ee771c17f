"""SVRL to findings: rule ids, severities, fail-closed rules, runtime errors."""

from __future__ import annotations

from pathlib import Path

from facturflow.artefacts import Artefact
from facturflow.detection import detect
from facturflow.validation import schematron
from facturflow.validation.report import LAYER_FAILED

from .helpers import VALID_CII, schematron_xslt

SVRL_NS = 'xmlns:svrl="http://purl.oclc.org/dsdl/svrl"'
ARTEFACT = Artefact("t", "schematron", Path("/nonexistent/t.xslt"), "test", "1", "test")


def svrl(body: str, fired: bool = True) -> bytes:
    fired_rule = '<svrl:fired-rule context="/"/>' if fired else ""
    return f"<svrl:schematron-output {SVRL_NS}>{fired_rule}{body}</svrl:schematron-output>".encode()


def test_missing_flag_is_fatal_and_internal_id_gives_way_to_the_published_one() -> None:
    findings, ran = schematron.parse_svrl(
        svrl(
            '<svrl:failed-assert id="FX-SCH-A-000030" location="/a">'
            "<svrl:text>[BR-CO-10]-Sum of Invoice line net amount (BT-106) ...</svrl:text>"
            "</svrl:failed-assert>"
        ),
        ARTEFACT,
    )
    assert ran
    (finding,) = findings
    assert finding.rule == "BR-CO-10"
    assert finding.assert_id == "FX-SCH-A-000030"
    assert finding.severity == "fatal"
    assert finding.business_terms == ("BT-106",)


def test_flags_map_to_severities() -> None:
    body = "".join(
        f'<svrl:failed-assert id="R-{flag}" flag="{flag}">'
        "<svrl:text>x</svrl:text></svrl:failed-assert>"
        for flag in ("fatal", "error", "warning", "information")
    )
    findings, _ = schematron.parse_svrl(svrl(body), ARTEFACT)
    assert [f.severity for f in findings] == ["fatal", "fatal", "warning", "information"]


def test_published_ids_are_kept_and_assert_id_is_then_empty() -> None:
    findings, _ = schematron.parse_svrl(
        svrl(
            '<svrl:failed-assert id="BR-FR-02_BT-1" flag="fatal">'
            "<svrl:text>BR-FR-02/BT-1 : x</svrl:text></svrl:failed-assert>"
        ),
        ARTEFACT,
    )
    assert findings[0].rule == "BR-FR-02_BT-1" and findings[0].assert_id is None
    assert findings[0].business_terms == ("BT-1",)


def test_unnamed_profile_restriction_gets_a_stable_id() -> None:
    body = (
        "<svrl:failed-assert test=\"not(x)\"><svrl:text>Element 'ram:X' is marked as not used "
        "in the given context.</svrl:text></svrl:failed-assert>"
    )
    findings, _ = schematron.parse_svrl(svrl(body), ARTEFACT)
    assert findings[0].rule == "FX-NOT-USED"


def test_no_fired_rule_fails_closed() -> None:
    findings, ran = schematron.parse_svrl(svrl("", fired=False), ARTEFACT)
    assert not ran and findings[0].rule == LAYER_FAILED


def test_unreadable_svrl_fails_closed() -> None:
    findings, ran = schematron.parse_svrl(b"<not-closed", ARTEFACT)
    assert not ran and findings[0].rule == LAYER_FAILED


def test_runtime_error_in_a_stylesheet_fails_closed(tmp_path: Path) -> None:
    xslt = tmp_path / "boom.xslt"
    xslt.write_text(
        '<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><xsl:sequence select="error((), \'boom\')"/></xsl:template>'
        "</xsl:stylesheet>"
    )
    artefact = Artefact("boom", "schematron", xslt, "boom", "1", "test")
    document = detect(VALID_CII)
    findings, ran = schematron.run(artefact, schematron.SaxonDocument(document.xml), document.tree)
    assert not ran
    assert findings[0].rule == LAYER_FAILED and "boom" in findings[0].message


def test_stylesheet_cannot_reach_the_network(tmp_path: Path) -> None:
    xslt = tmp_path / "net.xslt"
    xslt.write_text(
        '<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><out><xsl:value-of select="doc(\'http://127.0.0.1:9/x.xml\')"/>'
        "</out></xsl:template></xsl:stylesheet>"
    )
    artefact = Artefact("net", "schematron", xslt, "net", "1", "test")
    document = detect(VALID_CII)
    findings, ran = schematron.run(artefact, schematron.SaxonDocument(document.xml), document.tree)
    assert not ran and findings[0].rule == LAYER_FAILED


def test_real_stylesheet_findings_carry_source_lines() -> None:
    document = detect(schematron_xslt_free_invoice())
    from facturflow.artefacts import builtin

    findings, ran = schematron.run(
        builtin("sch-brfr-cii"), schematron.SaxonDocument(document.xml), document.tree
    )
    assert ran
    assert any(f.location.line for f in findings)


def schematron_xslt_free_invoice() -> bytes:
    """The fixture with its invoice number made illegal for BR-FR-02 (a space inside)."""
    from .helpers import with_invoice_number

    return with_invoice_number(VALID_CII, "F 2026 BAD")


def test_helper_xslt_is_well_formed() -> None:
    # The rule-pack tests rely on this builder producing a usable stylesheet.
    from lxml import etree

    etree.fromstring(schematron_xslt("X-1", "true()").encode())


def test_an_svrl_with_fired_rules_and_nothing_failed_gives_no_finding() -> None:
    for fired in ('<svrl:fired-rule context="/"/>', "<svrl:fired-rule/>", "<svrl:fired-rule >"
                  "</svrl:fired-rule>"):
        body = f"<svrl:schematron-output {SVRL_NS}><svrl:active-pattern/>{fired}"
        answer = schematron.parse_svrl(f"{body}</svrl:schematron-output>".encode(), ARTEFACT)
        assert answer == ([], True), fired


def test_an_svrl_whose_only_rule_element_is_another_name_fails_closed() -> None:
    # "fired-rules" or "unfired-rule" are not svrl:fired-rule: the quick path must not see one.
    for fake in ("<svrl:fired-rules/>", "<svrl:unfired-rule/>", "<x:fired-rule xmlns:x='urn:x'/>"):
        body = f"<svrl:schematron-output {SVRL_NS}>{fake}</svrl:schematron-output>"
        findings, ran = schematron.parse_svrl(body.encode(), ARTEFACT)
        assert not ran and findings[0].rule == LAYER_FAILED, fake
