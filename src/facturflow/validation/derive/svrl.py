"""The SVRL output rewrites: bare-fired-rule and bare-active-pattern."""

from __future__ import annotations

import re

from lxml import etree

from .common import _default_mode_templates
from .xpath import _NCNAME, _X

SVRL = "http://purl.oclc.org/dsdl/svrl"


def _bare_fired_rules(tree: etree._ElementTree) -> bool:
    """Drop the attributes of the svrl:fired-rule elements the rules output.

    facturflow reads only failed asserts, successful reports, and whether any rule fired (its
    fail-closed check); the context of each fired rule (most of the SVRL: 3 MB for a 1,000-line
    invoice) is written by Saxon and parsed again by lxml for nothing. Precondition, per
    element: a literal svrl:fired-rule inside a template, empty, whose attributes are plain
    strings (no attribute value template, so nothing that could raise is removed). The number
    and order of fired-rule elements stay the same.
    """
    changed = False
    for element in tree.getroot().iter(f"{{{SVRL}}}fired-rule"):
        if (
            len(element)
            or (element.text or "").strip()
            or not element.attrib
            or any("{" in value for value in element.attrib.values())
            or next(element.iterancestors(f"{_X}template"), None) is None
        ):
            continue
        element.attrib.clear()
        changed = True
    return changed


def _bare_active_patterns(tree: etree._ElementTree) -> bool:
    """Empty the svrl:active-pattern elements the root template writes, one per pattern.

    Each carries its pattern's id and name and twice document-uri(/), built with xsl:attribute:
    about 0.5 ms per transformation for the 66 patterns of Factur-X EN 16931, for attributes
    facturflow never reads. Precondition, per element: a literal svrl:active-pattern in the root
    template whose content is only xsl:attribute elements with plain names holding literal text
    or xsl:value-of select="document-uri(/)" (which cannot raise on the document node), and whose
    own attributes are plain strings. The elements stay, in the same order.
    """
    templates = [t for t in _default_mode_templates(tree.getroot()) if t.get("match") == "/"]
    if len(templates) != 1:
        return False
    changed = False
    for element in templates[0].iter(f"{{{SVRL}}}active-pattern"):
        if (element.text or "").strip() or any("{" in v for v in element.attrib.values()):
            continue
        if not all(_is_constant_attribute(child) for child in element):
            continue
        if not len(element) and not element.attrib:
            continue  # already empty
        for child in list(element):
            element.remove(child)
        element.attrib.clear()
        element.text = None
        changed = True
    return changed


def _is_constant_attribute(element: etree._Element) -> bool:
    if element.tag != f"{_X}attribute" or set(element.attrib) != {"name"}:
        return False
    if not re.fullmatch(_NCNAME, element.get("name") or "") or (element.tail or "").strip():
        return False
    for child in element:
        if child.tag == f"{_X}value-of":
            if child.get("select") != "document-uri(/)" or len(child.attrib) != 1 or len(child):
                return False
        elif child.tag != f"{_X}text" or len(child) or child.attrib:
            return False
        if (child.tail or "").strip():
            return False
    return True
