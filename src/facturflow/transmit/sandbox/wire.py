"""What requests and answers are made of: error replies, credentials, ids, dates, multipart."""

from __future__ import annotations

import hmac
import os
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two credentials, whatever their characters.

    `hmac.compare_digest` refuses non-ASCII str (TypeError: a 500); header values arrive
    decoded as Latin-1 and form values as UTF-8, so compare their bytes instead.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


class _Reply(Exception):
    """Raised inside a handler to answer at once."""

    def __init__(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _fail(status: int, code: str, detail: str, pointer: str | None = None,
          parameter: str | None = None) -> _Reply:
    entry: dict[str, Any] = {"code": code, "detail": detail}
    if pointer or parameter:
        entry["source"] = {k: v for k, v in (("pointer", pointer), ("parameter", parameter)) if v}
    return _Reply(status, {"errors": [entry]})


def _uuid7() -> str:
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 64) & 0xFFF) << 64 | (0b10 << 62) | (
        rand & ((1 << 62) - 1)
    )
    return str(uuid.UUID(int=value))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _parse_time(value: str, parameter: str) -> datetime:
    """An ISO 8601 date-time (a date alone is its midnight UTC; no zone means UTC); a 422
    naming the parameter otherwise."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise _fail(422, "invalid_parameter", f"{parameter} must be an ISO 8601 date-time",
                    parameter=parameter) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _money(value: str | None, currency: str) -> tuple[dict[str, str] | None, int | None]:
    if value is None:
        return None, None
    try:
        cents = round(float(value) * 100)
    except ValueError:
        return None, None
    return {"value": f"{cents / 100:.2f}", "currency": currency}, cents


def _sniff(data: bytes) -> str | None:
    head = data.lstrip()[:8]
    if data.startswith(b"%PDF-") or head.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "application/xml"
    return None


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, bytes]]:
    """(field name, file name, bytes) of each part of a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match or not content_type.lower().startswith("multipart/form-data"):
        raise _fail(400, "invalid_body", "expected multipart/form-data")
    delimiter = b"\r\n--" + match.group(1).encode("latin-1")
    parts: list[tuple[str, str | None, bytes]] = []
    chunks = (b"\r\n" + body).split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise _fail(400, "invalid_body", "malformed multipart part")
        disposition = ""
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                disposition = line
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        parts.append((name.group(1) if name else "", filename.group(1) if filename else None, data))
    return parts
