"""Step 1: a source read, detected, validated and made into the bytes to upload."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...detection import Document, detect_bytes
from ...errors import FacturflowError, InputError, InputTooLargeError
from ...xmlsafe import DEFAULT_LIMITS, Limits
from ..fields import document_fields
from ..outbox import sha256
from .lookup import content_of
from .options import UploadFormat


@dataclass(frozen=True)
class Prepared:
    """A validated input and the exact bytes to upload for it."""

    path: str
    source_sha: str
    file_name: str
    upload: bytes
    invoice_number: str | None
    buyer_siren: str | None
    content: dict[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """An input that will not be uploaded. `final` verdicts (unreadable, invalid) are remembered
    by source hash; others (a converter missing or failing) are tried again on the next run."""

    def __init__(self, reason: str, findings: Sequence[str] = (), *, final: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.findings = tuple(findings)
        self.final = final


def prepare(path: str, data: bytes, upload: UploadFormat, rules: str | None,
            limits: Limits = DEFAULT_LIMITS) -> Prepared:
    """Detect, validate (fatal finding => Rejected) and build the upload bytes of one input."""
    from ...validation import validate

    source_sha = sha256(data)
    try:
        document = detect_bytes(data, name=path, limits=limits)
    except InputTooLargeError as exc:
        # Over a limit the run was given, not a defect of the file: not remembered, so a run
        # with the limit raised (--max-size, --max-nodes) reads it.
        raise Rejected(f"unreadable: {exc.message}", final=False) from exc
    except InputError as exc:
        raise Rejected(f"unreadable: {exc.message}") from exc
    report = validate(document, rules, limits=limits)
    if not report.ok:
        fatal = [f"{f.rule}: {f.message}" for f in report.fatal]
        if report.error:
            fatal.insert(0, report.error)
        if not fatal:
            fatal = ["a required validation layer could not run"]
        raise Rejected(f"invalid: {len(fatal)} fatal finding(s), first: {fatal[0]}", fatal)
    fields = document_fields(document)
    stem = Path(path).stem or "invoice"
    if document.container == "pdf":
        # A Factur-X PDF goes as it is; with --upload xml, its embedded XML goes instead.
        body, name = (data, f"{stem}.pdf") if upload == "facturx" else (document.xml, f"{stem}.xml")
    elif upload == "xml":
        body, name = data, f"{stem}.xml"
    else:
        body, name = _to_facturx(document, limits), f"{stem}.pdf"
    return Prepared(path, source_sha, name, body, fields.get("number"), fields.get("buyer_siren"),
                    content_of(fields))


def _to_facturx(document: Document, limits: Limits) -> bytes:
    try:
        from ...conversion import convert
    except ImportError as exc:
        raise Rejected(
            "cannot make a Factur-X PDF: facturflow.convert is not available in this build "
            f"({exc}); use --upload xml to send the XML as it is", final=False
        ) from exc
    try:
        result = convert(document, to="facturx", limits=limits)
    except FacturflowError as exc:
        raise Rejected(f"conversion to Factur-X failed: {exc.message}", final=False) from exc
    except Exception as exc:  # a converter bug must reject this input, not crash the batch
        raise Rejected(
            f"conversion to Factur-X failed ({type(exc).__name__}: {exc}); "
            "use --upload xml to send the XML as it is", final=False
        ) from exc
    return result.data


def _read(path: Path, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The file's bytes, read no further than the size limit: a larger file is Rejected (not
    final: a run with --max-size raised reads it); OSError when it cannot be read."""
    with path.open("rb") as handle:
        data = handle.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            size = os.fstat(handle.fileno()).st_size
            found = f"{size} bytes" if size > limits.max_bytes else \
                f"more than {limits.max_bytes} bytes"
            error = limits.too_large("max_bytes", found,
                                     f"{found} exceeds the limit of {limits.max_bytes} bytes",
                                     str(path))
            raise Rejected(f"unreadable: {error.message}", final=False)
    return data
