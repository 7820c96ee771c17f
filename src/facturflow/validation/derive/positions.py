"""The sibling-position rewrite: positions among many same-name siblings from one map."""

from __future__ import annotations

from lxml import etree

from .common import _xpath2
from .xpath import _MAP_NS, _X, XSL

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
