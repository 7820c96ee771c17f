"""The hoisting rewrites: code-list-map, root-call, root-path (done once, not per rule context)."""

from __future__ import annotations

import re

from lxml import etree

from .common import (
    _bound_as_at_root,
    _focus_kept,
    _Hoist,
    _hoisting,
    _scanned_in_safe_templates,
)
from .xpath import _MAP_NS, _NCNAME, _X, _xpath_attributes, xpath_scan

# contains('<list>', concat(' ', E, ' ')): the list and the start of concat's second argument.
_CODE_LIST_CALL = re.compile(
    r"contains\(\s*(?P<q>['\"])(?P<list>[^'\"]*)(?P=q)\s*,\s*concat\(\s*(?P<q2>['\"]) (?P=q2)\s*,"
)
_CODE_LIST_END = re.compile(r"\s*(['\"]) \1\s*\)\s*\)")
# Tokens without spaces (nor quotes), each between single spaces.
_SPACED_TOKENS = re.compile(r" (?:[^ '\"]+ )+")
_CODE_LIST_MIN_TOKENS = 16  # shorter lists cost little to search
_CODE_LIST_VARIABLE = "facturflow-codes-"


def _argument_end(scan: dict[int, int], xpath: str, comma: int) -> int | None:
    """Index of the comma that ends the function argument following the argument separator at
    `comma`, or None when the argument list closes first. `scan` maps each index outside
    literals and comments to its depth (xpath_scan)."""
    depth = scan[comma]
    for i in range(comma + 1, len(xpath)):
        if scan.get(i, -1) == depth and xpath[i] == ",":
            return i
        if scan.get(i, -1) == depth - 1:  # the closing parenthesis of the argument list
            return None
    return None


def _map_code_lists(tree: etree._ElementTree) -> bool:
    # By list.
    variables: _Hoist[str] | None = _hoisting(tree, _CODE_LIST_VARIABLE, "param", "variable")
    if variables is None:
        return False
    root = variables.root

    def rewrite(xpath: str) -> None:
        try:
            scan = {i: depth for i, _, depth in xpath_scan(xpath)}
        except ValueError:
            return
        for m in variables.matches(_CODE_LIST_CALL, xpath, scan):
            tokens = m["list"]
            if not _SPACED_TOKENS.fullmatch(tokens):
                continue
            if tokens.count(" ") - 1 < _CODE_LIST_MIN_TOKENS:
                continue
            end = _argument_end(scan, xpath, m.end() - 1)
            if end is None or "(:" in xpath[m.end() : end]:
                continue  # comments are kept out of the moved argument
            tail = _CODE_LIST_END.match(xpath, end + 1)
            if tail is None:
                continue
            variable = variables.name(tokens)
            literal = f"{m['q']}{tokens}{m['q']}"
            argument = xpath[m.end() : end]
            w = "$facturflow_w"
            # Same value as the original for every argument (see the module docstring); the
            # argument is evaluated once, inside concat as before (same errors).
            variables.replace(m.start(), tail.end(), (
                f"(let {w} := concat(' ',{argument}, ' ') return "
                f"if (contains(substring({w}, 2, string-length({w}) - 2), ' ')) "
                f"then contains({literal}, {w}) "
                f"else {_MAP_NS}contains(${variable}, {w}))"
            ))

    for element, attr, value in list(_xpath_attributes(root)):
        if "concat(" in value and "contains(" in value:
            rewrite(value)
            variables.substitute(element, attr, value)

    def entries(tokens: str) -> dict[str, str]:
        keys = dict.fromkeys(tokens.split())  # a map constructor refuses duplicate keys
        return {"select": "map{" + ", ".join(f"' {token} ': true()" for token in keys) + "}"}

    return variables.declare("variable", entries)


# custom:isSpecialContract(/ubl:Invoice|/cn:CreditNote): a stylesheet function applied to the
# document element(s), named by absolute one-step paths.
_ROOT_CALL = re.compile(
    rf"(?P<function>{_NCNAME}:{_NCNAME})\(\s*(?P<argument>/{_NCNAME}:{_NCNAME}"
    rf"(?:\s*\|\s*/{_NCNAME}:{_NCNAME})*)\s*\)"
)
_ROOT_CALL_VARIABLE = "facturflow-root-call-"
_ATOMIC_TYPE = re.compile(r"^xs:(boolean|string|integer|decimal|double)[?]?$")
_PURE_FUNCTION_BODY = {f"{_X}{n}" for n in (
    "param", "variable", "sequence", "choose", "when", "otherwise", "if")}


def _hoist_root_calls(tree: etree._ElementTree, safe_modes: set[str]) -> bool:
    """root-call: see the module docstring. `safe_modes`: _source_modes of the tree."""
    # By normalised call.
    variables: _Hoist[str] | None = _hoisting(tree, _ROOT_CALL_VARIABLE, "param", "variable",
                                              safe_modes=safe_modes)
    if variables is None:
        return False
    root = variables.root
    # Functions whose result is one atomic value: a pure function of its argument's nodes.
    functions: dict[str, etree._Element] = {}
    for function in root.iterchildren(f"{_X}function"):
        params = list(function.iterchildren(f"{_X}param"))
        # ... that makes no node (whose identity a call could tell from another call's).
        plain = all(isinstance(e.tag, str) and e.tag in _PURE_FUNCTION_BODY
                    for e in function.iterdescendants())
        if (len(params) == 1 and _ATOMIC_TYPE.match(function.get("as") or "") and plain
                and "generate-id" not in etree.tostring(function, encoding="unicode")):
            functions[function.get("name") or ""] = function
    for element, attr, value, _, scan in _scanned_in_safe_templates(
            root, safe_modes, lambda text: _ROOT_CALL.search(text) is not None):
        depth_at = {i: d for i, _, d in scan}
        for m in variables.matches(_ROOT_CALL, value, depth_at):
            if m["function"] not in functions:
                continue
            if not _focus_kept(value, scan, m.start()):
                continue
            call = m["function"] + "(" + "|".join(
                part.strip() for part in m["argument"].split("|")) + ")"
            prefixes = {name.split(":")[0] for name in re.findall(
                rf"{_NCNAME}:{_NCNAME}", call)}
            if not _bound_as_at_root(element, root, prefixes):
                continue
            variables.replace(m.start(), m.end(), f"${variables.name(call)}")
        variables.substitute(element, attr, value)
    return variables.declare("variable", lambda call: {"select": call})


