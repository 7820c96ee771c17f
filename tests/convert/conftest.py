"""Fixtures of the conversion tests (paths and helpers live in convert_helpers.py)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from pypdf import PdfWriter

sys.path.insert(0, str(Path(__file__).parent))

from convert_helpers import CII_EN16931


@pytest.fixture(scope="session")
def plain_pdf() -> bytes:
    """A one-page PDF that is not PDF/A: no XMP, no output intent, no attachment."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="session")
def cii_bytes() -> bytes:
    return CII_EN16931.read_bytes()
