"""JUnit XML output: structure checked by hand and read back by junitparser, a CI-side parser.

No JUnit XSD ships in any package reachable here, so the structure CI systems rely on
(testsuites > testsuite > testcase > failure/error/system-out, with consistent counts) is
asserted element by element.
"""

from __future__ import annotations

import junitparser
from lxml import etree

from facturflow.reports import render
from facturflow.validation.report import Report


def _tree(reports: list[Report]) -> etree._Element:
    out = render(reports, "junit")
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return etree.fromstring(out.encode("utf-8"))


def test_one_suite_one_testcase_per_file(reports: list[Report]) -> None:
    root = _tree(reports)
    assert root.tag == "testsuites"
    (suite,) = root
    assert suite.tag == "testsuite"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [r.path for r in reports]
    assert all(c.get("classname", "").startswith("facturflow.") for c in cases)
    for element in (root, suite):
        assert element.get("tests") == "5"
        assert element.get("failures") == "3"
        assert element.get("errors") == "1"


def test_a_failure_per_fatal_finding(named: dict[str, Report]) -> None:
    case = _tree([named["invalid"]]).find("testsuite/testcase")
    assert case is not None
    failures = case.findall("failure")
    assert [f.get("type") for f in failures] == ["BR-CO-10", "XSD", "BR-CO-10"]
    assert "BT-106" in (failures[0].text or "")
    assert "line 42" in (failures[0].text or "")
    assert failures[0].get("message", "").startswith("Sum of Invoice line net amount")


def test_warnings_and_information_go_to_system_out_not_failures(named: dict[str, Report]) -> None:
    case = _tree([named["invalid"]]).find("testsuite/testcase")
    assert case is not None
    out = case.findtext("system-out") or ""
    assert "[warning] BR-FR-12" in out
    assert "[information] FR-INFO" in out
    assert "profile declared twice" in out
    # The control character of the message is dropped, markup is escaped by the serializer.
    assert "\x07" not in out and "<with>" in out


def test_valid_file_is_a_passing_testcase(named: dict[str, Report]) -> None:
    case = _tree([named["valid"]]).find("testsuite/testcase")
    assert case is not None
    # No failure, error or output: only the properties naming the rule sets applied.
    assert [child.tag for child in case] == ["properties"]
    assert case.get("classname") == "facturflow.cii.en16931"


def test_unreadable_file_is_an_error_only(named: dict[str, Report]) -> None:
    # Its finding restates the error: no failure beside the error.
    case = _tree([named["unreadable"]]).find("testsuite/testcase")
    assert case is not None
    assert case.get("classname") == "facturflow.unreadable"
    (error,) = case
    assert error.tag == "error"
    assert error.get("type") == "MalformedXMLError"
    assert error.get("message") == "not well-formed XML: line 3, column 1"


def test_required_layer_not_run_is_a_failure(named: dict[str, Report]) -> None:
    case = _tree([named["layer_not_run"]]).find("testsuite/testcase")
    assert case is not None
    (failure,) = case.findall("failure")
    assert failure.get("type") == "LAYER-NOT-RUN"
    assert "fr-ctc-ext" in failure.get("message", "")


def test_a_ci_parser_reads_it_back(reports: list[Report]) -> None:
    xml = junitparser.JUnitXml.fromstring(render(reports, "junit").encode("utf-8"))
    suites = list(xml)
    assert len(suites) == 1
    cases = list(suites[0])
    assert len(cases) == len(reports)
    outcomes = {case.name: [type(r).__name__ for r in case.result] for case in cases}
    assert outcomes["fixtures/valid/ok.xml"] == []
    assert outcomes["fixtures/invalid/sum wrong.xml"] == ["Failure", "Failure", "Failure"]
    assert outcomes["fixtures/invalid/not-well-formed.xml"] == ["Error"]


def test_a_pdf_failure_names_the_pdf_and_the_embedded_line(named: dict[str, Report]) -> None:
    from dataclasses import replace

    report = replace(named["pdf"], attachment="factur-x.xml")
    case = _tree([report]).find("testsuite/testcase")
    assert case is not None
    assert case.get("file") == "/abs/path/facture é.pdf"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message", "").endswith("(line 3 of the embedded factur-x.xml)")
    assert "line 3 of the embedded factur-x.xml" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["embedded-file"] == "factur-x.xml"