# An absolute path: name steps (child, attribute) with predicates that cannot raise an error nor
# see the rule's context (names, attributes, string literals, =, !=, and, or, not(), integers
# alone).
_STEP = rf"(?:@?{_NCNAME}:{_NCNAME}|@{_NCNAME})"
_SAFE_PREDICATE = re.compile(
    rf"^\[(?:\s*\d+\s*|(?:\s|{_STEP}|/|'[^']*'|\"[^\"]*\"|!?=|\(|\)|,|\band\b|\bor\b|\bnot\()+)\]$"
)
_ROOT_PATH_START = re.compile(rf"/{_STEP}")
_QN_STEP = rf"{_NCNAME}:{_NCNAME}"
_ROOT_PATH_VARIABLE = "facturflow-root-path-"
# A cheap first look: three absolute steps somewhere (the scan below decides).
_ROOT_PATH_CANDIDATE = re.compile(rf"/{_STEP}/{_STEP}/{_STEP}")
_MIN_ROOT_PATH_STEPS = 3  # shorter paths from the root cost little to evaluate
# (/ubl:Invoice | /cn:CreditNote)/cbc:ID, as a whole expression.
# Or //rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax.
_ROOT_UNION_PATH = re.compile(
    rf"\(\s*/{_QN_STEP}(?:\s*\|\s*/{_QN_STEP})+\s*\)(?:/{_QN_STEP})+"
    rf"|//{_QN_STEP}(?:/{_QN_STEP})+")


def _root_path_end(xpath: str, scan: dict[int, int], start: int) -> tuple[int, int] | None:
    """(end, steps) of the absolute path starting at `start` (a "/" at depth scan[start]), or
    None when it is not a plain path with safe predicates."""
    depth = scan[start]
    i, steps = start, 0
    while i < len(xpath) and xpath[i] == "/" and not xpath.startswith("//", i):
        m = re.compile(_STEP).match(xpath, i + 1)
        if m is None:
            return None
        i, steps = m.end(), steps + 1
        while i < len(xpath) and xpath[i] == "[":
            j = i + 1
            while j < len(xpath) and not (xpath[j] == "]" and scan.get(j) == depth):
                j += 1
            if j >= len(xpath) or not _SAFE_PREDICATE.match(xpath[i : j + 1]):
                return None
            i = j + 1
    rest = xpath[i:].lstrip()
    if rest.startswith(("(", "/", "[", ":")) or (i < len(xpath) and re.match(r"[\w.-]", xpath[i])):
        return None
    return i, steps


def _hoist_root_paths(tree: etree._ElementTree, safe_modes: set[str]) -> bool:
    """root-path: see the module docstring. `safe_modes`: _source_modes of the tree."""
    variables: _Hoist[str] | None = _hoisting(  # by path
        tree, _ROOT_PATH_VARIABLE, "param", "variable", safe_modes=safe_modes)
    if variables is None:
        return False
    root = variables.root
    for element, attr, value, _, scan_list in _scanned_in_safe_templates(
            root, safe_modes, lambda text: _ROOT_PATH_CANDIDATE.search(text) is not None
            or _ROOT_UNION_PATH.fullmatch(text.strip()) is not None):
        if _ROOT_UNION_PATH.fullmatch(value.strip()):
            # A whole expression (/a:X | /b:Y)/a:id: the nodes of the source document, the same
            # from a global variable (EXTENDED-CTC-FR's per-line $invoiceID, a scan of the root
            # element's children, i.e. of every line, for every line).
            path = value.strip()
            if _bound_as_at_root(element, root, set(re.findall(rf"({_NCNAME}):{_NCNAME}", path))):
                variables.replace(0, len(value), f"${variables.name(path)}")
            variables.substitute(element, attr, value)
            continue
        scan = {i: d for i, _, d in scan_list}
        for m in variables.matches(_ROOT_PATH_START, value, scan):
            start = m.start()
            before = value[:start].rstrip()
            # A "/" that starts an expression (not a step after an operand).
            if before and not (before.endswith(("(", ",", "[", "=", "<", ">", "|"))
                               or re.search(r"(?:^|\s)(or|and|not|return|then|else|in|"
                                            r"satisfies)$", before)):
                continue
            if before.endswith("|"):
                continue  # keep unions whole (their order is document order either way)
            found = _root_path_end(value, scan, start)
            if found is None or found[1] < _MIN_ROOT_PATH_STEPS:
                continue
            end = found[0]
            if not _focus_kept(value, scan_list, start):
                continue
            after = value[end:].lstrip()
            if after.startswith("|"):
                continue
            path = value[start:end]
            prefixes = set(re.findall(rf"({_NCNAME}):{_NCNAME}", path))
            if not _bound_as_at_root(element, root, prefixes):
                continue
            variables.replace(start, end, f"${variables.name(path)}")
        variables.substitute(element, attr, value)
    return variables.declare("variable", lambda path: {"select": path})
