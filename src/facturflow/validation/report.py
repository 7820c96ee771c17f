"""Findings and reports: the data every validation layer produces and every renderer reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["fatal", "warning", "information"]
SEVERITIES: tuple[Severity, ...] = ("fatal", "warning", "information")
Layer = Literal["xml", "xsd", "schematron", "pdf", "selection"]

# Rule id of the finding a layer yields when it could not run: the report then fails closed.
LAYER_FAILED = "LAYER-FAILED"
# Rule id of the finding that names selected rule sets that do not apply to the document: fatal
# when none applies (nothing judged the file), a warning when others did.
RULES_NOT_APPLICABLE = "RULES-NOT-APPLICABLE"
# Rule id of the information finding naming a default rule set that the invoice's scope left
# out (a German invoice and BR-FR), with why and how to force it.
RULES_NOT_IN_SCOPE = "RULES-NOT-IN-SCOPE"
# Rule id of the information finding naming a default rule set the invoice is in the scope of
# but that this installation does not have (XRechnung before its stylesheets are vendored).
RULES_NOT_INSTALLED = "RULES-NOT-INSTALLED"


@dataclass(frozen=True)
class Location:
    """Where a finding points: an XPath into the invoice and, when known, its source line."""

    xpath: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        parts = [p for p in (self.xpath, f"line {self.line}" if self.line else None) if p]
        return ", ".join(parts)


@dataclass(frozen=True)
class Finding:
    """One broken rule (or one layer that could not run)."""

    layer: Layer
    rule: str
    severity: Severity
    message: str
    location: Location = field(default_factory=Location)
    assert_id: str | None = None
    business_terms: tuple[str, ...] = ()
    artefact: str | None = None

    @property
    def fatal(self) -> bool:
        return self.severity == "fatal"

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape of one finding."""
        return {
            "layer": self.layer,
            "rule": self.rule,
            "assert_id": self.assert_id,
            "severity": self.severity,
            "message": self.message,
            "location": {"xpath": self.location.xpath, "line": self.location.line},
            "business_terms": list(self.business_terms),
        }


@dataclass(frozen=True)
class LayerRun:
    """One artefact applied (or not) to the document."""

    name: str
    layer: Layer
    artefact: str
    version: str
    ran: bool
    required: bool = True
    seconds: float = 0.0
    sha256: str | None = None  # of the artefact file (None for the parser and the PDF rules)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": self.layer,
            "artefact": self.artefact,
            "version": self.version,
            "ran": self.ran,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Report:
    """The result of validating one input.

    `error` is set (and `ok` is False) when the input could not be read at all.
    """

    path: str
    container: str | None
    syntax: str | None
    profile: str | None
    findings: tuple[Finding, ...] = ()
    layers: tuple[LayerRun, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None
    rule_sets: tuple[str, ...] = ()
    # How the rule sets were chosen: {"scope": ..., "french_rules": ..., "not_in_scope": [...]}
    selection: dict[str, Any] | None = None
    # The name of the invoice XML embedded in a PDF: finding lines are lines of that file.
    attachment: str | None = None
    # True when the report comes from the verdict cache (validation/verdict_cache.py).
    cached: bool = False

    def where(self, finding: Finding) -> str:
        """A finding's location for people: its XPath and line, saying which file the line is
        in when the input is a PDF (the line is one of the embedded XML, not of the PDF)."""
        xpath, line = finding.location.xpath, finding.location.line
        parts = [xpath] if xpath else []
        if line:
            if self.container == "pdf":
                parts.append(f"line {line} of the embedded {self.attachment or 'XML'}")
            else:
                parts.append(f"line {line}")
        return ", ".join(parts)

    def applied_rule_sets(self) -> list[dict[str, Any]]:
        """Every rule set applied, with the version and sha256 of each of its artefacts."""
        by_name: dict[str, list[dict[str, Any]]] = {}
        for layer in self.layers:
            if layer.layer == "xml":
                continue
            by_name.setdefault(layer.name, []).append(
                {
                    "artefact": layer.artefact,
                    "version": layer.version,
                    "sha256": layer.sha256,
                    "ran": layer.ran,
                }
            )
        return [{"name": name, "artefacts": items} for name, items in by_name.items()]

    @property
    def ok(self) -> bool:
        """True when the input was read, every required layer ran, and nothing is fatal."""
        if self.error is not None:
            return False
        if any(layer.required and not layer.ran for layer in self.layers):
            return False
        return not any(f.fatal for f in self.findings)

    @property
    def valid(self) -> bool:
        return self.ok

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def by_severity(self, *severities: Severity) -> tuple[Finding, ...]:
        """Findings with one of the given severities."""
        return tuple(f for f in self.findings if f.severity in severities)

    @property
    def fatal(self) -> tuple[Finding, ...]:
        return self.by_severity("fatal")

    def failed_rules(self, *severities: Severity) -> set[str]:
        """The set of rule ids that fired (all severities when none is given)."""
        chosen = severities or SEVERITIES
        return {f.rule for f in self.findings if f.severity in chosen}

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape of one file in `validate --format json`."""
        data: dict[str, Any] = {
            "path": self.path,
            "container": self.container,
            "syntax": self.syntax,
            "profile": self.profile,
            "valid": self.ok,
            "cached": self.cached,
            "layers": [layer.as_dict() for layer in self.layers],
            "findings": [f.as_dict() for f in self.findings],
        }
        if self.error is None:
            data["rule_sets"] = self.applied_rule_sets()
        if self.selection is not None:
            data["selection"] = self.selection
        if self.attachment is not None:
            data["attachment"] = self.attachment
        if self.warnings:
            data["warnings"] = list(self.warnings)
        if self.error is not None:
            data["error"] = self.error
        return data


def fatal_report(path: str, layer: Layer, rule: str, message: str, *, error_type: str,
                 error: str | None = None) -> Report:
    """The report of an input that validation never reached: one fatal finding, nothing known
    of its container, syntax or profile. `error` set makes it unreadable rather than invalid."""
    finding = Finding(layer=layer, rule=rule, severity="fatal", message=message)
    return Report(path=path, container=None, syntax=None, profile=None, findings=(finding,),
                  error=error, error_type=error_type)
