"""The entry format of validate's disk caches (derived stylesheets, verdicts): one line of JSON
metadata carrying the sha256 of the body, then the body. An entry that does not check out is a
cache miss, never an error."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def read_entry(path: Path, sha_field: str) -> tuple[dict[str, Any], bytes] | None:
    """The metadata and body of the entry at `path`; None when it cannot be read, has no
    metadata line, or that line is not a JSON object whose `sha_field` is the body's sha256."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head, sep, body = raw.partition(b"\n")
    if not sep:
        return None
    try:
        meta = json.loads(head)
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get(sha_field) != hashlib.sha256(body).hexdigest():
        return None
    return meta, body
