"""The code-database rewrites: codedb-key (indexed lookups), codedb-param (parsed once)."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from lxml import etree

from .common import _declare
from .xpath import _X, _xpath_attributes

_KEY_NAME = "facturflow-codedb"
_LOOKUP = re.compile(
    r"document\('(?P<file>[A-Za-z0-9_.-]+_codedb\.xml)'\)/codedb/cl\[@id=(?P<id>[0-9]+)\]"
    r"/enumeration\[@value=\$(?P<var>[A-Za-z_][A-Za-z0-9_.-]*)\]"
)


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


_DOCUMENT_CALL = re.compile(r"document\('(?P<file>[A-Za-z0-9_.-]+_codedb\.xml)'\)")
CODEDB_PARAMETER = "facturflow_codedb"


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
