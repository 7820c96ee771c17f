"""The key-based path rewrites: parent-child, preceding-key and root-predicate."""

from __future__ import annotations

import re

from lxml import etree

from .common import (
    _bound_as_at_root,
    _declare,
    _focus_kept,
    _numbered,
    _scanned_in_safe_templates,
    _xpath2,
)
from .xpath import _NCNAME, _PLAIN_PREDICATE, _QN, _QNAME_STEP, _X, xpath_scan

# The elements an invoice repeats per line: a ".." step from one of them, or above, lands on an
# element with one child per line, whose children a child step then scans (for every line).
_LINE_ELEMENTS = {
    "{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}InvoiceLine",
    "{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}CreditNoteLine",
    "{urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100}"
    "IncludedSupplyChainTradeLineItem",
}
_UP_PATH = re.compile(rf"(?P<ups>(?:\.\./)*\.\.)(?P<sep>//?)(?P<name>{_QN})")
_CHILD_KEY = "facturflow-children-"
_DESCENDANT_KEY = "facturflow-descendants-"


def _pattern_levels(pattern: str, nsmap: dict[str | None, str]) -> list[set[str]] | None:
    """The element names ({uri}local) of each step of a relative pattern (predicates set aside;
    a parenthesised union of paths of one length gives each level the names of its branches),
    or None for any other shape."""
    text = pattern.strip()
    try:
        scanned = xpath_scan(text)
    except ValueError:
        return None
    kept, brackets = [], 0
    for _, ch, _ in scanned:  # string literals are not scanned: they only occur in predicates
        if ch == "[":
            brackets += 1
        elif ch == "]":
            brackets -= 1
        elif not brackets:
            kept.append(ch)
    bare = "".join(kept)
    if text.startswith("/") or "//" in bare or "::" in bare or "|" in re.sub(r"\([^()]*\)", "",
                                                                            bare):
        return None
    levels: list[set[str]] = []
    for part in re.findall(r"\([^()]*\)|[^/()]+", bare):
        branches = [b.strip().split("/") for b in part.strip("()").split("|")]
        if len({len(b) for b in branches}) != 1:
            return None
        for k in range(len(branches[0])):
            names = set()
            for branch in branches:
                m = _QNAME_STEP.match(branch[k].strip())
                if m is None or m["prefix"] not in nsmap:
                    return None
                names.add(f"{{{nsmap[m['prefix']]}}}{m['local']}")
            levels.append(names)
    return levels


def _index_up_paths(tree: etree._ElementTree, safe_modes: set[str],
                    guarded: set[tuple[etree._Element, str]]) -> bool:
    """parent-child: see the module docstring. `safe_modes`: _source_modes of the tree."""
    root = tree.getroot()
    if not _xpath2(root) or not safe_modes:
        return False
    taken = {e.get("name") for e in root.iter(f"{_X}key")}
    keys: dict[tuple[str, str], str] = {}
    changed = False
    for element, attr, value, template, scan_list in _scanned_in_safe_templates(
            root, safe_modes, lambda text: "../" in text or "..//" in text):
        if (element, attr) in guarded:
            continue
        levels = _pattern_levels(template.get("match") or "", dict(template.nsmap))
        if not levels:
            continue
        scan = {i for i, _, _ in scan_list}
        out: list[str] = []
        at = 0
        for m in _UP_PATH.finditer(value):
            if m.start() < at or m.start() not in scan:
                continue
            before = value[: m.start()].rstrip()
            if before.endswith(("/", "!", ".", ")", "]")) or re.search(r"[\w-]$", before):
                continue  # a step of a longer path, not the start of one
            if not _focus_kept(value, scan_list, m.start()):
                continue
            ups = m["ups"].count("..")
            if ups > len(levels) or not any(
                    names & _LINE_ELEMENTS for names in levels[len(levels) - ups :]):
                continue  # lands below every line: a small parent
            if not _bound_as_at_root(element, root, [m["name"].split(":")[0]]):
                continue
            descendant = m["sep"] == "//"
            use = ("for $facturflow_a in ancestor::node() return generate-id($facturflow_a)"
                   if descendant else "generate-id(..)")
            key = _numbered(keys, (m["name"], use),
                            _DESCENDANT_KEY if descendant else _CHILD_KEY, taken)
            # The named children (descendants) of the element the ".." steps reach, in document
            # order; no element ('' is no node's identifier): none.
            out.append(value[at : m.start()])
            out.append(f"key('{key}', generate-id({m['ups']}))")
            at = m.end()
        if out:
            out.append(value[at:])
            element.set(attr, "".join(out))
            changed = True
    for (name, use), key in keys.items():
        _declare(root, "key", name=key, match=name, use=use)
    return changed


