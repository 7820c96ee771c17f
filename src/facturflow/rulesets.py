"""Named rule sets built from the vendored artefacts (CEN CII, XRechnung, Peppol BIS, FNFE builds).

A registry only: it says what each named set is (artefacts per syntax, version, sha256 pinned in
the manifest, the invoices it is meant for) and resolves its artefacts. Which sets apply to a
document by default is decided in `facturflow.rules`; these sets are not wired into it here.

    cen-cii          CEN EN 16931 CII rules 1.3.16 (the standalone CEN stylesheet), for CII
                     that is not a Factur-X profile (XRechnung, Peppol and plain EN 16931 CII)
    xrechnung        KoSIT XRechnung 3.0 CIUS rules (BR-DE-*), CII and UBL
    peppol           Peppol BIS Billing 3.0 rules (PEPPOL-EN16931-*), UBL and CII
    fr-ctc-warning   FNFE BR-FR WARNING build (rules not yet enforced are warnings), CII and UBL
    cdar             CDAR D22B lifecycle messages: XSD and BR-FR-CDV rules (FATAL build)
    cdar-warning     the same with the BR-FR-CDV WARNING build

XRechnung and Peppol BIS also require the EN 16931 rules: `cen-cii` for CII, the CEN UBL
stylesheet (rule set `en16931` of `facturflow.rules`) for UBL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from .artefacts import VENDORED, Artefact, builtin, manifest_paths

UBL = ("ubl-invoice", "ubl-creditnote")


@dataclass(frozen=True)
class NamedRuleSet:
    """A named rule set: the artefact keys it applies per syntax, in order, and its scope."""

    name: str
    title: str
    scope: str
    artefacts: tuple[tuple[str, tuple[str, ...]], ...]  # (syntax, artefact keys)

    def keys_for(self, syntax: str) -> tuple[str, ...]:
        """The artefact keys this set applies to a document of `syntax` (empty: not applicable)."""
        for candidate, keys in self.artefacts:
            if candidate == syntax:
                return keys
        return ()

    @property
    def syntaxes(self) -> tuple[str, ...]:
        return tuple(syntax for syntax, _ in self.artefacts)


def _both(cii: str, ubl: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (("cii", (cii,)), *((syntax, (ubl,)) for syntax in UBL))


RULE_SETS: tuple[NamedRuleSet, ...] = (
    NamedRuleSet(
        "cen-cii",
        "CEN EN 16931 CII rules 1.3.16",
        "CII that is not a Factur-X profile: XRechnung CII, Peppol CII, plain EN 16931 CII",
        (("cii", ("sch-en16931-cii",)),),
    ),
    NamedRuleSet(
        "xrechnung",
        "XRechnung CIUS rules (KoSIT, BR-DE-*)",
        "invoices declaring XRechnung in BT-24 (urn:xeinkauf.de:kosit:xrechnung_3.0)",
        _both("sch-xrechnung-cii", "sch-xrechnung-ubl"),
    ),
    NamedRuleSet(
        "peppol",
        "Peppol BIS Billing 3.0 rules (PEPPOL-EN16931-*)",
        "invoices declaring Peppol BIS Billing 3.0 in BT-24 "
        "(urn:fdc:peppol.eu:2017:poacc:billing:3.0)",
        _both("sch-peppol-cii", "sch-peppol-ubl"),
    ),
    NamedRuleSet(
        "fr-ctc-warning",
        "French CTC rules BR-FR, FNFE WARNING build",
        "French-scope invoices, before the cut-over date of the rules not yet enforced",
        _both("sch-brfr-cii-warning", "sch-brfr-ubl-warning"),
    ),
    NamedRuleSet(
        "cdar",
        "CDAR D22B lifecycle messages: XSD + BR-FR-CDV (FATAL build)",
        "CrossDomainAcknowledgementAndResponse D22B messages of the French CTC lifecycle",
        (("cdar", ("xsd-cdar-d22b", "sch-brfr-cdv-cdar")),),
    ),
    NamedRuleSet(
        "cdar-warning",
        "CDAR D22B lifecycle messages: XSD + BR-FR-CDV (WARNING build)",
        "the same, with the rules not yet enforced as warnings",
        (("cdar", ("xsd-cdar-d22b", "sch-brfr-cdv-cdar-warning")),),
    ),
)
_BY_NAME = {rule_set.name: rule_set for rule_set in RULE_SETS}
NAMES: tuple[str, ...] = tuple(_BY_NAME)


def get(name: str) -> NamedRuleSet:
    """The named rule set; raises KeyError naming the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown rule set {name!r}; known: {', '.join(NAMES)}") from None


def artefacts(name: str, syntax: str) -> list[Artefact]:
    """The artefacts of a named set for a syntax, resolved (ArtefactError when one is missing)."""
    return [builtin(key) for key in get(name).keys_for(syntax)]


@cache
def _pins() -> dict[str, dict[str, str]]:
    pins: dict[str, dict[str, str]] = {}
    for path in manifest_paths().values():
        for entry in json.loads(path.read_text(encoding="utf-8"))["artefacts"]:
            pins[entry["key"]] = entry
    return pins


def describe(name: str) -> list[dict[str, str]]:
    """What a report names for a set: per artefact its syntax, file, version and pinned sha256."""
    rule_set = get(name)
    rows = []
    for syntax, keys in rule_set.artefacts:
        for key in keys:
            pin = _pins().get(key, {})
            rows.append(
                {
                    "rule_set": name,
                    "syntax": syntax,
                    "key": key,
                    "name": pin.get("name", key),
                    "version": pin.get("version", "unpinned"),
                    "sha256": pin.get("sha256", "unpinned"),
                }
            )
    return rows


def _check_registry() -> None:
    """Every key the registry names is a vendored artefact (a typo fails at import)."""
    known = {spec.key for spec in VENDORED}
    for rule_set in RULE_SETS:
        for _, keys in rule_set.artefacts:
            unknown = set(keys) - known
            if unknown:  # pragma: no cover - a programming error
                raise RuntimeError(f"rule set {rule_set.name} names unknown artefacts {unknown}")


_check_registry()
