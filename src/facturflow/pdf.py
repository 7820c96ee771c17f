"""Read the parts of a PDF that matter for Factur-X: embedded files, their file specs, the XMP.

Only the catalogue is walked (never the page tree), every name tree and array walk is bounded,
each stream is decoded once under tightened pypdf limits (per file and in total), and whatever
pypdf raises becomes MalformedPDFError, so a hostile PDF costs bounded time and memory and gives
a documented error.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from pypdf import PdfReader, apply_configuration
from pypdf.errors import LimitReachedError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, PdfObject

from .errors import MalformedPDFError, NoInvoiceInPDFError
from .xmlsafe import clip

# The names a Factur-X / ZUGFeRD / XRechnung invoice XML may carry inside a PDF.
INVOICE_XML_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "ZUGFeRD-invoice.xml", "xrechnung.xml")
ORDER_X_NAMES = ("order-x.xml",)
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
# All embedded files together: bounds memory and time whatever the number of attachments.
MAX_TOTAL_ATTACHMENT_BYTES = 100 * 1024 * 1024
MAX_XMP_BYTES = 5 * 1024 * 1024
# Name-tree nodes and leaves, and /AF entries, walked at most.
_MAX_NODES = 10_000
# pypdf spends 40-90 µs per top-level object or cross-reference entry while opening a file (more
# when it rebuilds a broken table), so 100 MB of tiny objects would take minutes: count them first.
# Invoice PDFs hold a few hundred to a few thousand.
MAX_PDF_OBJECTS = 100_000
# Cross-reference and object streams decode under this limit (100,000 entries take about 0.5 MB).
MAX_STRUCTURE_BYTES = 1024 * 1024
_XREF_ENTRY_ENDS = (b" n \n", b" n \r", b" n\r\n")
# Each cross-reference section is parsed in full; an invoice has one, or a few after updates.
MAX_XREF_SECTIONS = 16
# A trailer's /Prev (an offset), whatever its letters' #xx escapes (PDF names may escape any
# character); an outline item's /Prev is an indirect reference ("12 0 R") and is not counted.
_PREV = re.compile(rb"/(?:P|#50)(?:r|#72)(?:e|#65)(?:v|#76)\s*\d+(?!\d|\s+\d+\s+R)",
                   re.IGNORECASE)

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
    output_intents: tuple[str, ...] = ()
    # Structural faults a strict reader finds (qpdf: a damaged cross-reference table it had to
    # rebuild, objects not where the table says); pypdf reads past them, PDF/A forbids them.
    structure_problems: tuple[str, ...] = ()

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
        names = clip(", ".join(a.name for a in self.attachments)) or "none"
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
                budget[0] -= 1
                if budget[0] < 0:
                    raise MalformedPDFError("the embedded-files name tree is too large")
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


@dataclass
class _Found:
    """An attachment seen in the name tree and/or /AF, before its stream is decoded."""

    name: str
    stream: PdfObject
    spec: DictionaryObject
    in_af: bool = False
    in_tree: bool = False


def _locate(spec: DictionaryObject, fallback_name: str | None) -> tuple[str, PdfObject] | None:
    name = _filespec_name(spec) or fallback_name
    ef = _resolve(spec.get("/EF"))
    if name is None or not isinstance(ef, DictionaryObject):
        return None
    stream = _resolve(ef.get("/F") or ef.get("/UF"))
    if stream is None or not hasattr(stream, "get_data"):
        return None
    return name, stream


class _Decoder:
    """Decodes embedded-file streams once each, under a per-file and a total budget."""

    def __init__(self) -> None:
        self.total = 0
        self.cache: dict[int, bytes] = {}

    def data(self, name: str, stream: PdfObject) -> bytes:
        key = id(stream)
        if key in self.cache:
            return self.cache[key]
        _settle_decoding_parameters(stream)
        with pypdf_limits(MAX_ATTACHMENT_BYTES):
            data: bytes = stream.get_data()  # type: ignore[attr-defined]
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise MalformedPDFError(
                f"embedded file {clip(name)!r} inflates to more than "
                f"{MAX_ATTACHMENT_BYTES} bytes"
            )
        self.total += len(data)
        if self.total > MAX_TOTAL_ATTACHMENT_BYTES:
            raise MalformedPDFError(
                f"the embedded files inflate to more than {MAX_TOTAL_ATTACHMENT_BYTES} bytes "
                "in total"
            )
        self.cache[key] = data
        return data


def _attachment(found: _Found, data: bytes) -> Attachment:
    stream = found.stream
    subtype = _resolve(stream.get("/Subtype")) if isinstance(stream, DictionaryObject) else None
    mime = str(subtype).lstrip("/").replace("#2F", "/") if subtype is not None else None
    rel = _resolve(found.spec.get("/AFRelationship"))
    relationship = str(rel).lstrip("/") if rel is not None else None
    return Attachment(
        name=found.name,
        data=data,
        mime_type=mime,
        af_relationship=relationship,
        in_af_array=found.in_af,
        in_name_tree=found.in_tree,
    )


def _collect(root: DictionaryObject) -> list[_Found]:
    """Every distinct (name, stream) pair of the EmbeddedFiles tree and the /AF array."""
    found: dict[tuple[str, int], _Found] = {}
    budget = [_MAX_NODES]

    def add(spec_value: PdfObject, fallback: str | None, *, af: bool) -> None:
        spec = _resolve(spec_value)
        if not isinstance(spec, DictionaryObject):
            return
        located = _locate(spec, fallback)
        if located is None:
            return
        name, stream = located
        entry = found.setdefault((name, id(stream)), _Found(name, stream, spec))
        if af:
            entry.in_af = True
        else:
            entry.in_tree = True

    names = _resolve(root.get("/Names"))
    if isinstance(names, DictionaryObject):
        for key, value in _name_tree_leaves(names.get("/EmbeddedFiles"), budget):
            add(value, key, af=False)
    af = _resolve(root.get("/AF"))
    if isinstance(af, ArrayObject):
        if len(af) > _MAX_NODES:
            raise MalformedPDFError("the /AF array is too large")
        for value in af:
            add(value, None, af=True)
    return list(found.values())


def _merge(found: list[_Found], decoder: _Decoder) -> list[Attachment]:
    """One Attachment per name; two different files under one invoice name are refused."""
    by_name: dict[str, Attachment] = {}
    for item in found:
        attachment = _attachment(item, decoder.data(item.name, item.stream))
        previous = by_name.get(item.name)
        if previous is None:
            by_name[item.name] = attachment
            continue
        if previous.data != attachment.data and item.name in INVOICE_XML_NAMES:
            raise NoInvoiceInPDFError(
                f"two different embedded files are both named {clip(item.name)!r}: "
                "cannot tell which one is the invoice"
            )
        by_name[item.name] = replace(
            previous,
            in_af_array=previous.in_af_array or attachment.in_af_array,
            in_name_tree=previous.in_name_tree or attachment.in_name_tree,
            mime_type=previous.mime_type or attachment.mime_type,
            af_relationship=previous.af_relationship or attachment.af_relationship,
        )
    return list(by_name.values())


def read_pdf(data: bytes, *, source: str | None = None) -> PdfParts:
    """Open a PDF and collect its attachments and XMP.

    Raises MalformedPDFError (unreadable, encrypted, too large once inflated) or
    NoInvoiceInPDFError (two different invoice files under one name); never anything else.
    """
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise MalformedPDFError("not a PDF (no %PDF- header)", source=source)
    header = data.lstrip()[5:8].decode("ascii", "replace")
    try:
        with open_untrusted(
            data, source, output_bytes=MAX_STRUCTURE_BYTES, encrypted="the PDF is encrypted"
        ) as reader:
            root = _resolve(reader.trailer.get("/Root"))
            if not isinstance(root, DictionaryObject):
                raise MalformedPDFError("the PDF has no document catalogue", source=source)
            attachments = _merge(_collect(root), _Decoder())
            xmp: bytes | None = None
            meta = _resolve(root.get("/Metadata"))
            if meta is not None and hasattr(meta, "get_data"):
                _settle_decoding_parameters(meta)
                with pypdf_limits(MAX_XMP_BYTES + 1):
                    xmp = meta.get_data()
                if len(xmp) > MAX_XMP_BYTES:
                    raise MalformedPDFError(
                        f"the XMP metadata inflates to more than {MAX_XMP_BYTES} bytes"
                    )
            intents = _output_intent_subtypes(root)
        problems = structure_problems(data)
    except (MalformedPDFError, NoInvoiceInPDFError) as exc:
        exc.source = exc.source or source
        raise
    except MemoryError:
        raise MalformedPDFError("the PDF needs too much memory to read", source=source) from None
    except Exception as exc:
        # pypdf parses hostile bytes: whatever it raises (its own errors, zlib, struct, type,
        # recursion or arithmetic errors) means this PDF cannot be read safely.
        raise MalformedPDFError(
            f"cannot read the PDF: {_pypdf_reason(exc)}", source=source
        ) from None
    return PdfParts(
        attachments=tuple(attachments),
        xmp=xmp,
        header_version=header,
        output_intents=intents,
        structure_problems=problems,
    )


def embedded_file(data: bytes, name: str, *, source: str | None = None) -> bytes:
    """The content of the file embedded under `name` (name tree or /AF), and nothing else.

    For reading again the invoice XML of a PDF that `read_pdf` (through detect) has already
    checked in full, e.g. for a report's key data: the same bounded opening (object count,
    encryption, pypdf limits) but no qpdf structure check, no XMP and no other attachment
    decoded. Never a substitute for `read_pdf` on a PDF not yet checked. Raises
    MalformedPDFError, or NoInvoiceInPDFError when no file has that name.
    """
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise MalformedPDFError("not a PDF (no %PDF- header)", source=source)
    try:
        with open_untrusted(
            data, source, output_bytes=MAX_STRUCTURE_BYTES, encrypted="the PDF is encrypted"
        ) as reader:
            root = _resolve(reader.trailer.get("/Root"))
            if not isinstance(root, DictionaryObject):
                raise MalformedPDFError("the PDF has no document catalogue", source=source)
            found = [item for item in _collect(root) if item.name == name]
            attachments = _merge(found, _Decoder())
    except (MalformedPDFError, NoInvoiceInPDFError) as exc:
        exc.source = exc.source or source
        raise
    except MemoryError:
        raise MalformedPDFError("the PDF needs too much memory to read", source=source) from None
    except Exception as exc:  # as in read_pdf: pypdf's errors on hostile bytes
        raise MalformedPDFError(
            f"cannot read the PDF: {_pypdf_reason(exc)}", source=source
        ) from None
    if not attachments:
        raise NoInvoiceInPDFError(f"no embedded file named {clip(name)!r}", source=source)
    return attachments[0].data


# At most this many of qpdf's messages are kept (a rebuilt table can give one per object).
MAX_STRUCTURE_PROBLEMS = 20
_QPDF_SOURCE = re.compile(r"^stream <[^>]*>:?\s*")


def structure_problems(data: bytes) -> tuple[str, ...]:
    """What qpdf, a strict reader, finds wrong with the file structure (empty when nothing).

    pypdf (which facturflow reads PDFs with) silently rebuilds a broken cross-reference table,
    even with strict=True; qpdf reports it, as `qpdf --check` does. The file is opened by qpdf
    (cross-reference table and trailer) and every object is resolved once (objects not at the
    offset the table gives, unreadable objects); streams are not decoded and the page tree is
    not walked, so the cost stays bounded by the object count `check_pdf_structure` has already
    limited (about 1 ms for an invoice PDF). Only called on a PDF pypdf could open.
    """
    import pikepdf  # only for PDFs: 80 ms an XML-only validation does not pay

    problems: list[str] = []
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            problems.extend(pdf.get_warnings())
            for _ in pdf.objects:  # resolves every object listed in the (rebuilt) table
                pass
            problems.extend(pdf.get_warnings())
    except pikepdf.PasswordError:
        return ()  # encrypted: refused by the caller already, nothing structural to add
    except Exception as exc:  # qpdf's errors on hostile bytes: the structure is unreadable
        problems.append(f"qpdf cannot open the file: {_QPDF_SOURCE.sub('', str(exc))}")
    cleaned = [clip(_QPDF_SOURCE.sub("", str(p))) for p in dict.fromkeys(problems)]
    if len(cleaned) > MAX_STRUCTURE_PROBLEMS:
        more = len(cleaned) - MAX_STRUCTURE_PROBLEMS
        cleaned = [*cleaned[:MAX_STRUCTURE_PROBLEMS], f"... and {more} more"]
    return tuple(cleaned)


def _output_intent_subtypes(root: DictionaryObject) -> tuple[str, ...]:
    """The /S of each output intent in the catalogue (PDF/A needs a GTS_PDFA1 one)."""
    intents = _resolve(root.get("/OutputIntents"))
    if not isinstance(intents, ArrayObject):
        return ()
    found = []
    for item in list(intents)[:64]:
        intent = _resolve(item)
        if isinstance(intent, DictionaryObject):
            subtype = _resolve(intent.get("/S"))
            found.append(str(subtype).lstrip("/") if subtype is not None else "")
    return tuple(found)


@contextmanager
def open_untrusted(
    data: bytes,
    source: str | None = None,
    *,
    output_bytes: int = MAX_ATTACHMENT_BYTES,
    encrypted: str | None = None,
) -> Iterator[PdfReader]:
    """A pypdf reader of an untrusted PDF, used inside pypdf's tightened limits: the object
    count checked before pypdf parses anything, an encrypted file refused with the message
    `encrypted` (when given), the cross-reference and object streams bounded. pypdf's own
    errors are the caller's to turn into MalformedPDFError."""
    check_pdf_structure(data, source)
    with pypdf_limits(output_bytes):
        reader = PdfReader(io.BytesIO(data), strict=False)
        if encrypted is not None and reader.is_encrypted:
            raise MalformedPDFError(encrypted, source=source)
        check_cross_reference(reader, source)
        yield reader


