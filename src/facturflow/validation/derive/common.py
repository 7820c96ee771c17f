"""Helpers the rewrites share: templates by mode, source-only modes, declarations, naming."""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Hashable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from lxml import etree

from .xpath import _NODE_SELECT, _RELATIVE_PATH, _X, XSL, _xpath_attributes, xpath_scan

_K = TypeVar("_K", bound=Hashable)


def _default_mode_templates(root: etree._Element) -> list[etree._Element]:
    out = []
    for template in root.iterchildren(f"{_X}template"):
        modes = (template.get("mode") or "#default").split()
        if "#default" in modes or "#all" in modes:
            out.append(template)
    return out


def _templates_and_applies_by_mode(
    root: etree._Element,
) -> tuple[dict[str, list[etree._Element]], dict[str, list[etree._Element]]]:
    """The top-level templates of each mode, and the apply-templates of each mode."""
    by_mode: dict[str, list[etree._Element]] = {}
    for template in root.iterchildren(f"{_X}template"):
        for mode in (template.get("mode") or "").split():
            by_mode.setdefault(mode, []).append(template)
    applies: dict[str, list[etree._Element]] = {}
    for apply in root.iter(f"{_X}apply-templates"):
        applies.setdefault(apply.get("mode") or "#default", []).append(apply)
    return by_mode, applies


def _plain_root_template(root: etree._Element) -> etree._Element | None:
    """The one root template ("/", default mode) of a stylesheet whose modes can be reasoned
    about from this file alone, or None: no import, include or xsl:mode, no #current or #all
    mode, no xpath-default-namespace (the rewrites that move patterns and walks rely on it)."""
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        mode = element.get("mode") or ""
        if (
            element.tag in (f"{_X}import", f"{_X}include", f"{_X}mode")
            or "#current" in mode
            or "#all" in mode
            or any("xpath-default-namespace" in str(name) for name in element.attrib)
        ):
            return None
    root_templates = [
        t for t in _default_mode_templates(root) if (t.get("match") or "").strip() == "/"
    ]
    return root_templates[0] if len(root_templates) == 1 else None


def _drop(element: etree._Element) -> None:
    """Remove an element, keeping the text that follows it attached to the previous sibling."""
    parent = element.getparent()
    assert parent is not None
    tail = element.tail or ""
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + tail
    else:
        parent.text = (parent.text or "") + tail
    parent.remove(element)


# Instructions that change the focus (or have none) between a template and their attributes.
_FOCUS_CHANGERS = {f"{_X}{n}" for n in (
    "for-each", "for-each-group", "iterate", "analyze-string", "merge", "function", "key",
    "sort", "number", "accumulator", "mode", "fork", "source-document", "where-populated",
)}


def _source_modes(root: etree._Element) -> set[str]:
    """Modes whose templates only ever see nodes of the source document: applied from the root
    template (the document node) to an absolute path, or from a template of such a mode to a
    relative path (no function call, variable or other document), nowhere else."""
    root_template = _plain_root_template(root)
    if root_template is None:
        return set()
    by_mode, applies = _templates_and_applies_by_mode(root)
    safe: set[str] = set()
    while True:
        grown = set(safe)
        for mode, mode_applies in applies.items():
            if mode == "#default" or mode not in by_mode or mode in grown:
                continue
            if all(_applied_in_source(apply, root_template, grown | {mode})
                   for apply in mode_applies):
                grown.add(mode)
        if grown == safe:
            return safe
        safe = grown


def _applied_in_source(apply: etree._Element, root_template: etree._Element,
                       modes: set[str]) -> bool:
    select = (apply.get("select") or "").strip()
    if not select or not _RELATIVE_PATH.match(select):
        return False
    if _in(apply, root_template):
        return select.startswith("/")
    template = _enclosing_template(apply)
    return (template is not None and not select.startswith("/")
            and set((template.get("mode") or "").split()) <= modes
            and bool((template.get("mode") or "").split()))


