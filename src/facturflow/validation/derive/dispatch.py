"""The path-dispatch rewrite: absolute-path rules applied as a descent, a mode per parent path."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from lxml import etree

from .common import _drop, _plain_root_template, _templates_and_applies_by_mode
from .walks import _context_free
from .xpath import _QNAME_STEP, _X, XSL, _top_level


@dataclass(frozen=True)
class _NamePath:
    names: list[str]  # {uri}local of each step, predicates set aside
    last_step: str  # the last step as written, predicates included
    plain_ancestors: bool  # no predicate before the last step


def _absolute_name_path(pattern: str, nsmap: dict[str | None, str]) -> _NamePath | None:
    """The element names ({uri}local) of an absolute pattern /p:a[...]/p:b[...]..., its
    predicates set aside, or None when the pattern has another shape (a union, //, *, an axis,
    an unprefixed or unbound name)."""
    pattern = pattern.strip()
    try:
        top = _top_level(pattern)
    except ValueError:
        return None
    outside = "".join(ch if ok else " " for ch, ok in zip(pattern, top, strict=True))
    if not pattern.startswith("/") or "//" in outside or "|" in outside or "::" in outside:
        return None
    names = []
    plain = True
    last_step = ""
    cuts = [i for i, ch in enumerate(outside) if ch == "/"] + [len(pattern)]
    for start, end in itertools.pairwise(cuts):
        step, mask = pattern[start + 1 : end], outside[start + 1 : end]
        last_step, last_plain = step.strip(), True
        while step.rstrip().endswith("]"):  # predicates restrict the step; set them aside
            open_at = mask.rfind("[")
            if open_at < 0:
                return None
            step, mask = step[:open_at], mask[:open_at]
            last_plain = False
        m = _QNAME_STEP.match(step.strip())
        if m is None or m["prefix"] not in nsmap:
            return None
        names.append(f"{{{nsmap[m['prefix']]}}}{m['local']}")
        if end != len(pattern):
            plain = plain and last_plain
    if not names:
        return None
    return _NamePath(names, last_step, plain)


def _dispatch_paths(tree: etree._ElementTree) -> bool:
    """Dispatch the rules of an element walk on their ancestors' names, not on all of them.

    Applies to a pattern mode M that rule-select turned into apply-templates mode=M
    select="//*", or that walks the document (select="/", every template ending with the
    recursion apply-templates select="*" or "@*|*", except rules that stop the walk below them,
    as Factur-X EXTENDED's), whose every rule pattern is absolute, /p:a[...]/p:b[...]/...: such
    a pattern can only match an element whose ancestors' names are the pattern's names (its
    "name path"), so the rules are split into one mode per parent name path, each holding the
    rules of the elements below that parent with their own priorities. The walk becomes a
    descent from the root element: a node fires the best matching rule of its parent's mode (the
    same candidates, in the same order of priority, as the walk's), then applies the mode of its
    own name path to its child elements if some rule lies below (and its rule, if one fired,
    did not stop the walk); nodes under no rule's name path are not visited (the walk visited
    them and fired nothing). The descent is pre-order, so rules fire in document order, as in
    the walk. Preconditions: no position() or last() in rule bodies, no call-template,
    next-match, apply-imports or param, no other use of M, no import or include, and every rule
    of M absolute as above (Factur-X's profile patterns: M70 of EN 16931, 308 rules tried on
    every element of the invoice; M86 of EXTENDED, 901).
    """
    root = tree.getroot()
    root_template = _plain_root_template(root)
    if root_template is None:
        return False
    by_mode, applies = _templates_and_applies_by_mode(root)
    taken = {m for t in root.iter(f"{_X}template") for m in (t.get("mode") or "").split()}
    changed = False
    for start in list(root_template.iter(f"{_X}apply-templates")):
        mode = start.get("mode") or ""
        select = (start.get("select") or "").replace(" ", "")
        if not mode or select not in ("//*", "/") or len(start):
            continue
        plan = _dispatch_plan(mode, by_mode.get(mode, []), walk=select == "/")
        if plan is None or not _root_binds_all(root, plan.rules):
            continue
        if sorted(map(id, applies.get(mode, []))) != sorted(map(id, [start, *plan.recursions])):
            continue  # the mode is applied from elsewhere too
        _apply_dispatch(root, start, mode, plan, taken)
        changed = True
    return changed


@dataclass
class _DispatchPlan:
    rules: list[tuple[etree._Element, _NamePath]]
    descends: set[int]  # id() of the rule templates below which the walk goes on
    defaults: list[etree._Element]  # the text() and catch-all templates
    recursions: list[etree._Element]  # the walk's apply-templates (walk mode)


_WALK_SELECTS = ("*", "@*|*")


def _is_recursion(element: etree._Element, mode: str) -> bool:
    return (
        element.tag == f"{_X}apply-templates"
        and element.get("mode") == mode
        and (element.get("select") or "").replace(" ", "") in _WALK_SELECTS
        and not len(element)
        and not (element.tail or "").strip()
    )


def _dispatch_plan(mode: str, templates: list[etree._Element], walk: bool) -> _DispatchPlan | None:
    """The rules of `mode` with their name paths, or None when the mode does not qualify.

    walk=False: rule-select's "//*" application (no template recurses; every element visited);
    walk=True: the walk (templates end with the recursion, or stop it).
    """
    plan = _DispatchPlan([], set(), [], [])
    for template in templates:
        if (template.get("mode") or "").split() != [mode] or template.get("name"):
            return None
        match = (template.get("match") or "").replace(" ", "")
        body = [c for c in template if isinstance(c.tag, str)]
        recursion = body[-1] if body and walk and _is_recursion(body[-1], mode) else None
        if recursion is not None:
            plan.recursions.append(recursion)
            body = body[:-1]
        if match == "text()" or (match == "@*|node()" and not walk):
            if body or (template.text or "").strip() or recursion is not None:
                return None
            plan.defaults.append(template)
            continue
        if match == "@*|node()":  # the walk's catch-all: only the recursion
            if body or (template.text or "").strip() or recursion is None:
                return None
            plan.defaults.append(template)
            continue
        if template.get("priority") is None:
            return None
        if not _context_free(template):
            return None
        if any(
            apply.get("mode") == mode and apply is not recursion
            for apply in template.iter(f"{_X}apply-templates")
        ):
            return None  # a walk of another shape
        found = _absolute_name_path(template.get("match") or "", dict(template.nsmap))
        if found is None:
            return None
        plan.rules.append((template, found))
        if recursion is not None or not walk:
            plan.descends.add(id(template))
    if not plan.rules:
        return None
    if walk and not any((t.get("match") or "").replace(" ", "") == "@*|node()"
                        for t in plan.defaults):
        return None  # unmatched elements would meet the built-in rule
    return plan


def _root_binds_all(root: etree._Element, rules: list[tuple[etree._Element, _NamePath]]) -> bool:
    """Whether the stylesheet element binds a prefix to every namespace the rules name."""
    bound = {uri for prefix, uri in root.nsmap.items() if prefix}
    return all(name[1:].split("}", 1)[0] in bound for _, path in rules for name in path.names)


def _apply_dispatch(
    root: etree._Element,
    start: etree._Element,
    mode: str,
    plan: _DispatchPlan,
    taken: set[str],
) -> None:
    rules, defaults = plan.rules, plan.defaults
    for recursion in plan.recursions:
        _drop(recursion)
    below: set[tuple[str, ...]] = set()  # name paths with a rule strictly below them
    for _, found in rules:
        for k in range(len(found.names)):
            below.add(tuple(found.names[:k]))
    modes: dict[tuple[str, ...], str] = {}

    def mode_of(parent: tuple[str, ...]) -> str:
        if parent not in modes:
            name = f"{mode}-d{len(modes)}"
            while name in taken:
                name += "x"
            taken.add(name)
            modes[parent] = name
        return modes[parent]

    lowest = min(float(t.get("priority") or 0) for t, _ in rules)
    # The stylesheet element's own prefixes name the elements in the added templates (lxml
    # would drop a second declaration of a namespace the root already declares).
    prefixes = {uri: prefix for prefix, uri in root.nsmap.items() if prefix}

    def descent(node_path: tuple[str, ...]) -> etree._Element:
        apply = etree.Element(f"{_X}apply-templates", nsmap={"xsl": XSL})
        apply.set("select", "*")
        apply.set("mode", mode_of(node_path))
        return apply

    for template, found in rules:
        path = tuple(found.names)
        template.set("mode", mode_of(path[:-1]))
        if found.plain_ancestors:
            # Only the children of an element of name path[:-1] are ever offered this mode, so
            # the ancestor steps of the pattern always hold: the last step decides alone.
            template.set("match", found.last_step)
        if path in below and id(template) in plan.descends:
            step = descent(path)
            step.tail = "\n"
            template.append(step)
    insert_at = root.index(defaults[-1]) + 1 if defaults else len(root)
    added: list[etree._Element] = []
    for path in sorted(below, key=lambda p: (len(p), p)):  # deterministic text
        if not path:
            continue
        # An element on the way to deeper rules, with no rule of its own that fires: go on down.
        uri, local = path[-1][1:].split("}", 1)
        template = etree.Element(f"{_X}template", nsmap={"xsl": XSL})
        template.set("match", f"{prefixes[uri]}:{local}")
        template.set("mode", mode_of(path[:-1]))
        template.set("priority", str(lowest - 1))
        template.append(descent(path))
        added.append(template)
    for parent_mode in list(modes.values()):
        # Elements on no rule's name path: nothing below them can fire; not visited further.
        template = etree.Element(f"{_X}template", nsmap={"xsl": XSL})
        template.set("match", "*")
        template.set("mode", parent_mode)
        template.set("priority", str(lowest - 2))
        added.append(template)
    for offset, template in enumerate(added):
        template.tail = "\n"
        root.insert(insert_at + offset, template)
    for template in defaults:
        _drop(template)
    start.set("select", "/*")
    start.set("mode", mode_of(()))