def check_pdf_structure(data: bytes, source: str | None = None) -> None:
    """Refuse, before pypdf sees it, a PDF with more objects than any invoice needs (the first
    check of `open_untrusted`)."""
    # Every object says "obj" twice ("N G obj" ... "endobj"); bytes.count is ~0.1 s per 100 MB.
    objects = data.count(b"obj") // 2
    entries = sum(data.count(end) for end in _XREF_ENTRY_ENDS)
    if max(objects, entries) > MAX_PDF_OBJECTS:
        raise MalformedPDFError(
            f"about {max(objects, entries)} objects exceed the limit of {MAX_PDF_OBJECTS} "
            "for an invoice PDF",
            source=source,
        )
    sections = len(_PREV.findall(data)) + 1
    if sections > MAX_XREF_SECTIONS:
        raise MalformedPDFError(
            f"{sections} cross-reference sections (incremental updates) exceed the limit of "
            f"{MAX_XREF_SECTIONS}",
            source=source,
        )


def _pypdf_reason(exc: Exception) -> str:
    if isinstance(exc, LimitReachedError):
        return f"a stream exceeds the decoding limits ({clip(exc)})"
    return clip(exc) or type(exc).__name__


def check_cross_reference(reader: PdfReader, source: str | None = None) -> None:
    """Refuse more cross-reference entries, or object-stream members, than an invoice needs.

    pypdf parses every member of an object stream when one of them is first resolved, at
    ~50 µs each: a 1 MB stream of tiny objects would cost seconds, 50 MB minutes.
    """
    found = len(reader.xref_objStm) + sum(len(v) for v in reader.xref.values())
    if found <= MAX_PDF_OBJECTS:  # else refused without resolving a container per entry
        members = 0
        for number in {stream for stream, _ in reader.xref_objStm.values()}:
            container = reader.get_object(number)
            count = container.get("/N") if isinstance(container, DictionaryObject) else None
            members += int(count) if isinstance(count, int) else 0
            if members > MAX_PDF_OBJECTS:
                break
        found = max(found, members)
    if found > MAX_PDF_OBJECTS:
        raise MalformedPDFError(
            f"about {found} objects exceed the limit of {MAX_PDF_OBJECTS} for an invoice PDF",
            source=source,
        )


