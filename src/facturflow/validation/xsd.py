"""XSD layer: lxml schemas, each loaded once per process."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from lxml import etree

from ..artefacts import Artefact
from .report import Finding, Location

_LOCK = threading.Lock()
_MAX_FINDINGS = 200


@lru_cache(maxsize=32)
def load_schema(path: Path) -> etree.XMLSchema:
    """Parse and compile an XSD once; later calls return the same schema."""
    # Official schemas only import files beside them; the network stays closed.
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    tree = etree.parse(str(path), parser)
    return etree.XMLSchema(tree)


def check(tree: etree._ElementTree, artefact: Artefact) -> list[Finding]:
    """Validate a parsed document against an XSD; one finding per schema error."""
    with _LOCK:  # an lxml schema object is not safe to share between threads
        schema = load_schema(artefact.path)
        valid = schema.validate(tree)
        errors: list[Any] = [] if valid else [*cast(Iterable[Any], schema.error_log)]
    findings = []
    for error in errors[:_MAX_FINDINGS]:
        findings.append(
            Finding(
                layer="xsd",
                rule="XSD",
                severity="fatal",
                message=error.message,
                location=Location(xpath=error.path or None, line=error.line or None),
                artefact=artefact.name,
            )
        )
    if len(errors) > _MAX_FINDINGS:
        findings.append(
            Finding(
                layer="xsd",
                rule="XSD",
                severity="fatal",
                message=f"{len(errors) - _MAX_FINDINGS} more schema errors not listed",
                artefact=artefact.name,
            )
        )
    return findings
