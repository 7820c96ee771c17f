"""`facturflow.read(source) -> Invoice`: any detected invoice into the EN 16931 model."""

from __future__ import annotations

from .detect import Document, Source, detect
from .errors import InputError, NotAnInvoiceError
from .model.invoice import Invoice
from .syntax import BindingError, read_tree


def read(source: Source | Document) -> Invoice:
    """Read a UBL Invoice or CreditNote, a CII of any Factur-X profile or a Factur-X PDF.

    Raises an InputError subclass when the input is not a readable invoice, and InputError
    naming the business term when a value cannot be typed (a bad date, number or code).
    ZUGFeRD 1.0 documents are detected but not read.
    """
    document = detect(source)
    if document.syntax == "zugferd1":
        raise NotAnInvoiceError(
            "ZUGFeRD 1.0 is not mapped to the EN 16931 model; convert it to ZUGFeRD 2 first",
            source=document.name,
        )
    try:
        return read_tree(document.tree, document.syntax)
    except BindingError as exc:
        raise InputError(str(exc), source=document.name) from None
