"""facturflow: detect, validate, convert and transmit French e-invoices."""

from .detect import Document, detect
from .convert import ConversionResult, convert
from .model import Invoice
from .read import read
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
from .transmit.qonto import AsyncQontoClient, QontoClient
from .transmit.sandbox import sandbox

__version__ = "0.1.0"

__all__ = [
    "ArtefactError",
    "AsyncQontoClient",
    "ConversionError",
    "ConversionResult",
    "Document",
    "EmptyInputError",
    "FacturflowError",
    "Finding",
    "InputError",
    "InputTooLargeError",
    "Invoice",
    "MalformedPDFError",
    "MalformedXMLError",
    "NoInvoiceInPDFError",
    "NotAnInvoiceError",
    "QontoClient",
    "Report",
    "RulePackError",
    "TransmitError",
    "__version__",
    "convert",
    "detect",
    "read",
    "sandbox",
    "validate",
    "validate_many",
]
