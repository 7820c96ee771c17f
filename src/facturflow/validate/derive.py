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
- ``codedb-key``: the Factur-X stylesheets look code values up with
  ``document('X_codedb.xml')/codedb/cl[@id=N]/enumeration[@value=$v]``, a linear scan of a list
  of up to ~2,000 values per lookup (unit codes: one per invoice line). They become an indexed
  ``key()`` lookup over the same document, with the same string comparison.
- ``codedb-param``: ``document('X_codedb.xml')`` is parsed again by every transformation (Saxon's
  document pool lives one transformation): 35 ms of the 50 ms Factur-X EN 16931 spends on a
  typical invoice. It becomes a stylesheet parameter that the caller sets once, per compiled
  stylesheet, to the same file parsed once (`Derived.documents` names the parameter and file).

`python -m facturflow.validate.derive OUTDIR` writes the derived files for inspection.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lxml import etree

# Bump when a rewrite changes: it is part of every derived file's identity.
DERIVE_VERSION = "2"

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


def derive(path: Path) -> Derived:
    """The derived form of one official stylesheet (its own bytes when no rewrite applies)."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    tree = etree.ElementTree(etree.fromstring(raw, parser))
    applied = []
    if _remove_text_walks(tree):
        applied.append("no-text-walk")
    if _index_codedb_lookups(tree, path.parent):
        applied.append("codedb-key")
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

    for element in root.iter():
        if not isinstance(element.tag, str) or not element.tag.startswith(_X):
            continue  # literal result elements (svrl:failed-assert/@test) are output, not code
        for attr in _XPATH_ATTRS:
            value = element.get(attr)
            if value and "_codedb.xml" in value:
                new = _LOOKUP.sub(partial(replace, element=element), value)
                if new != value:
                    element.set(attr, new)
                    changed = True
    if changed:
        key = etree.Element(f"{_X}key", nsmap={"xsl": XSL})
        key.set("name", _KEY_NAME)
        key.set("match", "/codedb/cl/enumeration")
        key.set("use", "concat(../@id, '|', @value)")
        key.tail = "\n"
        # Top-level declarations may come in any order after xsl:import; put it first after them.
        imports = list(root.iterchildren(f"{_X}import"))
        position = root.index(imports[-1]) + 1 if imports else 0
        root.insert(position, key)
    return changed


_DOCUMENT_CALL = re.compile(r"document\('(?P<file>[A-Za-z0-9_.-]+_codedb\.xml)'\)")
CODEDB_PARAMETER = "facturflow_codedb"


def _xpath_attributes(root: etree._Element) -> Iterator[tuple[etree._Element, str, str]]:
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
    param = etree.Element(f"{_X}param", nsmap={"xsl": XSL})
    param.set("name", CODEDB_PARAMETER)
    param.set("as", "document-node()")
    param.set("required", "yes")
    param.tail = "\n"
    imports = list(root.iterchildren(f"{_X}import"))
    root.insert(root.index(imports[-1]) + 1 if imports else 0, param)
    return ((CODEDB_PARAMETER, path),)


def main(argv: list[str]) -> int:
    from ..artefacts import BUILTIN, package_root

    if len(argv) != 1:
        print("usage: python -m facturflow.validate.derive OUTDIR", file=sys.stderr)
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
