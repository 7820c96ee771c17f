"""The key-based path rewrites: parent-child, preceding-key and root-predicate."""

from __future__ import annotations

import re

from lxml import etree

from .common import (
    _bound_as_at_root,
    _focus_kept,
    _Hoist,
    _hoisting,
    _match_use,
    _scanned_in_safe_templates,
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
    # By (match, use).
    keys: _Hoist[tuple[str, str]] | None = _hoisting(tree, _CHILD_KEY, "key",
                                                     safe_modes=safe_modes)
    if keys is None:
        return False
    root = keys.root
    for element, attr, value, template, scan_list in _scanned_in_safe_templates(
            root, safe_modes, lambda text: "../" in text or "..//" in text):
        if (element, attr) in guarded:
            continue
        levels = _pattern_levels(template.get("match") or "", dict(template.nsmap))
        if not levels:
            continue
        for m in keys.matches(_UP_PATH, value, {i for i, _, _ in scan_list}):
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
            key = keys.name((m["name"], use), _DESCENDANT_KEY if descendant else None)
            # The named children (descendants) of the element the ".." steps reach, in document
            # order; no element ('' is no node's identifier): none.
            keys.replace(m.start(), m.end(), f"key('{key}', generate-id({m['ups']}))")
        keys.substitute(element, attr, value)
    return keys.declare("key", _match_use)


# [. = preceding::a:X[P]/a:Y[Q]]: whether an equal value comes earlier in the document.
_PRECEDING_EQUAL = re.compile(
    rf"\[\s*\.\s*=\s*preceding::(?P<path>{_QN}(?:\[[^\[\]]*\])?(?:/{_QN}(?:\[[^\[\]]*\])?)?)"
    rf"\s*\]"
)
_PRECEDING_KEY = "facturflow-values-"


def _index_preceding_values(tree: etree._ElementTree, safe_modes: set[str]) -> bool:
    """preceding-key: see the module docstring. `safe_modes`: _source_modes of the tree."""
    keys: _Hoist[str] | None = _hoisting(  # by path
        tree, _PRECEDING_KEY, "key", safe_modes=safe_modes, codepoints=True)
    if keys is None:
        return False
    root = keys.root
    for element, attr, value, _, scan_list in _scanned_in_safe_templates(
            root, safe_modes, lambda text: "preceding::" in text):
        for m in keys.matches(_PRECEDING_EQUAL, value, {i for i, _, _ in scan_list}):
            path = m["path"]
            predicates = re.findall(r"\[([^\]]*)\]", path)
            if not all(_PLAIN_PREDICATE.match(p) and "$" not in p for p in predicates):
                continue
            if not _bound_as_at_root(element, root, re.findall(rf"({_NCNAME}):{_NCNAME}", path)):
                continue
            key = keys.name(path)
            steps = re.sub(r"\[[^\]]*\]", "", path).count("/")  # slashes outside predicates
            first = "/".join([".."] * steps) or "."
            n = "$facturflow_n"
            # The nodes the path reaches with the same string value whose first step's node is
            # on the preceding axis: before the node, and not one of its ancestors.
            keys.replace(m.start(), m.end(),
                         f"[let {n} := . return exists(key('{key}', string({n}))"
                         f"[{first} << {n}][not({n}/ancestor::node() intersect {first})])]")
        keys.substitute(element, attr, value)
    return keys.declare("key", lambda path: {"match": path, "use": "."})


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
    keys: _Hoist[str] | None = _hoisting(  # by key match
        tree, _ROOT_PREDICATE_KEY, "key", safe_modes=safe_modes)
    if keys is None:
        return False
    root = keys.root
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
        key = keys.name(key_match)
        # The elements of those names for which the predicate holds, found once per document
        # (a key, not a global variable: Saxon 13 cannot copy a variable reference out of a
        # pattern it distributes over a union).
        keys.replace(m.start("predicate"), m.end("predicate"),
                     f"exists(key('{key}', generate-id()))")
        keys.substitute(template, "match", match)
    return keys.declare("key", lambda key_match: {"match": key_match, "use": "generate-id()"})
