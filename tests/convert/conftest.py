"""Shared inputs for the conversion tests: the project's own fixtures and a plain visual PDF."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfWriter

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "valid"
CII_EN16931 = FIXTURES / "fr-invoice-en16931.xml"
CII_CREDIT_NOTE = FIXTURES / "fr-creditnote-en16931.xml"
CII_EXTENDED_CTC_FR = FIXTURES / "fr-invoice-cii-extended-ctc-fr.xml"
UBL_EN16931 = FIXTURES / "fr-invoice-ubl-en16931.xml"
UBL_CREDIT_NOTE = FIXTURES / "fr-creditnote-ubl-en16931.xml"
UBL_EXTENDED_CTC_FR = FIXTURES / "fr-invoice-ubl-extended-ctc-fr.xml"
FACTURX_PDF = FIXTURES / "fr-invoice-en16931.pdf"

FIXED_TIME = datetime(2026, 3, 10, 9, 30, 0, tzinfo=UTC)


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


def qpdf_check(pdf: bytes, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `qpdf --check` (the test is skipped when qpdf is not installed)."""
    qpdf = shutil.which("qpdf")
    if qpdf is None:
        pytest.skip("qpdf is not installed (apt-get install qpdf)")
    path = tmp_path / "checked.pdf"
    path.write_bytes(pdf)
    return subprocess.run([qpdf, "--check", str(path)], capture_output=True, text=True,
                          check=False)


def bindings_available() -> bool:
    """True once facturflow.read and the CII/UBL writers exist (issue 3's model half)."""
    try:
        from facturflow.syntax import cii, ubl  # noqa: F401
    except ImportError:
        return False
    return True
