"""facturflow: detect, validate, convert and transmit French e-invoices."""

from .detect import Document, detect
from .validate import validate, validate_many
from .validate.report import Finding, Report
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
    "Finding",
    "InputError",
    "InputTooLargeError",
    "MalformedPDFError",
    "MalformedXMLError",
    "NoInvoiceInPDFError",
    "NotAnInvoiceError",
    "Report",
    "RulePackError",
    "TransmitError",
    "__version__",
    "detect",
    "validate",
    "validate_many",
]
