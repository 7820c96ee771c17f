"""Paths and helpers shared by the conversion tests (imported by name; conftest holds fixtures)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "valid"
CII_EN16931 = FIXTURES / "fr-invoice-en16931.xml"
CII_CREDIT_NOTE = FIXTURES / "fr-creditnote-en16931.xml"
CII_EXTENDED_CTC_FR = FIXTURES / "fr-invoice-cii-extended-ctc-fr.xml"
UBL_EN16931 = FIXTURES / "fr-invoice-ubl-en16931.xml"
UBL_CREDIT_NOTE = FIXTURES / "fr-creditnote-ubl-en16931.xml"
UBL_EXTENDED_CTC_FR = FIXTURES / "fr-invoice-ubl-extended-ctc-fr.xml"
FACTURX_PDF = FIXTURES / "fr-invoice-en16931.pdf"
INVALID = REPO / "fixtures" / "invalid"

FIXED_TIME = datetime(2026, 3, 10, 9, 30, 0, tzinfo=UTC)


def qpdf_check(pdf: bytes, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `qpdf --check` (the test is skipped when qpdf is not installed)."""
    qpdf = shutil.which("qpdf")
    if qpdf is None:
        pytest.skip("qpdf is not installed (apt-get install qpdf)")
    path = tmp_path / "checked.pdf"
    path.write_bytes(pdf)
    return subprocess.run([qpdf, "--check", str(path)], capture_output=True, text=True,
                          check=False)


def corpus_dir() -> Path:
    """The shared corpus: $FACTURFLOW_CORPUS, else ../shared/corpus beside the checkout."""
    env = os.environ.get("FACTURFLOW_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def corpus_manifest() -> list[dict[str, str]]:
    """MANIFEST.tsv rows (empty when the corpus is absent)."""
    manifest = corpus_dir() / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))