def _node_select(select: str) -> bool:
    """A global variable's select that can only give nodes: names, steps, unions, no call."""
    text = select.strip()
    return bool(text) and bool(_NODE_SELECT.match(text)) and re.search(r"[\w.-]\s*\(", text) is None


def _in(element: etree._Element, ancestor: etree._Element | None) -> bool:
    return ancestor is not None and any(a is ancestor for a in element.iterancestors())


def _bound_as_at_root(element: etree._Element, root: etree._Element,
                      prefixes: Iterable[str]) -> bool:
    """Whether each prefix is bound at `element` to the namespace it has on the stylesheet
    element (where a hoisted declaration is read)."""
    return not any(element.nsmap.get(p) is None or element.nsmap.get(p) != root.nsmap.get(p)
                   for p in prefixes)


class _Hoist(Generic[_K]):
    """What the rewrites that move an expression into a top-level declaration share: one name
    per distinct expression (`key`), the substitutions in the attributes (optionally guarded by
    the whole original expression), the declarations once every attribute is done, and whether
    anything changed."""

    def __init__(self, root: etree._Element, prefix: str, *kinds: str,
                 guarded: set[tuple[etree._Element, str]] | None = None) -> None:
        self.root = root
        self.prefix = prefix
        # Names already declared with these kinds (xsl:param/xsl:variable, or xsl:key).
        self.taken = {e.get("name") for e in root.iter(*(f"{_X}{k}" for k in kinds))}
        self.names: dict[_K, str] = {}
        self.guarded = guarded
        self.spans: list[tuple[int, int, str]] = []  # the current attribute's substitutions
        self.changed = False

    def name(self, key: _K, prefix: str | None = None) -> str:
        """The name of `key`, else the next `prefix`N free in the stylesheet (`prefix`: the
        rewrite's unless given; N counts every name of the rewrite).

        Never gives up: a rewrite that stopped half-way on a taken name left the references it
        had already substituted without their declaration."""
        if key not in self.names:
            prefix = self.prefix if prefix is None else prefix
            used = set(self.names.values())
            number = len(self.names) + 1
            while f"{prefix}{number}" in self.taken or f"{prefix}{number}" in used:
                number += 1
            self.names[key] = f"{prefix}{number}"
        return self.names[key]

    def matches(self, pattern: re.Pattern[str], value: str,
                scan: Container[int]) -> Iterator[re.Match[str]]:
        """The matches of `pattern` in `value` that start outside literals and comments (at an
        index of `scan`) and after the last substitution (replace) made in the value."""
        for m in pattern.finditer(value):
            if (not self.spans or m.start() >= self.spans[-1][1]) and m.start() in scan:
                yield m

    def replace(self, start: int, end: int, text: str) -> None:
        """Substitute `text` for value[start:end] (after the previous substitution)."""
        self.spans.append((start, end, text))

    def substitute(self, element: etree._Element, attr: str, value: str,
                   guards: Iterable[str] = ()) -> None:
        """Set `attr` to `value` with the substitutions made (replace) since the last call;
        nothing when there is none. With `guards`, where one holds, the whole original
        expression instead (recorded in `guarded`)."""
        spans, self.spans = self.spans, []
        if not spans:
            return
        out: list[str] = []
        at = 0
        for start, end, text in spans:
            out.append(value[at:start])
            out.append(text)
            at = end
        out.append(value[at:])
        rewritten = "".join(out)
        conditions = list(guards)
        if conditions:
            # Where a variable or a tested value could raise, the whole original expression,
            # evaluated as before (the same value, or the same error with the same message).
            rewritten = f"if ({' or '.join(conditions)}) then ({value}) else ({rewritten})"
            if self.guarded is not None:
                self.guarded.add((element, attr))
        element.set(attr, rewritten)
        self.changed = True

    def declare(self, kind: str, attributes: Callable[[_K], dict[str, str]]) -> bool:
        """Declare each name as a top-level xsl:`kind` with the attributes of its key; whether
        the rewrite changed the stylesheet."""
        for key, name in self.names.items():
            _declare(self.root, kind, name=name, **attributes(key))
        return self.changed


