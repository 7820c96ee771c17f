"""The key-based lookup rewrites: sibling-lookup, filter-key and prefix-key."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lxml import etree

from .common import (
    _bound_as_at_root,
    _enclosing_template,
    _focus_kept,
    _Hoist,
    _hoisting,
    _match_use,
    _node_select,
    _scanned_in_safe_templates,
)
from .xpath import _NCNAME, _PLAIN_PREDICATE, _QN, _X, _outside_predicates, _top_level

# (../cac:InvoiceLine | ../cac:CreditNoteLine)[cbc:ID = $parentlineID]: the sibling lines whose
# identifier is one of the variable's values.
_SIBLING_LOOKUP = re.compile(
    rf"(?:\(\s*\.\./(?P<a>{_QN})\s*\|\s*\.\./(?P<b>{_QN})\s*\)|\.\./(?P<c>{_QN}))"
    rf"\[\s*(?P<use>{_QN}(?:/{_QN})*)\s*=\s*\$(?P<var>{_NCNAME})\s*\]"
)
_SIBLING_LOOKUP_KEY = "facturflow-siblings-by-"


def _node_path_variable(template: etree._Element, name: str) -> bool:
    """True when $name is bound once in the template, to a relative path ending with an element
    or attribute name (its values atomize to untyped strings, as the key's do)."""
    bindings = [v for v in template.iter(f"{_X}variable", f"{_X}param")
                if v.get("name") == name]
    if len(bindings) != 1 or bindings[0].tag != f"{_X}variable" or len(bindings[0]):
        return False
    select = (bindings[0].get("select") or "").strip()
    try:
        outside = _outside_predicates(select)
    except ValueError:
        return False
    return (not select.startswith("/") and "(" not in outside and "$" not in outside
            and "|" not in outside and bool(re.search(rf"(?:^|/)@?{_QN}$", outside)))


def _index_sibling_lookups(tree: etree._ElementTree, safe_modes: set[str]) -> bool:
    """sibling-lookup: see the module docstring. `safe_modes`: _source_modes of the tree."""
    # By (match, use).
    keys: _Hoist[tuple[str, str]] | None = _hoisting(tree, _SIBLING_LOOKUP_KEY, "key")
    if keys is None:
        return False
    root = keys.root
    for element, attr, value, template, scan_list in _scanned_in_safe_templates(
            root, safe_modes, lambda text: _SIBLING_LOOKUP.search(text) is not None):
        for m in keys.matches(_SIBLING_LOOKUP, value, {i for i, _, _ in scan_list}):
            if not _focus_kept(value, scan_list, m.start()):
                continue
            if not _node_path_variable(template, m["var"]):
                continue
            names = [n for n in (m["a"], m["b"], m["c"]) if n]
            prefixes = {q.split(":")[0] for q in [*names, *m["use"].split("/")]}
            if not _bound_as_at_root(element, root, prefixes):
                continue
            match = " | ".join(names)
            key = keys.name((match, m["use"]))
            # The same nodes in the same (document) order: the key's lines whose identifier
            # equals one of the values (untyped strings on both sides), kept to the siblings.
            keys.replace(m.start(), m.end(), f"key('{key}', ${m['var']})[.. is current()/..]")
        keys.substitute(element, attr, value)
    return keys.declare("key", _match_use)


# count((../../cac:InvoiceLine | ../../cac:CreditNoteLine)/cac:BillingReference[P1][P2 and
# cac:BillingReferenceLine/cbc:ID = $parentlineID]), or /a:x/a:y/a:line[a:p/a:id = $v and P]:
# nodes by a path, filtered by predicates one conjunct of which compares a value to a variable.
_FILTER_HEAD = re.compile(
    rf"(?P<absolute>/?(?:/{_QN})+)"
    rf"|\(\s*(?P<up>(?:\.\./)+)(?P<a>{_QN})\s*\|\s*(?P=up)(?P<b>{_QN})\s*\)"
    rf"(?P<down>(?:/{_QN})*)"
    rf"|(?P<up1>(?:\.\./)+)(?P<c>{_QN})(?P<down1>(?:/{_QN})*)"
)
_KEYED_CONJUNCT = re.compile(rf"^\s*(?P<use>{_QN}(?:/{_QN})*)\s*=\s*\$(?P<var>{_NCNAME})\s*$")
# cac:BillingReference[... and cac:BillingReferenceLine/cbc:ID = $v]: a child step whose own
# predicate holds the keyed comparison.
_NESTED_CONJUNCT = re.compile(rf"^\s*(?P<step>{_QN}(?:/{_QN})*)\s*\[(?P<inner>.*)\]\s*$", re.S)
# starts-with(R, concat('#', $v, '#')): R begins with the variable's value between two
# occurrences of one character.
_PREFIX_CONJUNCT = re.compile(
    rf"^\s*starts-with\(\s*(?P<arg>{_QN}(?:/{_QN})*)\s*,\s*concat\(\s*(?P<q>['\"])(?P<c>[^'\"\s])"
    rf"(?P=q)\s*,\s*\$(?P<var>{_NCNAME})\s*,\s*(?P=q)(?P=c)(?P=q)\s*\)\s*\)\s*$"
)
_FILTER_KEY = "facturflow-filter-"
_PREFIX_KEY = "facturflow-prefix-"


# normalize-space(P), P a relative path of names with plain predicates: one string, and an
# error (more than one node) exactly when P has a second node.
_STRING_OF_PATH = re.compile(r"^normalize-space\(\s*(?P<path>[^$]*)\)$", re.S)


def _top_and_split(text: str) -> list[str] | None:
    """The top-level `and` conjuncts of an expression, or None when it cannot be lexed."""
    try:
        top = _top_level(text)
    except ValueError:
        return None
    parts, at = [], 0
    for m in re.finditer(r"(?<![\w.-])and(?![\w.-])", text):
        if top[m.start()]:
            parts.append(text[at : m.start()])
            at = m.end()
    parts.append(text[at:])
    return parts


def _string_path_variable(template: etree._Element, name: str) -> str | None:
    """The relative path P when $name is bound once in the template, with the template's focus,
    to normalize-space(P) (P: names, "." and ".." steps, plain predicates): one string, whose
    evaluation raises an error exactly when P has more than one node. Else None."""
    bindings = [v for v in template.iter(f"{_X}variable", f"{_X}param")
                if v.get("name") == name]
    if len(bindings) != 1 or bindings[0].tag != f"{_X}variable" or len(bindings[0]):
        return None
    if _enclosing_template(bindings[0]) is not template:
        return None  # another focus: the path would not mean the same in the expression
    m = _STRING_OF_PATH.match((bindings[0].get("select") or "").strip())
    if m is None:
        return None
    path = m["path"].strip()
    try:
        top = _top_level(path)
    except ValueError:
        return None
    spans = _bracket_spans(path, top)
    bare, at = [], 0
    for opened, closed in spans:
        bare.append(path[at:opened])
        at = closed + 1
    bare.append(path[at:])
    steps = [step.strip() for step in "".join(bare).split("/")]
    if path.startswith("/") or not all(re.fullmatch(rf"\.|\.\.|@?{_QN}", s) for s in steps):
        return None
    if not all(_PLAIN_PREDICATE.match(path[i + 1 : j]) for i, j in spans):
        return None
    return path


def _bracket_spans(text: str, top: list[bool]) -> list[tuple[int, int]]:
    """(index of "[", index of its "]") of each top-level predicate of a path."""
    spans, depth, opened = [], 0, -1
    for i, ch in enumerate(text):
        if ch == "[" and top[i]:
            opened, depth = i, 1
        elif opened >= 0 and ch in "[]":
            depth += 1 if ch == "[" else -1
            if depth == 0:
                spans.append((opened, i))
                opened = -1
    return spans


@dataclass(frozen=True)
class _Keyed:
    use: str  # the key's use expression (relative to the matched node)
    lookup: str  # the value looked up
    var: str
    drop: bool  # the conjunct is implied by the lookup and leaves the filter
    prefix: bool  # a prefix-key (starts-with) lookup


def _keyed_conjuncts(conjunct: str, prefixes: bool) -> Iterator[_Keyed]:
    """The ways a conjunct of a filter can be answered by a key lookup (the caller keeps the
    first whose variable qualifies)."""
    if not prefixes:
        m = _KEYED_CONJUNCT.match(conjunct)
        if m:
            yield _Keyed(m["use"], f"${m['var']}", m["var"], True, False)
            return
        nested = _NESTED_CONJUNCT.match(conjunct)
        if nested is None:
            return
        text = conjunct.strip()
        try:
            top = _top_level(text)
        except ValueError:
            return
        # The step's one predicate: the only top-level "[" of the conjunct is its first.
        if [i for i, ch in enumerate(text) if ch == "[" and top[i]] != [text.index("[")]:
            return
        for inner in _top_and_split(nested["inner"]) or []:
            m = _KEYED_CONJUNCT.match(inner)
            if m:
                yield _Keyed(f"{nested['step']}/{m['use']}", f"${m['var']}", m["var"], False,
                             False)
        return
    m = _PREFIX_CONJUNCT.match(conjunct)
    if m is None:
        return
    c, q, r, i = m["c"], m["q"], "$facturflow_r", "$facturflow_i"
    # Every prefix of R that starts with c and ends with c (two characters or more); a node
    # whose R has several items (starts-with would raise) is indexed under '' (a value no
    # lookup has) so that the rewritten expression can tell and fall back to the original.
    use = (f"if (count({m['arg']}) gt 1) then '' else for {r} in {m['arg']} return "
           f"if (starts-with({r}, {q}{c}{q})) then for {i} in index-of(string-to-codepoints("
           f"{r}), {ord(c)})[. gt 1] return substring({r}, 1, {i}) else ()")
    yield _Keyed(use, f"concat({q}{c}{q}, ${m['var']}, {q}{c}{q})", m["var"], False, True)


def _index_filters(tree: etree._ElementTree, safe_modes: set[str],
                   guarded: set[tuple[etree._Element, str]], *, prefixes: bool = False) -> bool:
    """filter-key (prefixes=False) and prefix-key (prefixes=True): see the module docstring.
    `safe_modes`: _source_modes of the tree."""
    keys: _Hoist[tuple[str, str]] | None = _hoisting(  # by (match, use)
        tree, _PREFIX_KEY if prefixes else _FILTER_KEY, "key", safe_modes=safe_modes,
        codepoints=True, guarded=guarded)
    if keys is None:
        return False
    root = keys.root
    global_nodes = {v.get("name") for v in root.iterchildren(f"{_X}variable")
                    if not len(v) and _node_select(v.get("select") or "")}
    wanted: Callable[[str], bool] = (
        (lambda text: "starts-with(" in text and "concat(" in text) if prefixes
        else (lambda text: "= $" in text or "=$" in text))
    for element, attr, value, template, scan_list in _scanned_in_safe_templates(
            root, safe_modes, wanted):
        if (element, attr) in guarded:
            continue  # holds an original expression as a fallback: kept as it is
        depth = {i: d for i, _, d in scan_list}
        attribute_guards: list[str] = []
        for m in keys.matches(_FILTER_HEAD, value, depth):
            if not value.startswith("[", m.end()):
                continue
            if m["absolute"] is not None:
                before = value[: m.start()].rstrip()
                if before and not before.endswith(("(", ",", "=", "|")) and not re.search(
                        r"(?:^|\s)(or|and|not)$", before):
                    continue  # a "/" after an operand: a step, not an absolute path
            elif value[: m.start()].rstrip().endswith(("/", "!")):
                continue
            if not _focus_kept(value, scan_list, m.start()):
                continue
            # The predicates: [...] one after the other, at the head's depth.
            predicates: list[str] = []
            i = m.end()
            while value.startswith("[", i):
                j = i + 1
                while j < len(value) and not (value[j] == "]" and depth.get(j) == depth[i]):
                    j += 1
                if j >= len(value):
                    break
                predicates.append(value[i + 1 : j])
                i = j + 1
            # The filtered path may go on with steps (applied to each node: the same either
            # way), not with another filter or call.
            if re.match(r"\s*[\[(!]", value[i:]) or re.match(r"[\w.-]", value[i : i + 1]):
                continue
            found: tuple[int, int, _Keyed, str | None] | None = None
            for k, predicate in enumerate(predicates):
                conjuncts = _top_and_split(predicate)
                if conjuncts is None:
                    break
                for c, conjunct in enumerate(conjuncts):
                    # A variable of the rule (a value per node the rule fires on): the index
                    # then answers for each node what the filter scanned all nodes for.
                    for keyed in _keyed_conjuncts(conjunct, prefixes):
                        if found is not None:
                            break
                        if not keyed.prefix and _node_path_variable(template, keyed.var):
                            found = (k, c, keyed, None)
                            continue
                        path = _string_path_variable(template, keyed.var)
                        if path is not None:
                            found = (k, c, keyed, path)
            if found is None:
                continue
            k, c, keyed, guard_path = found
            rest, checked = [], []
            for n, predicate in enumerate(predicates):
                conjuncts = _top_and_split(predicate) or [predicate]
                if n == k:
                    if keyed.drop:
                        conjuncts = conjuncts[:c] + conjuncts[c + 1 :]
                    elif keyed.prefix:
                        checked += conjuncts[:c] + conjuncts[c + 1 :]
                        rest.extend(conjuncts)
                        continue
                checked.extend(conjuncts)
                rest.extend(conjuncts)
            variables = set(re.findall(r"\$([\w.-]+)", " ".join(checked)))
            if not all(_PLAIN_PREDICATE.match(r) for r in checked) or not all(
                    v in global_nodes or _node_path_variable(template, v)
                    or _string_path_variable(template, v) is not None for v in variables):
                continue
            if m["absolute"] is not None:
                # //a:x/a:y: every a:y under an a:x anywhere, as the pattern a:x/a:y matches.
                absolute = m["absolute"]
                match, check = (absolute[2:] if absolute.startswith("//") else absolute), ""
            else:
                union = m["up"] is not None
                up_text = m["up"] if union else m["up1"]
                down_text = (m["down"] if union else m["down1"]) or ""
                up = up_text.count("../")
                down = [step for step in down_text.split("/") if step]
                if len(down) + 1 > up + 1 or up > 4:
                    continue
                heads = (m["a"], m["b"]) if union else (m["c"],)
                match = " | ".join(f"{name}{down_text}" for name in heads)
                ups = "/".join([".."] * (len(down) + 1))
                check = f"[{ups} is current()/{'/'.join(['..'] * up)}]"
            names = re.findall(rf"({_NCNAME}):{_NCNAME}", match + " " + keyed.use)
            if not _bound_as_at_root(element, root, names):
                continue
            key = keys.name((match, keyed.use))
            new = f"key('{key}', {keyed.lookup}){check}" + "".join(
                f"[{r.strip()}]" for r in rest)
            guards = []
            if guard_path is not None:
                guards.append(f"exists(({guard_path})[2])")
            if keyed.prefix:
                guards.append(f"exists(key('{key}', ''){check})")
            attribute_guards.extend(g for g in guards if g not in attribute_guards)
            keys.replace(m.start(), i, new)
        # Where a guard holds, the whole original expression (see _Hoist.substitute).
        keys.substitute(element, attr, value, attribute_guards)
    return keys.declare("key", _match_use)
