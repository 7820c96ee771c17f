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
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from .codedb import CODEDB_PARAMETER as CODEDB_PARAMETER
from .codedb import _codedb_as_parameter, _index_codedb_lookups
from .common import _source_modes
from .dispatch import _absolute_name_path as _absolute_name_path
from .dispatch import _dispatch_paths
from .hoist import _hoist_root_calls, _hoist_root_paths, _map_code_lists
from .keys import _hoist_root_predicates, _index_preceding_values, _index_up_paths
from .keys import _pattern_levels as _pattern_levels
from .lookups import _index_filters, _index_sibling_lookups
from .lookups import _string_path_variable as _string_path_variable
from .positions import _index_sibling_positions
from .svrl import SVRL as SVRL
from .svrl import _bare_active_patterns, _bare_fired_rules
from .walks import _MAX_NAMED as _MAX_NAMED
from .walks import _remove_text_walks, _select_rule_nodes
from .walks import _union as _union
from .xpath import _X as _X
from .xpath import XSL as XSL
from .xpath import _last_step_tests as _last_step_tests
from .xpath import _top_level as _top_level
from .xpath import xpath_scan as xpath_scan

# Bump when a rewrite changes: it is part of every derived file's identity.
DERIVE_VERSION = "9"


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


def main(argv: list[str]) -> int:
    from ...artefacts import BUILTIN, package_root

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
