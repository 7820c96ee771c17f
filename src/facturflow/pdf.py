"""Read the parts of a PDF that matter for Factur-X: embedded files, their file specs, the XMP.

Only the catalogue is walked (never the page tree), every name tree and array walk is bounded,
and stream decoding stays under pypdf's decompression limits, so a hostile PDF costs bounded
time and memory.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pypdf import PdfReader
from pypdf.errors import PdfReadError, PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, PdfObject

from .errors import MalformedPDFError, NoInvoiceInPDFError

# The names a Factur-X / ZUGFeRD / XRechnung invoice XML may carry inside a PDF.
INVOICE_XML_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "ZUGFeRD-invoice.xml", "xrechnung.xml")
ORDER_X_NAMES = ("order-x.xml",)
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
_MAX_NODES = 10_000

logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Attachment:
    """One embedded file, with what its file specification says about it."""

    name: str
    data: bytes
    mime_type: str | None
    af_relationship: str | None
    in_af_array: bool
    in_name_tree: bool


@dataclass(frozen=True)
class PdfParts:
    """The Factur-X-relevant parts of a PDF."""

    attachments: tuple[Attachment, ...]
    xmp: bytes | None
    header_version: str

    def invoice_attachments(self) -> list[Attachment]:
        """Attachments named as an invoice XML, in the order of INVOICE_XML_NAMES."""
        rank = {n: i for i, n in enumerate(INVOICE_XML_NAMES)}
        return sorted((a for a in self.attachments if a.name in rank), key=lambda a: rank[a.name])

    def candidate_attachments(self) -> list[Attachment]:
        """Invoice XML candidates: the standard names first, then any other .xml attachment."""
        named = self.invoice_attachments()
        others = [
            a
            for a in self.attachments
            if a not in named and a.name.lower().endswith(".xml") and a.name not in ORDER_X_NAMES
        ]
        return named + others

    def no_invoice_error(self, source: str | None) -> NoInvoiceInPDFError:
        """The error for a PDF that carries no invoice XML, naming what it does carry."""
        names = ", ".join(a.name for a in self.attachments) or "none"
        if any(a.name in ORDER_X_NAMES for a in self.attachments):
            return NoInvoiceInPDFError(
                "this PDF carries an Order-X document (order-x.xml), not an invoice",
                source=source,
            )
        return NoInvoiceInPDFError(
            f"no invoice XML embedded (expected one of {', '.join(INVOICE_XML_NAMES)}; "
            f"embedded files: {names})",
            source=source,
        )


def _resolve(obj: PdfObject | None) -> PdfObject | None:
    seen = 0
    while isinstance(obj, IndirectObject):
        obj = obj.get_object()
        seen += 1
        if seen > 32:
            return None
    return obj


def _name_tree_leaves(node: PdfObject | None, budget: list[int]) -> Iterator[tuple[str, PdfObject]]:
    """Yield (name, value) from a PDF name tree, bounded against loops and huge trees."""
    stack = [node]
    visited: set[int] = set()
    while stack:
        current = _resolve(stack.pop())
        if not isinstance(current, DictionaryObject) or id(current) in visited:
            continue
        visited.add(id(current))
        budget[0] -= 1
        if budget[0] < 0:
            raise MalformedPDFError("the embedded-files name tree is too large or cyclic")
        names = _resolve(current.get("/Names"))
        if isinstance(names, ArrayObject):
            for i in range(0, len(names) - 1, 2):
                key = _resolve(names[i])
                yield str(key), names[i + 1]
        kids = _resolve(current.get("/Kids"))
        if isinstance(kids, ArrayObject):
            stack.extend(kids)


def _filespec_name(spec: DictionaryObject) -> str | None:
    for key in ("/UF", "/F"):
        value = _resolve(spec.get(key))
        if value is not None:
            return str(value)
    return None


def _filespec_attachment(
    spec: DictionaryObject, fallback_name: str | None
) -> tuple[str, bytes, str | None, str | None] | None:
    name = _filespec_name(spec) or fallback_name
    ef = _resolve(spec.get("/EF"))
    if name is None or not isinstance(ef, DictionaryObject):
        return None
    stream = _resolve(ef.get("/F") or ef.get("/UF"))
    if stream is None or not hasattr(stream, "get_data"):
        return None
    data = stream.get_data()
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise MalformedPDFError(
            f"embedded file {name!r} inflates to more than {MAX_ATTACHMENT_BYTES} bytes"
        )
    subtype = _resolve(stream.get("/Subtype")) if isinstance(stream, DictionaryObject) else None
    mime = str(subtype).lstrip("/").replace("#2F", "/") if subtype is not None else None
    rel = _resolve(spec.get("/AFRelationship"))
    relationship = str(rel).lstrip("/") if rel is not None else None
    return name, data, mime, relationship


def read_pdf(data: bytes, *, source: str | None = None) -> PdfParts:
    """Open a PDF and collect its attachments and XMP; raises MalformedPDFError."""
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise MalformedPDFError("not a PDF (no %PDF- header)", source=source)
    header = data.lstrip()[5:8].decode("ascii", "replace")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise MalformedPDFError("the PDF is encrypted", source=source)
        root = _resolve(reader.trailer.get("/Root"))
        if not isinstance(root, DictionaryObject):
            raise MalformedPDFError("the PDF has no document catalogue", source=source)
        by_name: dict[str, dict[str, object]] = {}
        budget = [_MAX_NODES]

        names = _resolve(root.get("/Names"))
        if isinstance(names, DictionaryObject):
            for key, value in _name_tree_leaves(names.get("/EmbeddedFiles"), budget):
                spec = _resolve(value)
                if isinstance(spec, DictionaryObject):
                    found = _filespec_attachment(spec, key)
                    if found:
                        entry = by_name.setdefault(found[0], {"parts": found, "af": False})
                        entry["tree"] = True

        af = _resolve(root.get("/AF"))
        if isinstance(af, ArrayObject):
            for value in list(af)[:_MAX_NODES]:
                spec = _resolve(value)
                if isinstance(spec, DictionaryObject):
                    found = _filespec_attachment(spec, None)
                    if found:
                        entry = by_name.setdefault(found[0], {"parts": found, "tree": False})
                        entry["af"] = True

        xmp: bytes | None = None
        meta = _resolve(root.get("/Metadata"))
        if meta is not None and hasattr(meta, "get_data"):
            xmp = meta.get_data()
    except MalformedPDFError as exc:
        exc.source = exc.source or source
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError,
            IndexError, RecursionError, OSError, AssertionError) as exc:
        raise MalformedPDFError(f"cannot read the PDF: {exc}", source=source) from None

    attachments = []
    for entry in by_name.values():
        name, payload, mime, relationship = entry["parts"]  # type: ignore[misc]
        attachments.append(
            Attachment(
                name=name,
                data=payload,
                mime_type=mime,
                af_relationship=relationship,
                in_af_array=bool(entry.get("af")),
                in_name_tree=bool(entry.get("tree")),
            )
        )
    return PdfParts(attachments=tuple(attachments), xmp=xmp, header_version=header)


def safe_output_path(directory: Path, name: str) -> Path:
    """Where to write an attachment called `name` inside `directory`, never outside it.

    Only the final path component of the (untrusted) name is kept; names that are empty or
    only dots after that are refused.
    """
    base = PurePosixPath(name.replace("\\", "/")).name
    if not base or set(base) <= {"."}:
        raise NoInvoiceInPDFError(f"attachment name {name[:100]!r} cannot be used as a file name")
    target = (directory / base).resolve()
    if target.parent != directory.resolve():
        raise NoInvoiceInPDFError(f"attachment name {name[:100]!r} points outside {directory}")
    return target
