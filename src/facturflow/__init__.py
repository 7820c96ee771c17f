"""facturflow: detect, validate, convert and transmit French e-invoices."""

from .detect import Document, detect
from .errors import (
    ArtefactError,
    ConversionError,
    EmptyInputError,
    FacturflowError,
    InputError,
    InputTooLargeError,
    MalformedPDFError,
    MalformedXMLError,
    NoInvoiceInPDFError,
    NotAnInvoiceError,
    RulePackError,
    TransmitError,
)

__version__ = "0.1.0"

__all__ = [
    "ArtefactError",
    "ConversionError",
    "Document",
    "EmptyInputError",
    "FacturflowError",
    "InputError",
    "InputTooLargeError",
    "MalformedPDFError",
    "MalformedXMLError",
    "NoInvoiceInPDFError",
    "NotAnInvoiceError",
    "RulePackError",
    "TransmitError",
    "__version__",
    "detect",
]
