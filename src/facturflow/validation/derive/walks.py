"""The walk rewrites: no-text-walk (empty walks removed), rule-select (patterns on named nodes)."""

from __future__ import annotations

import re

from lxml import etree

from .common import (
    _default_mode_templates,
    _drop,
    _plain_root_template,
    _templates_and_applies_by_mode,
)
from .xpath import _X, _last_step_tests, _outside_predicates


def _remove_text_walks(tree: etree._ElementTree) -> bool:
    root = tree.getroot()
    templates = _default_mode_templates(root)
    matches = sorted(t.get("match") or "" for t in templates)
    if matches != ["/", "text()"]:
        return False
    text_template = next(t for t in templates if t.get("match") == "text()")
    if len(text_template) or (text_template.text or "").strip():
        return False  # the text() template outputs something: the walks are not empty
    if any(el.get("default-mode") for el in root.iter() if isinstance(el.tag, str)):
        return False  # a [xsl:]default-mode attribute would change what "bare" means
    root_template = next(t for t in templates if t.get("match") == "/")
    removed = False
    for apply in list(root_template.iter(f"{_X}apply-templates")):
        if apply.get("select") is None and apply.get("mode") is None and len(apply) == 0:
            parent = apply.getparent()
            assert parent is not None
            _drop(apply)
            removed = True
    return removed


# Each Schematron pattern is a mode; the root template starts it with apply-templates on "/", and
# every template of the mode (the rules, and the catch-all "@*|node()") ends by applying the mode
# to "@*|*": a walk over every element and attribute of the document, in document order, that
# fires at each node the best rule of the pattern matching it, if any.
_RECURSIONS = ("@*|*", "*")  # elements and attributes, or elements only


def _select_rule_nodes(tree: etree._ElementTree) -> bool:
    """Replace each pattern's walk by one apply-templates on the nodes its rules can match.

    Precondition, per pattern mode M (a mode that fails it keeps its walk): the root template
    applies M once, to "/"; every template of M ends its body with the recursion
    apply-templates mode=M select="@*|*" (the catch-all "@*|node()" template is only that, the
    "text()" one is empty) and there is no other use of M; no template of M uses position() or
    last() outside a predicate, calls a template, or uses next-match/apply-imports (the focus and
    the rule chain stay those of the walk); and the last step of every rule pattern is an
    element or attribute name test (or *), whose prefix means the same in the root template.
    Then the walk visits every element and attribute in document order and fires at each node
    the best matching rule: applying M, without the recursion, to the union of the nodes the
    last steps name ("//ram:X | //@y", in document order) fires the same rules, on the same
    nodes, in the same order; the other nodes of the walk matched no rule and output nothing.
    """
    root = tree.getroot()
    root_template = _plain_root_template(root)
    if root_template is None:
        return False
    by_mode, applies = _templates_and_applies_by_mode(root)
    changed = False
    for start in list(root_template.iter(f"{_X}apply-templates")):
        mode = start.get("mode") or ""
        if not mode or (start.get("select") or "").strip() != "/" or len(start):
            continue
        plan = _walk_plan(mode, by_mode.get(mode, []), applies.get(mode, []), start, root_template)
        if plan is None:
            continue
        select, recursions = plan
        for apply in recursions:
            _drop(apply)
        start.set("select", select)
        changed = True
    return changed


_FOCUS = re.compile(r"\b(position|last)\s*\(")


def _walk_plan(
    mode: str,
    templates: list[etree._Element],
    applies: list[etree._Element],
    start: etree._Element,
    root_template: etree._Element,
) -> tuple[str, list[etree._Element]] | None:
    """(the select of the nodes to apply `mode` to, the recursions to remove), or None."""
    recursions: list[etree._Element] = []
    recursions_select = ""
    catch_all = False
    tests: list[tuple[bool, str | None, str]] = []
    for template in templates:
        if (template.get("mode") or "").split() != [mode] or template.get("name"):
            return None
        match = (template.get("match") or "").strip()
        body = [c for c in template if isinstance(c.tag, str)]
        if match == "text()":
            if body or (template.text or "").strip():
                return None
            continue
        if not body:
            return None
        last = body[-1]
        recursion = (last.get("select") or "").replace(" ", "")
        if (
            last.tag != f"{_X}apply-templates"
            or last.get("mode") != mode
            or recursion not in _RECURSIONS
            or recursion != (recursions_select or recursion)
            or len(last)
            or (last.tail or "").strip()
        ):
            return None
        recursions_select = recursion
        recursions.append(last)
        if match.replace(" ", "") == "@*|node()":
            if len(body) != 1 or (template.text or "").strip() or catch_all:
                return None
            catch_all = True
            continue
        if not _context_free(template):
            return None
        found = _last_step_tests(match)
        if found is None:
            return None
        for attribute, prefix, local in found:
            if prefix is not None:
                uri = template.nsmap.get(prefix)
                if uri is None or root_template.nsmap.get(prefix) != uri:
                    return None
            tests.append((attribute, prefix, local))
    if not catch_all:
        return None  # unmatched nodes would meet the built-in rule, which walks their children
    if sorted(map(id, applies)) != sorted(map(id, [start, *recursions])):
        return None  # the mode is applied from elsewhere too
    if recursions_select == "*" and any(attribute for attribute, _, _ in tests):
        return None  # a walk over elements only never visits the attributes named
    return _union(tests), recursions


def _context_free(template: etree._Element) -> bool:
    """Whether a rule template's output depends only on its node: no position() or last()
    outside predicates (any attribute: XPath, pattern or value template; conservative), no
    call-template, next-match, apply-imports or param (the focus and the rule chain of a walk)."""
    for element in template.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag in (f"{_X}call-template", f"{_X}next-match", f"{_X}apply-imports",
                           f"{_X}param"):
            return False
        if any(_FOCUS.search(_outside_predicates(str(v))) for v in element.attrib.values()):
            return False
    return True


_MAX_NAMED = 4


def _union(tests: list[tuple[bool, str | None, str]]) -> str:
    """The nodes of the document passing one of the tests, as one XPath union in document order."""
    names: dict[bool, list[str]] = {False: [], True: []}
    for attribute, prefix, local in tests:
        name = f"{prefix}:{local}" if prefix else local
        if name not in names[attribute]:
            names[attribute].append(name)
    parts = []
    for attribute, prefix in ((False, "//"), (True, "//@")):
        found = names[attribute]
        # Saxon serves //name from an index per name but merges a union pairwise: past a few
        # names, visiting every element (or attribute) and dispatching on its name is cheaper.
        if "*" in found or len(found) > _MAX_NAMED:
            found = ["*"]
        parts += [prefix + name for name in found]
    return " | ".join(parts) if parts else "()"
