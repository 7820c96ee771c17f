"""Syntax bindings: read a CII or UBL document into the EN 16931 model, write the model back.

`cii.py` follows CEN/TS 16931-3-3 and `ubl.py` CEN/TS 16931-3-2; each declares one table of
bindings (business term -> path) that serves both directions.
"""

from __future__ import annotations

from typing import Literal

from lxml import etree

from ..model.invoice import Invoice
from ._engine import BindingError
from .cii import read_cii, write_cii
from .ubl import read_ubl, write_ubl

TargetSyntax = Literal["cii", "ubl", "ubl-invoice", "ubl-creditnote"]

__all__ = [
    "BindingError",
    "read_cii",
    "read_tree",
    "read_ubl",
    "to_xml",
    "write_cii",
    "write_ubl",
]


def read_tree(tree: etree._ElementTree, syntax: str) -> Invoice:
    """Read a parsed document of a detected syntax ('cii', 'ubl-invoice', 'ubl-creditnote')."""
    if syntax == "cii":
        return read_cii(tree)
    if syntax in ("ubl-invoice", "ubl-creditnote"):
        return read_ubl(tree)
    raise ValueError(f"no reader for syntax {syntax!r}")


def to_xml(invoice: Invoice, syntax: TargetSyntax) -> bytes:
    """Serialise the model as UTF-8 XML bytes with a declaration.

    'ubl' picks Invoice or CreditNote from the type code; 'ubl-invoice' / 'ubl-creditnote'
    force one.
    """
    if syntax == "cii":
        tree = write_cii(invoice)
    elif syntax == "ubl":
        tree = write_ubl(invoice)
    elif syntax == "ubl-invoice":
        tree = write_ubl(invoice, document="invoice")
    elif syntax == "ubl-creditnote":
        tree = write_ubl(invoice, document="creditnote")
    else:
        raise ValueError(f"no writer for syntax {syntax!r}")
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
