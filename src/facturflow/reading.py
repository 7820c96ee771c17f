"""`facturflow.read(source) -> Invoice`: any detected invoice into the EN 16931 model."""

from __future__ import annotations

from contextlib import nullcontext

from .detection import Document, Source, detect
from .errors import InputError
from .model.codelists import unchecked_codes
from .model.invoice import Invoice
from .syntax import BindingError, read_tree
from .syntax.zugferd1 import Mapping, read_zugferd1


def read(source: Source | Document, *, check_codes: bool = True) -> Invoice:
    """Read a UBL Invoice or CreditNote, a CII of any Factur-X profile or a Factur-X PDF.

    Raises an InputError subclass when the input is not a readable invoice, and InputError
    naming the business term when a value cannot be typed (a bad date or number, or, unless
    `check_codes` is False, a code outside its EN 16931 code list).
    ZUGFeRD 1.0 (XML or PDF) is read through its mapping to EN 16931 (see
    facturflow.syntax.zugferd1; `read_with_mapping` also tells what did not map).
    """
    return read_with_mapping(source, check_codes=check_codes)[0]


def read_with_mapping(
    source: Source | Document, *, check_codes: bool = True
) -> tuple[Invoice, Mapping | None]:
    """read(), and for a ZUGFeRD 1.0 document the Mapping (unmapped content, completed terms);
    None for the EN 16931 syntaxes, which map whole."""
    document = detect(source)
    try:
        with nullcontext() if check_codes else unchecked_codes():
            if document.syntax == "zugferd1":
                return read_zugferd1(document.tree)
            return read_tree(document.tree, document.syntax), None
    except BindingError as exc:
        raise InputError(str(exc), source=document.name) from None