def _hoisting(tree: etree._ElementTree, prefix: str, *kinds: str,
              safe_modes: set[str] | None = None, codepoints: bool = False,
              guarded: set[tuple[etree._Element, str]] | None = None) -> _Hoist[Any] | None:
    """A _Hoist for a rewrite of `tree`, or None when the rewrite keeps the stylesheet as it is:
    XPath 1.0 compatibility mode, no template of a source mode (`safe_modes`, unless None), or
    (`codepoints`: the rewrite compares by codepoints) a default collation anywhere."""
    root = tree.getroot()
    if not _xpath2(root) or (safe_modes is not None and not safe_modes):
        return None
    if codepoints and any("default-collation" in str(name) for e in root.iter()
                          if isinstance(e.tag, str) for name in e.attrib):
        return None  # keys, = and starts-with compare by codepoints only without it
    return _Hoist(root, prefix, *kinds, guarded=guarded)


def _match_use(key: tuple[str, str]) -> dict[str, str]:
    """The attributes of an xsl:key named after its (match, use)."""
    return {"match": key[0], "use": key[1]}


def _xpath2(root: etree._Element) -> bool:
    """Whether a stylesheet's expressions are XPath 2.0 or later: in XPath 1.0 compatibility
    mode (version below 2.0) the rewrites keep its expressions as they are."""
    try:
        return not float(root.get("version") or "1.0") < 2.0
    except ValueError:
        return False


def _scanned_in_safe_templates(
    root: etree._Element, safe_modes: set[str], wanted: Callable[[str], bool],
) -> Iterator[tuple[etree._Element, str, str, etree._Element, list[tuple[int, str, int]]]]:
    """The XPath attributes whose value is `wanted`, inside a top-level template (with the
    template's focus) whose modes are all in `safe_modes`, with that template and the value's
    xpath_scan; a value the lexer refuses is passed over. Listed before the first is yielded,
    since the caller rewrites them as it goes; each template is looked up when its turn comes."""
    for element, attr, value in list(_xpath_attributes(root)):
        if not wanted(value):
            continue
        template = _enclosing_template(element)
        modes = set((template.get("mode") or "").split()) if template is not None else set()
        if template is None or not modes or not modes <= safe_modes:
            continue
        try:
            scan = xpath_scan(value)
        except ValueError:
            continue
        yield element, attr, value, template, scan


def _enclosing_template(element: etree._Element) -> etree._Element | None:
    """The top-level xsl:template an instruction belongs to, when nothing between them changes
    the focus (or removes it)."""
    node: etree._Element | None = element
    while node is not None:
        if node.tag in _FOCUS_CHANGERS:
            return None
        parent = node.getparent()
        if node.tag == f"{_X}template":
            return node if parent is not None and parent.getparent() is None else None
        node = parent
    return None


def _focus_kept(xpath: str, scan: list[tuple[int, str, int]], start: int) -> bool:
    """True when the expression's focus at `start` is the focus of the whole expression: no
    enclosing predicate or inline function, no path step or simple map before it or before an
    enclosing parenthesis."""
    opens: list[int] = []
    for i, c, _ in scan:
        if i >= start:
            break
        if c in "([{":
            opens.append(i)
        elif c in ")]}":
            opens.pop()
    for i in [*opens, start]:
        if i != start and xpath[i] != "(":
            return False
        before = xpath[:i].rstrip()
        if before.endswith(("/", "!")):
            return False
        if i != start and re.search(r"(?:^|[^\w.:-])function\s*$", before):
            return False
    return True


def _declare(root: etree._Element, kind: str, **attributes: str) -> None:
    """Add a top-level xsl:`kind`: first after the xsl:imports (declarations may come in any
    order after them)."""
    declaration = etree.Element(f"{_X}{kind}", nsmap={"xsl": XSL})
    for name, value in attributes.items():
        declaration.set(name, value)
    declaration.tail = "\n"
    imports = list(root.iterchildren(f"{_X}import"))
    root.insert(root.index(imports[-1]) + 1 if imports else 0, declaration)
