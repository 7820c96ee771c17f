"""JUnit XML: one testsuite, one testcase per file, one failure per fatal finding.

Each failure gives the finding's business-term path and the values of its terms (read through
facturflow.reports.values) in its message and text. Unreadable inputs are testcases with an
`<error>`; warnings and information findings go to the testcase's `<system-out>`, so CI systems
(GitLab, Jenkins, GitHub test reporters) show them without failing the build.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from ..validation.report import Finding, Report
from .termpath import finding_term_path, short_xpath
from .text import selection_lines
from .values import InvoiceValues, TermValue

SUITE_NAME = "facturflow validate"


def _values_text(values: list[TermValue]) -> str:
    return "; ".join(value.text() for value in values)


def _describe(finding: Finding, report: Report, values: list[TermValue]) -> str:
    parts = [f"[{finding.severity}] {finding.rule} ({finding.layer})", finding.message]
    # For a PDF, "line N of the embedded factur-x.xml": the testcase's file is the PDF.
    where = short_xpath(report.where(finding))
    path = finding_term_path(finding.location.xpath, finding.business_terms)
    if path:
        where = f"{path} — {where}" if where else path
    if where:
        parts.append(f"at {where}")
    if finding.business_terms:
        parts.append(f"business terms: {', '.join(finding.business_terms)}")
    if values:
        parts.append(f"values: {_values_text(values)}")
    if finding.assert_id and finding.assert_id != finding.rule:
        parts.append(f"assert id: {finding.assert_id}")
    return "\n".join(parts)


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (a message may quote control characters)."""
    return "".join(
        ch
        for ch in text
        if ch in "\t\n\r"
        or 0x20 <= ord(ch) <= 0xD7FF
        or 0xE000 <= ord(ch) <= 0xFFFD
        or 0x10000 <= ord(ch) <= 0x10FFFF
    )


def _properties(case: etree._Element, report: Report) -> None:
    """The rule sets applied (name, version, artefact sha256) and why, as testcase properties."""
    if report.error is not None:
        return
    rows: list[tuple[str, str]] = []
    for rule_set in report.applied_rule_sets():
        for item in rule_set["artefacts"]:
            sha = f" sha256:{item['sha256']}" if item["sha256"] else ""
            rows.append(
                ("rule-set", f"{rule_set['name']} {item['version']} {item['artefact']}{sha}")
            )
    rows.extend(("selection", line) for line in selection_lines(report))
    if report.attachment:
        rows.append(("embedded-file", report.attachment))
    if not rows:
        return
    properties = etree.SubElement(case, "properties")
    for name, value in rows:
        prop = etree.SubElement(properties, "property")
        prop.set("name", name)
        prop.set("value", _clean(value))


def _testcase(report: Report, reader: InvoiceValues) -> tuple[etree._Element, int, int]:
    """One testcase and its failure and error counts."""
    case = etree.Element("testcase")
    if report.error is not None:
        classname = "facturflow.unreadable"
    else:
        classname = f"facturflow.{report.syntax or 'unknown'}.{report.profile or 'unknown'}"
    case.set("classname", classname)
    case.set("name", _clean(report.path))
    case.set("file", _clean(report.path))
    case.set("time", f"{sum(layer.seconds for layer in report.layers):.3f}")
    _properties(case, report)
    failures = errors = 0
    if report.error is not None:
        error = etree.SubElement(case, "error")
        error.set("type", report.error_type or "InputError")
        error.set("message", _clean(report.error))
        error.text = _clean(report.error)
        errors += 1
    # An unreadable input's findings restate its error: one <error> says it all.
    for finding in report.fatal if report.error is None else ():
        failure = etree.SubElement(case, "failure")
        failure.set("type", finding.rule)
        message = " ".join(finding.message.split())
        if report.container == "pdf" and finding.location.line:
            message += (
                f" (line {finding.location.line} of the embedded {report.attachment or 'XML'})"
            )
        path = finding_term_path(finding.location.xpath, finding.business_terms)
        if path:
            message += f" [at {path}]"
        values = reader.finding(report, finding)
        if values:
            message += f" values: {_values_text(values)}"
        failure.set("message", _clean(message))
        failure.text = _clean(_describe(finding, report, values))
        failures += 1
    if report.error is None and not report.ok and not failures:
        # Invalid without a fatal finding (a required layer did not run): still a failure.
        missing = [layer.name for layer in report.layers if layer.required and not layer.ran]
        failure = etree.SubElement(case, "failure")
        failure.set("type", "LAYER-NOT-RUN")
        failure.set("message", f"required layers did not run: {', '.join(missing)}")
        failures += 1
    others = report.by_severity("warning", "information") if report.error is None else ()
    notes = [*report.warnings]
    if others or notes:
        out = etree.SubElement(case, "system-out")
        described = (_describe(f, report, reader.finding(report, f)) for f in others)
        out.text = _clean("\n\n".join([*notes, *described]))
    return case, failures, errors


def render(reports: Iterable[Report]) -> str:
    """The JUnit XML document as text (UTF-8, with an XML declaration)."""
    batch = list(reports)
    root = etree.Element("testsuites")
    suite = etree.SubElement(root, "testsuite")
    suite.set("name", SUITE_NAME)
    total_failures = total_errors = 0
    total_time = 0.0
    reader = InvoiceValues()
    for report in batch:
        case, failures, errors = _testcase(report, reader)
        suite.append(case)
        total_failures += failures and 1
        total_errors += errors and 1
        total_time += float(case.get("time", "0"))
    # Counts are per testcase (a file is one test), as JUnit consumers expect.
    for element in (root, suite):
        element.set("tests", str(len(batch)))
        element.set("failures", str(total_failures))
        element.set("errors", str(total_errors))
        element.set("time", f"{total_time:.3f}")
    root.set("name", "facturflow")
    suite.set("skipped", "0")
    # Write the text as UTF-8: the declaration says so.
    body = etree.tostring(root, encoding="unicode", pretty_print=True)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body
