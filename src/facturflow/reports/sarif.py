"""SARIF 2.1.0: one run of the tool `facturflow`, a result per finding, rule ids as SARIF rules.

Every result names the file given (the PDF for a Factur-X, never a name inside it) with a
`region`, as GitHub code scanning requires to attach an alert: the finding's line for an XML file
(line 1 when it has none); line 1 for a PDF, whose finding line is a line of the embedded XML,
said in the message and in the result's properties `embeddedFile` and `embeddedLine`.
A finding's XPath goes in `logicalLocations`; its business-term path and the values of its terms
(facturflow.reports.values) end the message and go in the properties `term_path` and `values`;
`partialFingerprints` keep an alert the same across runs. An input that cannot be read gives its
findings (XML-MALFORMED, NOT-AN-INVOICE, ...) as results, or, when it has none, one error result
with rule id `INPUT-UNREADABLE`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import PurePath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..validation.report import Finding, Report
from .hints import hint
from .termpath import finding_term_path
from .values import InvoiceValues

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SARIF_VERSION = "2.1.0"
UNREADABLE_RULE = "INPUT-UNREADABLE"

_LEVEL = {"fatal": "error", "warning": "warning", "information": "note"}


def artifact_uri(path: str) -> str:
    """A URI reference for a report path: relative paths stay relative (CI resolves them
    against the checkout), absolute ones become file:// URIs."""
    if PureWindowsPath(path).drive:
        return PureWindowsPath(path).as_uri()
    posix = path.replace("\\", "/")
    if posix.startswith("/"):
        return "file://" + quote(posix, errors="surrogateescape")
    return quote(str(PurePath(posix)).replace("\\", "/"), errors="surrogateescape")


class _Rules:
    """The run's rules array, one entry per rule id, in order of first appearance."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}

    def index(self, rule: str, description: str, layer: str, terms: tuple[str, ...]) -> int:
        if rule not in self._index:
            entry: dict[str, Any] = {
                "id": rule,
                "shortDescription": {"text": " ".join(description.split()) or rule},
                "properties": {"layer": layer},
            }
            if terms:
                entry["properties"]["tags"] = list(terms)
            advice = hint(rule, "en")
            if advice:  # GitHub shows a rule's help beside its alerts
                entry["help"] = {"text": advice}
            self._index[rule] = len(self.entries)
            self.entries.append(entry)
        return self._index[rule]


def _fingerprint(*parts: str) -> str:
    # A non-UTF-8 file name (surrogate-escaped by os.fsdecode) hashes as its own bytes.
    data = "\x1f".join(parts).encode("utf-8", errors="surrogateescape")
    return hashlib.sha256(data).hexdigest()[:32]


def _result(
    finding: Finding, report: Report, rules: _Rules, artifact_index: int, reader: InvoiceValues
) -> dict[str, Any]:
    line = finding.location.line if finding.location.line and finding.location.line > 0 else None
    embedded = report.container == "pdf" and line is not None
    physical: dict[str, Any] = {
        "artifactLocation": {"uri": artifact_uri(report.path), "index": artifact_index},
        # GitHub places an alert only with a start line; a PDF's lines are not the XML's.
        "region": {"startLine": line if line is not None and not embedded else 1},
    }
    location: dict[str, Any] = {"physicalLocation": physical}
    if finding.location.xpath:
        location["logicalLocations"] = [
            {"fullyQualifiedName": finding.location.xpath, "kind": "element"}
        ]
    properties: dict[str, Any] = {"layer": finding.layer, "severity": finding.severity}
    if finding.assert_id:
        properties["assert_id"] = finding.assert_id
    if finding.business_terms:
        properties["business_terms"] = list(finding.business_terms)
    text = " ".join(finding.message.split()) or finding.rule
    if embedded:
        attachment = report.attachment or "embedded XML"
        properties["embeddedFile"] = attachment
        properties["embeddedLine"] = line
        text += f" (line {line} of the embedded {attachment})"
    path = finding_term_path(finding.location.xpath, finding.business_terms)
    if path:
        properties["term_path"] = path
        text += f" [at {path}]"
    values = reader.finding(report, finding)
    if values:
        properties["values"] = [value.as_dict() for value in values]
        text += f" values: {'; '.join(value.text() for value in values)}"
    return {
        "ruleId": finding.rule,
        "ruleIndex": rules.index(
            finding.rule, finding.message, finding.layer, finding.business_terms
        ),
        "level": _LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {
            "facturflow/v1": _fingerprint(
                report.path, finding.rule, finding.location.xpath or "", finding.message
            )
        },
        "properties": properties,
    }


def as_document(reports: Iterable[Report]) -> dict[str, Any]:
    """The SARIF log as Python data."""
    rules = _Rules()
    reader = InvoiceValues()
    artifacts: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for report in reports:
        artifact_index = len(artifacts)
        artifact: dict[str, Any] = {"location": {"uri": artifact_uri(report.path)}}
        if report.container:
            artifact["mimeType"] = "application/pdf" if report.container == "pdf" else "text/xml"
        if report.attachment:
            artifact.setdefault("properties", {})["embeddedFile"] = report.attachment
        if report.error is None and report.layers:
            # Which rule sets judged the file (version, artefact sha256) and why.
            artifact.setdefault("properties", {})["ruleSets"] = report.applied_rule_sets()
            if report.selection is not None:
                artifact["properties"]["selection"] = report.selection
        artifacts.append(artifact)
        if report.error is not None and not report.findings:
            results.append(
                {
                    "ruleId": UNREADABLE_RULE,
                    "ruleIndex": rules.index(
                        UNREADABLE_RULE, "The input could not be read as an invoice", "xml", ()
                    ),
                    "level": "error",
                    "message": {"text": report.error},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {
                                    "uri": artifact_uri(report.path),
                                    "index": artifact_index,
                                },
                                "region": {"startLine": 1},
                            }
                        }
                    ],
                    "partialFingerprints": {
                        "facturflow/v1": _fingerprint(report.path, UNREADABLE_RULE)
                    },
                }
            )
        for finding in report.findings:
            results.append(_result(finding, report, rules, artifact_index, reader))
    driver: dict[str, Any] = {
        "name": "facturflow",
        "version": __version__,
        "rules": rules.entries,
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": driver},
                "artifacts": artifacts,
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def render(reports: Iterable[Report]) -> str:
    """The SARIF log as JSON text."""
    return json.dumps(as_document(reports), indent=2, ensure_ascii=False)
