"""Request bodies: the invoice's content type, and the size limit enforced while reading.

The limit is the CLI's (xmlsafe.Limits.max_bytes, `--max-size`); a body over it is refused with
413 from its Content-Length before any of it is read, or, without one (chunked), as soon as the
bytes received pass it: a client cannot make the service buffer more than the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.requests import Request

from .. import exitcodes

# What an invoice may be sent as; the body is sniffed in any case (XML or PDF), so the type only
# rules out what is certainly not an invoice (a form, JSON, multipart).
INVOICE_TYPES = frozenset(
    {"application/xml", "text/xml", "application/pdf", "application/octet-stream"}
)


@dataclass
class ApiError(Exception):
    """An answer other than success: the status and the JSON error body."""

    status: int
    error: str
    message: str
    exit_code: int = exitcodes.USAGE
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        return {"error": self.error, "message": self.message, "exit_code": self.exit_code}


def check_content_type(request: Request) -> None:
    """Refuse (415) a body that is declared as something other than an invoice."""
    declared = request.headers.get("content-type")
    if declared is None:
        return  # sniffed: XML or PDF
    media = declared.split(";")[0].strip().lower()
    if media in INVOICE_TYPES or (media.startswith("application/") and media.endswith("+xml")):
        return
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"Content-Type {media!r} is not an invoice; send the invoice's bytes as "
        "application/xml or application/pdf",
    )


def too_large(message: str) -> ApiError:
    return ApiError(413, "InputTooLargeError", message)


async def read_body(request: Request, max_bytes: int, seconds: float | None = None) -> bytes:
    """The request body, at most `max_bytes` of it; 413 (ApiError) beyond; 408 when it has
    not all arrived within `seconds` (a client trickling its body holds a place among the
    bodies the service keeps at once: never for longer than that)."""
    if seconds is None:
        return await _read_body(request, max_bytes)
    try:
        async with asyncio.timeout(seconds):
            return await _read_body(request, max_bytes)
    except TimeoutError:
        raise ApiError(
            408, "RequestTimeout", f"the request body did not arrive within {seconds:g} s",
            exitcodes.USAGE, {"Connection": "close"},
        ) from None


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            message = f"Content-Length {declared!r} is not a number"
            raise ApiError(400, "BadRequest", message) from None
        if length > max_bytes:
            # The library's wording for a file over the limit (detect.read_source).
            raise too_large(f"{length} bytes exceeds the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise too_large(f"more than {max_bytes} bytes (the size limit)")
        chunks.append(chunk)
    return b"".join(chunks)
