"""facturflow: detect, validate, convert and transmit French e-invoices.

The public API is re-exported here. Stages are imported on first use, so that a command that only
validates does not pay for loading the conversion, rendering and HTTP stacks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ArtefactError,
    ConversionError,
    EmptyInputError,
    EmptyRuleSelectionError,
    FacturflowError,
    InputError,
    InputTooLargeError,
    MalformedPDFError,
    MalformedXMLError,
    NoInvoiceInPDFError,
    NotAnInvoiceError,
    RulePackError,
    TransmitError,
    UnknownRuleSetError,
)

if TYPE_CHECKING:
    from .conversion import ConversionResult, convert
    from .detection import Document, detect
    from .model import Invoice, ModelError
    from .reading import read
    from .transmit.qonto import AsyncQontoClient, QontoClient
    from .transmit.sandbox import sandbox
    from .validation import BatchValidator, validate, validate_many
    from .validation.report import Finding, Report
    from .validation.verdict_cache import VerdictCache

__version__ = "0.1.0"

_LAZY = {
    "AsyncQontoClient": "facturflow.transmit.qonto",
    "BatchValidator": "facturflow.validation",
    "ConversionResult": "facturflow.conversion",
    "Document": "facturflow.detection",
    "Finding": "facturflow.validation.report",
    "Invoice": "facturflow.model",
    "ModelError": "facturflow.model",
    "QontoClient": "facturflow.transmit.qonto",
    "Report": "facturflow.validation.report",
    "convert": "facturflow.conversion",
    "detect": "facturflow.detection",
    "read": "facturflow.reading",
    "sandbox": "facturflow.transmit.sandbox",
    "VerdictCache": "facturflow.validation.verdict_cache",
    "validate": "facturflow.validation",
    "validate_many": "facturflow.validation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facturflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)




__all__ = [
    "ArtefactError",
    "AsyncQontoClient",
    "BatchValidator",
    "ConversionError",
    "ConversionResult",
    "Document",
    "EmptyInputError",
    "EmptyRuleSelectionError",
    "FacturflowError",
    "Finding",
    "InputError",
    "InputTooLargeError",
    "Invoice",
    "MalformedPDFError",
    "MalformedXMLError",
    "ModelError",
    "NoInvoiceInPDFError",
    "NotAnInvoiceError",
    "QontoClient",
    "Report",
    "RulePackError",
    "TransmitError",
    "UnknownRuleSetError",
    "VerdictCache",
    "__version__",
    "convert",
    "detect",
    "read",
    "sandbox",
    "validate",
    "validate_many",
]
