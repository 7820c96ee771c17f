"""`facturflow.read(source) -> Invoice`: any detected invoice into the EN 16931 model."""

from __future__ import annotations

from .detect import Document, Source, detect
from .errors import InputError, NotAnInvoiceError
from .model.codelists import unchecked_codes
from .model.invoice import Invoice
from .syntax import BindingError, read_tree


def read(source: Source | Document, *, check_codes: bool = True) -> Invoice:
    """Read a UBL Invoice or CreditNote, a CII of any Factur-X profile or a Factur-X PDF.

    Raises an InputError subclass when the input is not a readable invoice, and InputError
    naming the business term when a value cannot be typed (a bad date or number, or, unless
    `check_codes` is False, a code outside its EN 16931 code list).
    ZUGFeRD 1.0 documents are detected but not read.
    """
    document = detect(source)
    if document.syntax == "zugferd1":
        raise NotAnInvoiceError(
            "ZUGFeRD 1.0 is not mapped to the EN 16931 model; convert it to ZUGFeRD 2 first",
            source=document.name,
        )
    try:
        if check_codes:
            return read_tree(document.tree, document.syntax)
        with unchecked_codes():
            return read_tree(document.tree, document.syntax)
    except BindingError as exc:
        raise InputError(str(exc), source=document.name) from None
