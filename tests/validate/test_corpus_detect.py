"""Corpus conformance: detection agrees with MANIFEST.tsv; must-fail files never pass."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from facturflow import detect
from facturflow.errors import InputError

# MANIFEST format -> (container, syntax); 'other' states no syntax we can compare.
FORMATS = {
    "cii": ("xml", "cii"),
    "ubl-invoice": ("xml", "ubl-invoice"),
    "ubl-creditnote": ("xml", "ubl-creditnote"),
    "facturx-pdf": ("pdf", "cii"),
    "zugferd1-pdf": ("pdf", "zugferd1"),
}


def corpus_rows(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "MANIFEST.tsv").open(encoding="utf-8", newline="") as stream:
        return [
            r for r in csv.DictReader(stream, delimiter="\t") if not r["path"].startswith("rules/")
        ]


@pytest.mark.corpus
def test_detection_matches_the_manifest(corpus: Path) -> None:
    mismatches = []
    for row in corpus_rows(corpus):
        path = corpus / row["path"]
        try:
            document = detect(path)
        except InputError as exc:
            # Only files the corpus itself calls invalid may be unreadable.
            if row["expected"] != "invalid" and row["format"] in FORMATS:
                mismatches.append(f"{row['path']}: unreadable ({exc.message})")
            continue
        if row["format"] in FORMATS:
            got = (document.container, document.syntax, document.profile)
            want = (*FORMATS[row["format"]], row["profile"])
            if got != want:
                mismatches.append(f"{row['path']}: detected {got}, manifest says {want}")
        elif row["path"].endswith(".xml") and row["profile"] != "unknown":
            assert document.profile == row["profile"], row["path"]
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.corpus
def test_every_must_fail_file_is_rejected_or_invalid(corpus: Path) -> None:
    from facturflow import validate

    accepted = []
    for row in corpus_rows(corpus):
        if not row["path"].startswith("invalid/"):
            continue
        report = validate(corpus / row["path"])
        if report.ok:
            accepted.append(row["path"])
    # Defects no XML/XMP check can see (PDF/A font subsets, an undocumented ZUGFeRD 1 defect).
    known = {
        # CIDSet of an embedded font: needs a full PDF/A validator.
        "invalid/mustang-invalidPDF.pdf",
        "invalid/mustang-invalidV1addition.xml",  # the source states no reason; passes XSD
        "invalid/caslim-PDF-007.pdf",  # no output intent: reported as FX-PDF-INTENT warning
    }
    assert set(accepted) <= known, sorted(set(accepted) - known)