# [. = preceding::a:X[P]/a:Y[Q]]: whether an equal value comes earlier in the document.
_PRECEDING_EQUAL = re.compile(
    rf"\[\s*\.\s*=\s*preceding::(?P<path>{_QN}(?:\[[^\[\]]*\])?(?:/{_QN}(?:\[[^\[\]]*\])?)?)"
    rf"\s*\]"
)
_PRECEDING_KEY = "facturflow-values-"


def _index_preceding_values(tree: etree._ElementTree, safe_modes: set[str]) -> bool:
    """preceding-key: see the module docstring. `safe_modes`: _source_modes of the tree."""
    root = tree.getroot()
    if not _xpath2(root) or not safe_modes:
        return False
    if any("default-collation" in str(name) for e in root.iter() if isinstance(e.tag, str)
           for name in e.attrib):
        return False
    taken = {e.get("name") for e in root.iter(f"{_X}key")}
    keys: dict[str, str] = {}
    changed = False
    for element, attr, value, _, scan_list in _scanned_in_safe_templates(
            root, safe_modes, lambda text: "preceding::" in text):
        scan = {i for i, _, _ in scan_list}
        out: list[str] = []
        at = 0
        for m in _PRECEDING_EQUAL.finditer(value):
            if m.start() < at or m.start() not in scan:
                continue
            path = m["path"]
            predicates = re.findall(r"\[([^\]]*)\]", path)
            if not all(_PLAIN_PREDICATE.match(p) and "$" not in p for p in predicates):
                continue
            if not _bound_as_at_root(element, root, re.findall(rf"({_NCNAME}):{_NCNAME}", path)):
                continue
            key = _numbered(keys, path, _PRECEDING_KEY, taken)
            steps = re.sub(r"\[[^\]]*\]", "", path).count("/")  # slashes outside predicates
            first = "/".join([".."] * steps) or "."
            n = "$facturflow_n"
            # The nodes the path reaches with the same string value whose first step's node is
            # on the preceding axis: before the node, and not one of its ancestors.
            out.append(value[at : m.start()])
            out.append(f"[let {n} := . return exists(key('{key}', string({n}))"
                       f"[{first} << {n}][not({n}/ancestor::node() intersect {first})])]")
            at = m.end()
        if out:
            out.append(value[at:])
            element.set(attr, "".join(out))
            changed = True
    for path, key in keys.items():
        _declare(root, "key", name=key, match=path, use=".")
    return changed


# (ubl:Invoice | cn:CreditNote)[P]/...: a rule pattern whose first step's predicate, tried on
# the document element for every node the rest of the pattern matches, scans its children.
_ROOT_STEP = re.compile(
    rf"^\s*(?P<names>\(\s*{_QN}(?:\s*\|\s*{_QN})*\s*\)|{_QN})\s*\[(?P<predicate>[^\[\]]*)\]\s*/"
)
_ROOT_PREDICATE = re.compile(
    rf"^(?:\s|@?{_QN}|/|'[^']*'|\"[^\"]*\"|!?=|\(|\)|,|\||\band\b|\bor\b|\bnot\()+$"
)
_ROOT_PREDICATE_KEY = "facturflow-root-predicate-"


def _hoist_root_predicates(tree: etree._ElementTree, safe_modes: set[str]) -> bool:
    """root-predicate: see the module docstring. `safe_modes`: _source_modes of the tree."""
    root = tree.getroot()
    if not _xpath2(root) or not safe_modes:
        return False
    taken = {e.get("name") for e in root.iter(f"{_X}key")}
    keys: dict[str, str] = {}  # key match -> key name
    changed = False
    for template in root.iterchildren(f"{_X}template"):
        modes = set((template.get("mode") or "").split())
        if not modes or not modes <= safe_modes or template.get("priority") is None:
            continue  # a default priority would depend on the pattern's shape
        match = template.get("match") or ""
        m = _ROOT_STEP.match(match)
        if m is None or not _ROOT_PREDICATE.match(m["predicate"]):
            continue
        without = match[: m.start("predicate") - 1] + match[m.end("predicate") + 1 :]
        levels = _pattern_levels(without, dict(template.nsmap))
        if not levels or not any(level & _LINE_ELEMENTS for level in levels[1:]):
            continue  # tried on few nodes: not worth a key
        if not _bound_as_at_root(template, root, re.findall(
                rf"({_NCNAME}):{_NCNAME}", m["names"] + " " + m["predicate"])):
            continue
        names = [n.strip() for n in m["names"].strip("()").split("|")]
        key_match = " | ".join(f"{n}[{m['predicate']}]" for n in names)
        key = _numbered(keys, key_match, _ROOT_PREDICATE_KEY, taken)
        # The elements of those names for which the predicate holds, found once per document
        # (a key, not a global variable: Saxon 13 cannot copy a variable reference out of a
        # pattern it distributes over a union).
        template.set("match", match[: m.start("predicate")]
                     + f"exists(key('{key}', generate-id()))" + match[m.end("predicate") :])
        changed = True
    for key_match, key in keys.items():
        _declare(root, "key", name=key, match=key_match, use="generate-id()")
    return changed
