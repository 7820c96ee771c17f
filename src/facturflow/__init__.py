"""facturflow: detect, validate, convert and transmit French e-invoices.

The public API is re-exported here. Stages are imported on first use, so that a command that only
validates does not pay for loading the conversion, rendering and HTTP stacks.
"""

from __future__ import annotations

import importlib
import sys
import types
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
    from .convert import ConversionResult, convert
    from .detect import Document, detect
    from .model import Invoice, ModelError
    from .read import read
    from .transmit.qonto import AsyncQontoClient, QontoClient
    from .transmit.sandbox import sandbox
    from .validate import BatchValidator, validate, validate_many
    from .validate.report import Finding, Report
    from .validate.verdict_cache import VerdictCache

__version__ = "0.1.0"

_LAZY = {
    "AsyncQontoClient": "facturflow.transmit.qonto",
    "BatchValidator": "facturflow.validate",
    "ConversionResult": "facturflow.convert",
    "Document": "facturflow.detect",
    "Finding": "facturflow.validate.report",
    "Invoice": "facturflow.model",
    "ModelError": "facturflow.model",
    "QontoClient": "facturflow.transmit.qonto",
    "Report": "facturflow.validate.report",
    "convert": "facturflow.convert",
    "detect": "facturflow.detect",
    "read": "facturflow.read",
    "sandbox": "facturflow.transmit.sandbox",
    "VerdictCache": "facturflow.validate.verdict_cache",
    "validate": "facturflow.validate",
    "validate_many": "facturflow.validate",
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


class _Package(types.ModuleType):
    """Keeps `facturflow.validate` (and detect, read, convert) the public functions.

    Importing a submodule sets an attribute of the same name on its package; without this guard
    the first import of `facturflow.validate.report`, say, would replace the function
    `facturflow.validate` with the module.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == value.__name__:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