def _settle_decoding_parameters(stream: PdfObject) -> None:
    """Resolve a stream's /Filter and /DecodeParms under the tight structural limits.

    pypdf caches what it resolved, so decoding the stream afterwards under the larger
    attachment limit cannot parse an object stream under that limit.
    """
    if not isinstance(stream, DictionaryObject):
        return
    for key in ("/Filter", "/DecodeParms", "/DP"):
        value = _resolve(stream.get(key))
        if isinstance(value, ArrayObject):
            for item in list(value)[:16]:
                _resolve(item)


def pypdf_limits(output_bytes: int = MAX_ATTACHMENT_BYTES) -> AbstractContextManager[object]:
    """pypdf's resource limits, tightened to what an invoice PDF needs, for this read only.

    Structure (cross-reference and object streams) is decoded under MAX_STRUCTURE_BYTES; only an
    embedded file's own data may inflate up to MAX_ATTACHMENT_BYTES.
    """
    return apply_configuration(
        zlib_maximum_output_length=output_bytes,
        lzw_maximum_output_length=output_bytes,
        run_length_maximum_output_length=output_bytes,
        array_based_stream_maximum_output_length=output_bytes,
        brotli_maximum_output_length=output_bytes,
        # Byte-by-byte recovery of a corrupt zlib stream costs seconds per megabyte.
        zlib_maximum_recovery_input_length=256 * 1024,
        # Never start an external decoder on hostile input.
        jbig2dec_binary=None,
    )


def safe_output_path(directory: str | os.PathLike[str], name: str) -> Path:
    """The path inside `directory` to write an attachment called `name` to, never outside it.

    Only the last component of `name` is kept (so `../../x.xml`, `/etc/x.xml` and
    `C:\\x\\y.xml` all become a file directly inside `directory`); control characters are
    dropped. Raises NoInvoiceInPDFError when nothing usable is left or the target is a symbolic
link.
    """
    base = Path(directory).resolve()
    leaf = re.split(r"[/\\]", name)[-1]
    leaf = "".join(c for c in leaf if c.isprintable()).strip().lstrip(".")
    if ":" in leaf:  # a Windows drive or alternate data stream
        leaf = leaf.rsplit(":", 1)[-1]
    if not leaf:
        raise NoInvoiceInPDFError(f"the attachment name {clip(name)!r} has no usable file name")
    target = base / leaf[:255]
    if target.is_symlink():
        raise NoInvoiceInPDFError(f"refusing to write through the symbolic link {clip(target)}")
    if target.resolve().parent != base:
        raise NoInvoiceInPDFError(f"refusing to write {clip(name)!r} outside {clip(base)}")
    return target
