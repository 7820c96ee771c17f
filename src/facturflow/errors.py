"""The one exception hierarchy of facturflow.

    FacturflowError                 base of everything facturflow raises on purpose
    ├── InputError                  an input cannot be read as an invoice (CLI exit code 2)
    │   ├── EmptyInputError         the input has no bytes
    │   ├── InputTooLargeError      the input exceeds the configured size or depth limit
    │   ├── MalformedXMLError       the bytes are not well-formed XML (or use a forbidden DTD)
    │   ├── MalformedPDFError       the PDF cannot be parsed, is encrypted or is a bomb
    │   ├── NoInvoiceInPDFError     a PDF carries no invoice XML (or more than one)
    │   └── NotAnInvoiceError       well-formed, but not a supported invoice vocabulary
    ├── ArtefactError               an official artefact is missing or differs from the manifest
    ├── UnknownRuleSetError         a rule selection names an unknown rule set (not a built-in
    │   │                           set, an alias nor a loaded pack); also a ValueError; CLI
    │   │                           exit code 2
    │   └── EmptyRuleSelectionError the selection names nothing at all ("", ",", [])
    ├── RulePackError               a user rule pack is malformed or does what a pack may not
    ├── ConversionError             a conversion would be invalid or lose business terms
    └── TransmitError               sending through the PA failed (see facturflow.transmit)

Every error carries `source`, the file or label it concerns, so that batch reports can say which
input failed and why without parsing messages.
"""

from __future__ import annotations


class FacturflowError(Exception):
    """Base class of every error facturflow raises on purpose."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        if self.source:
            return f"{self.source}: {self.message}"
        return self.message


class InputError(FacturflowError):
    """The input cannot be read as an invoice."""


class EmptyInputError(InputError):
    """The input is empty."""


class InputTooLargeError(InputError):
    """The input exceeds the size or nesting-depth limit."""


class MalformedXMLError(InputError):
    """The input is not well-formed XML, or declares a DTD, entities or XInclude."""


class MalformedPDFError(InputError):
    """The PDF cannot be parsed safely (truncated, encrypted, garbled, decompression bomb)."""


class NoInvoiceInPDFError(InputError):
    """The PDF has no invoice XML attachment, or several competing ones."""


class NotAnInvoiceError(InputError):
    """The document is well-formed but not a supported invoice (Order-X, FatturaPA, other XML)."""


class ArtefactError(FacturflowError):
    """An official artefact is missing, unreadable or differs from the pinned manifest."""


class UnknownRuleSetError(FacturflowError, ValueError):
    """A rule selection names a rule set that is neither built in, an alias nor a loaded pack
    (and, through EmptyRuleSelectionError, one that names nothing)."""


class EmptyRuleSelectionError(UnknownRuleSetError):
    """A rule selection names no rule set at all ("", ",", an empty list)."""


class RulePackError(FacturflowError):
    """A user rule pack's manifest or files are wrong."""


class ConversionError(FacturflowError):
    """A conversion would produce an invalid document or drop business terms."""


class TransmitError(FacturflowError):
    """Sending an invoice through the PA failed."""


__all__ = [
    "ArtefactError",
    "ConversionError",
    "EmptyInputError",
    "EmptyRuleSelectionError",
    "FacturflowError",
    "InputError",
    "InputTooLargeError",
    "MalformedPDFError",
    "MalformedXMLError",
    "NoInvoiceInPDFError",
    "NotAnInvoiceError",
    "RulePackError",
    "TransmitError",
    "UnknownRuleSetError",
]
