"""Derived, faster forms of the official Schematron XSLTs, made from the unmodified files.

The official files are never changed: each time a stylesheet is compiled, `derive()` reads the
official file and applies rewrites that keep every failed assert identical (same id, flag,
location and text), each guarded by a precondition checked on the file itself; a rewrite whose
precondition does not hold is skipped. `tests/benchmarks/test_derived_equivalence.py` proves the
equality on the whole corpus and on generated large invoices.

Rewrites (found by profiling, see benchmarks/README.md):

- ``no-text-walk``: the Schematron skeleton's root template runs a bare ``<xsl:apply-templates/>``
  before each pattern; in the default mode only ``text()`` (outputs nothing) and ``/`` have
  templates, so each of these walks visits every node of the invoice and outputs nothing (66 full
  walks for Factur-X EN 16931). They are removed.
- ``rule-select``: each pattern is a mode whose templates walk the whole document (every
  element and attribute, in document order, one walk per pattern: 66 for Factur-X EN 16931) to
  fire the pattern's rules where they match. When every rule pattern ends with a name test, the
  walk becomes one apply-templates, in the same mode, on the union of the nodes so named
  (``//ram:X | //@y``: document order, served by Saxon's name index; past four names every
  element, ``//*``), and the templates' recursion is removed: the same rules fire on the same
  nodes in the same order. Patterns whose rules stop the walk (rules without the recursion, as
  in Factur-X EXTENDED's profile-restriction pattern) keep their walk.
- ``path-dispatch``: after rule-select, a pattern whose rules are all absolute paths
  (``/rsm:CrossIndustryInvoice/.../ram:ID``: the Factur-X profile patterns, 308 rules in
  EN 16931) is still applied to every element, and Saxon tries on each element every rule
  ending with its name. The rules are split into one mode per parent path, and the walk becomes
  a descent from the root element that applies to each element's children the mode of its own
  path, and only below paths some rule lies under: each element meets the rules of its own
  path only, in the same order, and the same rules fire in document order. On the corpus, 5 %
  less CPU for Factur-X EN 16931, 18 % for EXTENDED (`python -m benchmarks.ab rewrite ...`).
- ``bare-fired-rule``: the svrl:fired-rule elements lose their (constant) attributes: facturflow
  only counts them, and their context strings were most of the SVRL Saxon writes and lxml parses.
- ``bare-active-pattern``: the svrl:active-pattern elements (one per pattern) lose their
  content (pattern id, name, twice document-uri(/)), 0.5 ms per transformation; facturflow
  does not read them.
- ``codedb-key``: the Factur-X stylesheets look code values up with
  ``document('X_codedb.xml')/codedb/cl[@id=N]/enumeration[@value=$v]``, a linear scan of a list
  of up to ~2,000 values per lookup (unit codes: one per invoice line). They become an indexed
  ``key()`` lookup over the same document, with the same string comparison.
- ``code-list-map``: the EN 16931 UBL and EXTENDED-CTC-FR stylesheets check code values with
  ``contains(' AED AFN … ZWL ', concat(' ', normalize-space(@currencyID), ' '))``: a substring
  search of a list of up to ~2,000 codes (8 KB for unit codes), which saxonche runs at ~17 ns a
  character (0.14 ms per unit code; Java's intrinsic is ~100 times faster). When the list is
  single-space separated tokens between single spaces, ``' s '`` occurs in it exactly when ``s``
  is one of its tokens, provided ``s`` has no space: the lookup becomes a hash-map lookup
  (a constant map, one global variable per list) for such values, and stays the substring search
  for the rest.
- ``codedb-param``: ``document('X_codedb.xml')`` is parsed again by every transformation (Saxon's
  document pool lives one transformation): 35 ms of the 50 ms Factur-X EN 16931 spends on a
  typical invoice. It becomes a stylesheet parameter that the caller sets once, per compiled
  stylesheet, to the same file parsed once (`Derived.documents` names the parameter and file).

Rewrites of issue 19 (rules whose cost grew with the square of the number of invoice lines; each
applies only in templates of modes that see nothing but the source document, where nothing
between the template and the expression changes the focus):

- ``root-call``: a call of a stylesheet function that returns one atomic value and makes no
  node, on absolute one-step paths (``custom:isSpecialContract(/ubl:Invoice|/cn:CreditNote)``,
  a scan of the root element's children, i.e. of every UBL line, made for every line by BR-FR),
  becomes a global variable with the same select: evaluated once, when first used, as the call
  was; in a template the root of the context node is the source document, as in a global
  variable.
- ``root-path``: the same for absolute paths of three steps or more whose predicates cannot
  raise an error nor see the rule's context (``/rsm:CrossIndustryInvoice/rsm:
  SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/...``: the step under
  ``SupplyChainTradeTransaction`` walks every CII line), and for a whole expression
  ``(/ubl:Invoice | /cn:CreditNote)/cbc:ID`` or ``//a:x/a:y/a:z`` (EXTENDED-CTC-FR's per-line
  $invoiceID, and its per-line test of the header's VAT breakdowns).
- ``sibling-lookup``: ``(../cac:InvoiceLine | ../cac:CreditNoteLine)[cbc:ID = $v]`` (one line
  looking its parent line up among all lines, BR-FR-MV-06/07) becomes ``key(K, $v)[.. is
  current()/..]`` with K matching those names and using ``cbc:ID``, when $v is bound in the
  template to a relative path ending with a name (untyped values: the key compares them as the
  general comparison does; nodes in document order either way; a path raises no error, so
  evaluating $v eagerly changes nothing).
- ``filter-key``: the same for ``count(PATH[P1][P2 and USE = $v])`` where PATH is absolute or
  a union of relative up-and-down paths: ``key(K, $v)[structure][P1][P2]``; the other
  predicates must be plain comparisons (no error, no position), so their order does not matter.
  The filter may also be a relative path ``../../a:x/a:y[P]`` (one name), go on with steps
  after its predicates, and hold the comparison one step down (``(../../L1 | ../../L2)[
  cac:BillingReference[P and cac:BillingReferenceLine/cbc:ID = $v]]``, BR-FR-MV-05's group
  sums: the key uses ``cac:BillingReference/cac:BillingReferenceLine/cbc:ID`` and the whole
  conjunct stays as a filter). $v may also be bound to ``normalize-space(P)``, P a relative
  path (one string; it raises an error exactly when P has two nodes): the expression then
  becomes ``if (exists((P)[2])) then ORIGINAL else REWRITTEN``, the original kept whole (and
  left alone by later rewrites) so that an error is the original's, message included.
- ``prefix-key``: ``PATH[P and starts-with(R, concat('#', $v, '#'))]`` (BR-FR-MV-09: the VAT
  breakdowns whose exemption reason starts with a GROUP line's invoice number, one breakdown
  per group) becomes a key lookup of ``'#'||$v||'#'`` among the prefixes of R that start and
  end with ``#`` (the same codepoint comparison), then the original predicates. A node whose R
  has several items (where starts-with raises) is indexed under '', and the expression falls
  back to the whole original when the lookup of '' finds one in PATH, or when $v's path has
  two nodes.
- ``parent-child``: ``../../cbc:DocumentCurrencyCode`` from a line (or below it) scans the
  children of the element holding every line, for every line; it becomes ``key(K,
  generate-id(../..))`` with K matching ``cbc:DocumentCurrencyCode`` by ``generate-id(..)``:
  the same children, in document order (``..//x``: by the ids of all ancestors). Only where
  the ``..`` steps go above a line element of the rule's pattern.
- ``preceding-key``: ``x[. = preceding::a:p[P]/a:id[Q]]`` (an identifier already used
  earlier in the document: BR-FR-MV-12, unique invoice numbers of GROUP lines) becomes a key
  lookup of the same string value, kept to the nodes whose first step's node is on the
  preceding axis (before, and not an ancestor).
- ``root-predicate``: a rule pattern ``(ubl:Invoice | cn:CreditNote)[P]/.../cac:BillingReference``
  tries P on the document element, a scan of its children (every line), for every node the
  rest matches; P becomes ``exists(key(K, generate-id()))``, K matching the elements of those
  names for which P holds (one evaluation per document). Only for patterns that go down
  through a line element, with an explicit priority.
- ``sibling-position``: the skeleton's location path counts, for every failed assert, the
  element's preceding siblings of the same name (quadratic when every line fails). A global
  map, built on the first location asked for, gives the position of each child of an element
  with 64 children or more among the children of the same ``node-name()``; other elements keep
  the count.

`python -m facturflow.validation.derive OUTDIR` writes the derived files for inspection.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sys
from collections.abc import Callable, Collection, Container, Hashable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from lxml import etree

_K = TypeVar("_K", bound=Hashable)

# Bump when a rewrite changes: it is part of every derived file's identity.
DERIVE_VERSION = "9"

XSL = "http://www.w3.org/1999/XSL/Transform"
_X = f"{{{XSL}}}"
_KEY_NAME = "facturflow-codedb"
_LOOKUP = re.compile(
    r"document\('(?P<file>[A-Za-z0-9_.-]+_codedb\.xml)'\)/codedb/cl\[@id=(?P<id>[0-9]+)\]"
    r"/enumeration\[@value=\$(?P<var>[A-Za-z_][A-Za-z0-9_.-]*)\]"
)
# XSLT attributes that hold XPath expressions (literal result elements' attributes never do).
_XPATH_ATTRS = ("test", "select", "use", "value")


@dataclass(frozen=True)
class Derived:
    """A derived stylesheet: its text, the rewrites applied, and what it was derived from."""

    source: Path
    source_sha256: str
    text: bytes
    rewrites: tuple[str, ...]
    # (parameter name, file) pairs the caller must set on the compiled stylesheet: each file
    # parsed as a document node (codedb-param).
    documents: tuple[tuple[str, Path], ...] = ()

    @property
    def identity(self) -> str:
        """Changes whenever the official file or a rewrite changes."""
        return f"{self.source_sha256}:{DERIVE_VERSION}:{','.join(self.rewrites)}"


REWRITES = (
    "no-text-walk",
    "rule-select",
    "path-dispatch",
    "bare-fired-rule",
    "bare-active-pattern",
    "codedb-key",
    "code-list-map",
    "root-call",
    "root-path",
    "sibling-lookup",
    "filter-key",
    "prefix-key",
    "parent-child",
    "preceding-key",
    "root-predicate",
    "sibling-position",
    "codedb-param",
)


def derive(path: Path, *, skip: Collection[str] = ()) -> Derived:
    """The derived form of one official stylesheet (its own bytes when no rewrite applies).

    `skip` names rewrites to leave out (benchmarks/ab.py measures each one that way).
    """
    unknown = set(skip) - set(REWRITES)
    if unknown:
        raise ValueError(f"unknown rewrites: {', '.join(sorted(unknown))}")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    tree = etree.ElementTree(etree.fromstring(raw, parser))
    modes: list[set[str]] = []
    # (element, attribute) pairs whose value keeps the original expression as a fallback: left
    # alone by later rewrites, so that the fallback raises exactly the original's errors.
    guarded: set[tuple[etree._Element, str]] = set()

    def source_modes() -> set[str]:
        # Computed once, after the rewrites that move walks: the three rewrites that use it add
        # global declarations and change expressions, never modes or apply-templates.
        if not modes:
            modes.append(_source_modes(tree.getroot()))
        return modes[0]

    steps: list[tuple[str, Callable[[], bool]]] = [
        ("no-text-walk", lambda: _remove_text_walks(tree)),
        ("rule-select", lambda: _select_rule_nodes(tree)),
        ("path-dispatch", lambda: _dispatch_paths(tree)),
        ("bare-fired-rule", lambda: _bare_fired_rules(tree)),
        ("bare-active-pattern", lambda: _bare_active_patterns(tree)),
        ("codedb-key", lambda: _index_codedb_lookups(tree, path.parent)),
        ("code-list-map", lambda: _map_code_lists(tree)),
        ("root-call", lambda: _hoist_root_calls(tree, source_modes())),
        ("root-path", lambda: _hoist_root_paths(tree, source_modes())),
        ("sibling-lookup", lambda: _index_sibling_lookups(tree, source_modes())),
        ("filter-key", lambda: _index_filters(tree, source_modes(), guarded)),
        ("prefix-key", lambda: _index_filters(tree, source_modes(), guarded, prefixes=True)),
        ("parent-child", lambda: _index_up_paths(tree, source_modes(), guarded)),
        ("preceding-key", lambda: _index_preceding_values(tree, source_modes())),
        ("root-predicate", lambda: _hoist_root_predicates(tree, source_modes())),
        ("sibling-position", lambda: _index_sibling_positions(tree)),
    ]
    applied = [name for name, rewrite in steps if name not in skip and rewrite()]
    documents: tuple[tuple[str, Path], ...] = ()
    if "codedb-param" not in skip:
        documents = _codedb_as_parameter(tree, path.parent)
        if documents:
            applied.append("codedb-param")
    if not applied:
        return Derived(path, digest, raw, ())
    text = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    return Derived(path, digest, text, tuple(applied), documents)


def _default_mode_templates(root: etree._Element) -> list[etree._Element]:
    out = []
    for template in root.iterchildren(f"{_X}template"):
        modes = (template.get("mode") or "#default").split()
        if "#default" in modes or "#all" in modes:
            out.append(template)
    return out


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
_NCNAME = r"[A-Za-z_][\w.-]*"
_LAST_STEP = re.compile(rf"^(?P<at>@?)(?:(?P<prefix>{_NCNAME}):)?(?P<local>{_NCNAME}|\*)$")


_OPEN = {"(": ")", "[": "]", "{": "}"}


def xpath_scan(text: str) -> list[tuple[int, str, int]]:
    """(index, character, depth) of every character of an XPath expression or pattern outside
    its string literals and comments; depth counts the (), [] and {} around the character (a
    bracket's own pair excluded). Raises ValueError on unbalanced text. The one lexer of the
    rewrites (and of benchmarks/java_compat.py)."""
    out: list[tuple[int, str, int]] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "\"'":  # a string literal; a doubled quote is an escaped quote
            j = i + 1
            while True:
                j = text.find(c, j)
                if j < 0:
                    raise ValueError(f"unterminated string literal in {text!r}")
                if text[j + 1 : j + 2] != c:
                    break
                j += 2
            i = j + 1
            continue
        if text.startswith("(:", i):  # a comment (they nest)
            level, j = 1, i + 2
            while level:
                if j >= len(text):
                    raise ValueError(f"unterminated comment in {text!r}")
                if text.startswith("(:", j):
                    level, j = level + 1, j + 2
                elif text.startswith(":)", j):
                    level, j = level - 1, j + 2
                else:
                    j += 1
            i = j
            continue
        if c in _OPEN:
            out.append((i, c, len(stack)))
            stack.append(_OPEN[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                raise ValueError(f"unbalanced {c!r} at {i} in {text!r}")
            out.append((i, c, len(stack)))
        else:
            out.append((i, c, len(stack)))
        i += 1
    if stack:
        raise ValueError(f"unclosed bracket in {text!r}")
    return out


def _top_level(text: str) -> list[bool]:
    """Per character: True when it is outside string literals, comments, brackets and
    parentheses (an opening bracket or parenthesis itself counts as outside, its closing one
    does not). Raises ValueError on unbalanced text."""
    out = [False] * len(text)
    for i, c, depth in xpath_scan(text):
        out[i] = depth == 0 and c not in ")]}"
    return out


def _last_step_tests(pattern: str) -> list[tuple[bool, str | None, str]] | None:
    """(attribute?, prefix, local name or "*") of the last step of each union branch of a
    pattern, or None when a branch's last step is not a plain name test.

    A node matches the pattern only if it passes one of these tests: earlier steps and
    predicates only restrict further (what they say does not matter here).
    """
    try:
        top = _top_level(pattern)
    except ValueError:
        return None
    outside = "".join(ch if ok else " " for ch, ok in zip(pattern, top, strict=True))
    if re.search(r"\b(union|intersect|except)\b|::", outside):
        return None
    tests = []
    start = 0
    for cut in [i for i, ch in enumerate(outside) if ch == "|"] + [len(pattern)]:
        branch, mask = pattern[start:cut], outside[start:cut]
        start = cut + 1
        step_at = mask.rfind("/") + 1
        step, mask = branch[step_at:], mask[step_at:]
        while step.rstrip().endswith("]"):  # drop the trailing predicates
            open_at = mask.rfind("[")
            if open_at < 0:
                return None
            step, mask = step[:open_at], mask[:open_at]
        m = _LAST_STEP.match(step.strip())
        if m is None or (m["prefix"] and m["local"] == "*"):
            return None
        tests.append((bool(m["at"]), m["prefix"], m["local"]))
    return tests


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


def _outside_predicates(xpath: str) -> str:
    """The text of an XPath expression with its [...] parts blanked (not its (...) parts)."""
    out = []
    depth = 0
    quote = ""
    for ch in xpath:
        if quote:
            quote = "" if ch == quote else quote
            out.append(" ")
            continue
        if ch in "'\"":
            quote = ch
        if ch == "[":
            depth += 1
        out.append(ch if depth == 0 else " ")
        if ch == "]":
            depth = max(0, depth - 1)
    return "".join(out)


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


_QNAME_STEP = re.compile(rf"^(?P<prefix>{_NCNAME}):(?P<local>{_NCNAME})$")


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


def _codedb_ids_canonical(folder: Path, file: str, cache: dict[str, bool]) -> bool:
    """True when every cl/@id of the code list file is a canonical integer ("8", not "08")."""
    if file not in cache:
        path = folder / file
        ok = path.is_file()
        if ok:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
            root = etree.parse(str(path), parser).getroot()
            ok = root.tag == "codedb" and all(
                (cl.get("id") or "").isdigit() and str(int(cl.get("id") or "x")) == cl.get("id")
                for cl in root.iter("cl")
            )
        cache[file] = ok
    return cache[file]


_NODE_PATH = re.compile(r"^(\.|@[\w.:-]+|[\w.:-]+(/@?[\w.:-]+)*)$")


def _is_node_variable(element: etree._Element, name: str) -> bool:
    """True when $name is bound, in the enclosing template, to a plain node path (. or @x)."""
    template = next(element.iterancestors(f"{_X}template"), None)
    if template is None:
        return False
    bindings = [v for v in template.iter(f"{_X}variable") if v.get("name") == name]
    return len(bindings) == 1 and bool(_NODE_PATH.match((bindings[0].get("select") or "").strip()))


def _index_codedb_lookups(tree: etree._ElementTree, folder: Path) -> bool:
    root = tree.getroot()
    if any(k.get("name") == _KEY_NAME for k in root.iter(f"{_X}key")):
        return False
    canonical: dict[str, bool] = {}
    changed = False

    def replace(m: re.Match[str], element: etree._Element) -> str:
        if not _codedb_ids_canonical(folder, m["file"], canonical):
            return m.group(0)
        if not _is_node_variable(element, m["var"]):
            return m.group(0)  # a typed value could compare numerically: keep the scan
        # Same semantics as the general comparison @value=$v for a node sequence $v: a string
        # comparison per item, true when any item matches (empty sequence: no match).
        return (
            f"key('{_KEY_NAME}', for $facturflow_v in ${m['var']} "
            f"return concat('{m['id']}|', string($facturflow_v)), document('{m['file']}'))"
        )

    for element, attr, value in list(_xpath_attributes(root)):
        if "_codedb.xml" in value:
            new = _LOOKUP.sub(partial(replace, element=element), value)
            if new != value:
                element.set(attr, new)
                changed = True
    if changed:
        _declare(
            root,
            "key",
            name=_KEY_NAME,
            match="/codedb/cl/enumeration",
            use="concat(../@id, '|', @value)",
        )
    return changed


# contains('<list>', concat(' ', E, ' ')): the list and the start of concat's second argument.
_CODE_LIST_CALL = re.compile(
    r"contains\(\s*(?P<q>['\"])(?P<list>[^'\"]*)(?P=q)\s*,\s*concat\(\s*(?P<q2>['\"]) (?P=q2)\s*,"
)
_CODE_LIST_END = re.compile(r"\s*(['\"]) \1\s*\)\s*\)")
# Tokens without spaces (nor quotes), each between single spaces.
_SPACED_TOKENS = re.compile(r" (?:[^ '\"]+ )+")
_CODE_LIST_MIN_TOKENS = 16  # shorter lists cost little to search
_CODE_LIST_VARIABLE = "facturflow-codes-"
_MAP_NS = "Q{http://www.w3.org/2005/xpath-functions/map}"


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
    root = tree.getroot()
    if not _xpath2(root):
        return False
    taken = {e.get("name") for e in root.iter(f"{_X}param", f"{_X}variable")}
    variables: dict[str, str] = {}  # list -> variable name

    def rewrite(xpath: str) -> str:
        try:
            scan = {i: depth for i, _, depth in xpath_scan(xpath)}
        except ValueError:
            return xpath
        out: list[str] = []
        at = 0
        for m in _CODE_LIST_CALL.finditer(xpath):
            if m.start() < at or m.start() not in scan:
                continue  # overlapping, or inside a string literal or a comment
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
            _numbered(variables, tokens, _CODE_LIST_VARIABLE, taken)
            literal = f"{m['q']}{tokens}{m['q']}"
            argument = xpath[m.end() : end]
            w = "$facturflow_w"
            # Same value as the original for every argument (see the module docstring); the
            # argument is evaluated once, inside concat as before (same errors).
            out.append(xpath[at : m.start()])
            out.append(
                f"(let {w} := concat(' ',{argument}, ' ') return "
                f"if (contains(substring({w}, 2, string-length({w}) - 2), ' ')) "
                f"then contains({literal}, {w}) "
                f"else {_MAP_NS}contains(${variables[tokens]}, {w}))"
            )
            at = tail.end()
        if not out:
            return xpath
        out.append(xpath[at:])
        return "".join(out)

    changed = False
    for element, attr, value in list(_xpath_attributes(root)):
        if "concat(" in value and "contains(" in value:
            new = rewrite(value)
            if new != value:
                element.set(attr, new)
                changed = True
    for tokens, name in variables.items():
        keys = dict.fromkeys(tokens.split())  # a map constructor refuses duplicate keys
        entries = ", ".join(f"' {token} ': true()" for token in keys)
        _declare(root, "variable", name=name, select=f"map{{{entries}}}")
    return changed


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
# Instructions that change the focus (or have none) between a template and their attributes.
_FOCUS_CHANGERS = {f"{_X}{n}" for n in (
    "for-each", "for-each-group", "iterate", "analyze-string", "merge", "function", "key",
    "sort", "number", "accumulator", "mode", "fork", "source-document", "where-populated",
)}


def _hoist_root_calls(tree: etree._ElementTree, safe_modes: set[str]) -> bool:
    """root-call: see the module docstring. `safe_modes`: _source_modes of the tree."""
    root = tree.getroot()
    if not _xpath2(root):
        return False
    if not safe_modes:
        return False
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
    taken = {e.get("name") for e in root.iter(f"{_X}param", f"{_X}variable")}
    variables: dict[str, str] = {}  # normalised call -> variable name
    changed = False
    for element, attr, value, _, scan in _scanned_in_safe_templates(
            root, safe_modes, lambda text: _ROOT_CALL.search(text) is not None):
        depth_at = {i: d for i, _, d in scan}
        out: list[str] = []
        at = 0
        for m in _ROOT_CALL.finditer(value):
            if m.start() < at or m.start() not in depth_at or m["function"] not in functions:
                continue
            if not _focus_kept(value, scan, m.start()):
                continue
            call = m["function"] + "(" + "|".join(
                part.strip() for part in m["argument"].split("|")) + ")"
            prefixes = {name.split(":")[0] for name in re.findall(
                rf"{_NCNAME}:{_NCNAME}", call)}
            if not _bound_as_at_root(element, root, prefixes):
                continue
            _numbered(variables, call, _ROOT_CALL_VARIABLE, taken)
            out.append(value[at : m.start()])
            out.append(f"${variables[call]}")
            at = m.end()
        if out:
            out.append(value[at:])
            element.set(attr, "".join(out))
            changed = True
    for call, name in variables.items():
        _declare(root, "variable", name=name, select=call)
    return changed


_RELATIVE_PATH = re.compile(r"^[\w.:*@|/ -]+$")


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
    root = tree.getroot()
    if not _xpath2(root):
        return False
    if not safe_modes:
        return False
    taken = {e.get("name") for e in root.iter(f"{_X}param", f"{_X}variable")}
    variables: dict[str, str] = {}
    changed = False
    for element, attr, value, _, scan_list in _scanned_in_safe_templates(
            root, safe_modes, lambda text: _ROOT_PATH_CANDIDATE.search(text) is not None
            or _ROOT_UNION_PATH.fullmatch(text.strip()) is not None):
        if _ROOT_UNION_PATH.fullmatch(value.strip()):
            # A whole expression (/a:X | /b:Y)/a:id: the nodes of the source document, the same
            # from a global variable (EXTENDED-CTC-FR's per-line $invoiceID, a scan of the root
            # element's children, i.e. of every line, for every line).
            path = value.strip()
            if _bound_as_at_root(element, root, set(re.findall(rf"({_NCNAME}):{_NCNAME}", path))):
                element.set(attr, f"${_numbered(variables, path, _ROOT_PATH_VARIABLE, taken)}")
                changed = True
            continue
        scan = {i: d for i, _, d in scan_list}
        out: list[str] = []
        at = 0
        for m in _ROOT_PATH_START.finditer(value):
            start = m.start()
            if start < at or start not in scan:
                continue
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
            _numbered(variables, path, _ROOT_PATH_VARIABLE, taken)
            out.append(value[at:start])
            out.append(f"${variables[path]}")
            at = end
        if out:
            out.append(value[at:])
            element.set(attr, "".join(out))
            changed = True
    for path, name in variables.items():
        _declare(root, "variable", name=name, select=path)
    return changed


_QN = rf"{_NCNAME}:{_NCNAME}"
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
    root = tree.getroot()
    if not _xpath2(root):
        return False
    taken = {e.get("name") for e in root.iter(f"{_X}key")}
    keys: dict[tuple[str, str], str] = {}  # (match, use) -> key name
    changed = False
    for element, attr, value, template, scan_list in _scanned_in_safe_templates(
            root, safe_modes, lambda text: _SIBLING_LOOKUP.search(text) is not None):
        scan = {i for i, _, _ in scan_list}
        out: list[str] = []
        at = 0
        for m in _SIBLING_LOOKUP.finditer(value):
            if m.start() < at or m.start() not in scan:
                continue
            if not _focus_kept(value, scan_list, m.start()):
                continue
            if not _node_path_variable(template, m["var"]):
                continue
            names = [n for n in (m["a"], m["b"], m["c"]) if n]
            prefixes = {q.split(":")[0] for q in [*names, *m["use"].split("/")]}
            if not _bound_as_at_root(element, root, prefixes):
                continue
            match = " | ".join(names)
            _numbered(keys, (match, m["use"]), _SIBLING_LOOKUP_KEY, taken)
            # The same nodes in the same (document) order: the key's lines whose identifier
            # equals one of the values (untyped strings on both sides), kept to the siblings.
            out.append(value[at : m.start()])
            out.append(f"key('{keys[(match, m['use'])]}', ${m['var']})[.. is current()/..]")
            at = m.end()
        if out:
            out.append(value[at:])
            element.set(attr, "".join(out))
            changed = True
    for (match, use), name in keys.items():
        _declare(root, "key", name=name, match=match, use=use)
    return changed


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
# A predicate that is a boolean, cannot raise an error and does not depend on position: names,
# attributes, string literals, node-valued variables, =, !=, and, or, not(), and predicates of
# the same (their focus is their own step's, the same wherever the step is evaluated).
_PLAIN_PREDICATE = re.compile(
    rf"^(?:\s|@?{_QN}|@{_NCNAME}|/|'[^']*'|\"[^\"]*\"|!?=|\(|\)|\[|\]|,|\.\.|\$[\w.-]+"
    rf"|\band\b|\bor\b|\bnot\()+$"
)
_NODE_SELECT = re.compile(r"^[\w.:@/|()\s-]+$")
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
    root = tree.getroot()
    if not _xpath2(root):
        return False
    if not safe_modes:
        return False
    if any("default-collation" in str(name) for e in root.iter() if isinstance(e.tag, str)
           for name in e.attrib):
        return False  # keys, = and starts-with compare by codepoints only without it
    global_nodes = {v.get("name") for v in root.iterchildren(f"{_X}variable")
                    if not len(v) and _node_select(v.get("select") or "")}
    taken = {e.get("name") for e in root.iter(f"{_X}key")}
    keys: dict[tuple[str, str], str] = {}
    changed = False
    wanted: Callable[[str], bool] = (
        (lambda text: "starts-with(" in text and "concat(" in text) if prefixes
        else (lambda text: "= $" in text or "=$" in text))
    for element, attr, value, template, scan_list in _scanned_in_safe_templates(
            root, safe_modes, wanted):
        if (element, attr) in guarded:
            continue  # holds an original expression as a fallback: kept as it is
        depth = {i: d for i, _, d in scan_list}
        out: list[str] = []
        attribute_guards: list[str] = []
        at = 0
        for m in _FILTER_HEAD.finditer(value):
            if m.start() < at or m.start() not in depth or not value.startswith("[", m.end()):
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
            key = _numbered(keys, (match, keyed.use), _PREFIX_KEY if prefixes else _FILTER_KEY,
                            taken)
            new = f"key('{key}', {keyed.lookup}){check}" + "".join(
                f"[{r.strip()}]" for r in rest)
            guards = []
            if guard_path is not None:
                guards.append(f"exists(({guard_path})[2])")
            if keyed.prefix:
                guards.append(f"exists(key('{key}', ''){check})")
            attribute_guards.extend(g for g in guards if g not in attribute_guards)
            out.append(value[at : m.start()])
            out.append(new)
            at = i
        if out:
            out.append(value[at:])
            rewritten = "".join(out)
            if attribute_guards:
                # Where a variable or a tested value could raise, the whole original expression,
                # evaluated as before (the same value, or the same error with the same message).
                rewritten = (f"if ({' or '.join(attribute_guards)}) then ({value}) "
                             f"else ({rewritten})")
                guarded.add((element, attr))
            element.set(attr, rewritten)
            changed = True
    for (match, use), name in keys.items():
        _declare(root, "key", name=name, match=match, use=use)
    return changed


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


def _numbered(names: dict[_K, str], key: _K, prefix: str,
              taken: Container[str | None]) -> str:
    """The name of `key` in `names`, else the next `prefix`N free in the stylesheet.

    Never None: a rewrite that stopped half-way on a taken name left the references it had
    already substituted without their declaration."""
    if key not in names:
        used = set(names.values())
        number = len(names) + 1
        while f"{prefix}{number}" in taken or f"{prefix}{number}" in used:
            number += 1
        names[key] = f"{prefix}{number}"
    return names[key]


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


_PRECEDING_SAME_NAME = (
    "count(preceding-sibling::*[local-name()=local-name(current()) "
    "and namespace-uri() = namespace-uri(current())])"
)
_SIBLING_POSITIONS = "facturflow-sibling-positions"
_MANY_CHILDREN = 64  # below this, counting the preceding siblings costs little


def _index_sibling_positions(tree: etree._ElementTree) -> bool:
    """sibling-position: see the module docstring."""
    root = tree.getroot()
    if not _xpath2(root):
        return False
    taken = {e.get("name") for e in root.iter(f"{_X}variable", f"{_X}param")}
    if _SIBLING_POSITIONS in taken:
        return False
    counts = [
        variable
        for template in root.iterchildren(f"{_X}template")
        if (template.get("match") or "").strip() == "*"
        and "schematron-get-full-path" in (template.get("mode") or "").split()
        for variable in template.iterchildren(f"{_X}variable")
        if " ".join((variable.get("select") or "").split()) == _PRECEDING_SAME_NAME
        and not len(variable)
    ]
    if not counts:
        return False
    for variable in counts:
        original = variable.get("select") or ""
        variable.set("select", f"if ({_MAP_NS}contains(${_SIBLING_POSITIONS}, generate-id())) "
                               f"then {_MAP_NS}get(${_SIBLING_POSITIONS}, generate-id()) - 1 "
                               f"else {original}")
    # generate-id() of each child of an element with 64 children or more -> its position among
    # the children of the same name (node-name(): namespace and local name), built once, on
    # the first location asked for.
    xs = "http://www.w3.org/2001/XMLSchema"
    positions = etree.Element(f"{_X}variable", nsmap={"xsl": XSL, "xs": xs})
    positions.set("name", _SIBLING_POSITIONS)
    positions.set("as", "map(xs:string, xs:integer)")
    positions.set("version", "3.0")
    build = etree.SubElement(positions, f"{_X}map")
    parents = etree.SubElement(build, f"{_X}for-each", select=f"//*[*[{_MANY_CHILDREN}]]")
    group = etree.SubElement(parents, f"{_X}for-each-group", attrib={
        "select": "*", "group-by": "node-name()"})
    each = etree.SubElement(group, f"{_X}for-each", select="current-group()")
    etree.SubElement(each, f"{_X}map-entry", key="generate-id()", select="position()")
    positions.tail = "\n"
    imports = list(root.iterchildren(f"{_X}import"))
    root.insert(root.index(imports[-1]) + 1 if imports else 0, positions)
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


_DOCUMENT_CALL = re.compile(r"document\('(?P<file>[A-Za-z0-9_.-]+_codedb\.xml)'\)")
CODEDB_PARAMETER = "facturflow_codedb"


def _xpath_attributes(root: etree._Element) -> Iterator[tuple[etree._Element, str, str]]:
    """The XPath-holding attributes of XSLT instructions (literal result elements' attributes,
    such as svrl:failed-assert/@test, are output, not code)."""
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith(_X):
            for attr in _XPATH_ATTRS:
                value = element.get(attr)
                if value:
                    yield element, attr, value


def _codedb_as_parameter(tree: etree._ElementTree, folder: Path) -> tuple[tuple[str, Path], ...]:
    root = tree.getroot()
    files = {m["file"] for _, _, v in _xpath_attributes(root) for m in _DOCUMENT_CALL.finditer(v)}
    if len(files) != 1:
        return ()  # none, or several lists: keep document()
    (file,) = files
    path = folder / file
    taken = {e.get("name") for e in root.iter(f"{_X}param", f"{_X}variable")}
    if not path.is_file() or CODEDB_PARAMETER in taken:
        return ()
    for element, attr, value in list(_xpath_attributes(root)):
        new = _DOCUMENT_CALL.sub(f"${CODEDB_PARAMETER}", value)
        if new != value:
            element.set(attr, new)
    _declare(root, "param", name=CODEDB_PARAMETER, **{"as": "document-node()"}, required="yes")
    return ((CODEDB_PARAMETER, path),)


def main(argv: list[str]) -> int:
    from ..artefacts import BUILTIN, package_root

    if len(argv) != 1:
        print("usage: python -m facturflow.validation.derive OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for spec in BUILTIN:
        if spec.kind != "schematron":
            continue
        derived = derive(package_root() / spec.relpath)
        target = out / Path(spec.relpath).name
        target.write_bytes(derived.text)
        print(f"{target}: {', '.join(derived.rewrites) or 'unchanged'} ({derived.identity[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
