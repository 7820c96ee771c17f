"""XSD layer: lxml schemas, each loaded once per process."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from lxml import etree

from ..artefacts import Artefact
from .report import Finding, Location

_LOCK = threading.Lock()
_MAX_FINDINGS = 200


class _LocalOnlyResolver(etree.Resolver):
    """Schema imports may only reach files below the schema's own artefact folder."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> None:
        if system_url and system_url.startswith(("http:", "https:", "ftp:")):
            raise etree.XMLSchemaParseError(f"network access refused: {system_url}")
        return None


@lru_cache(maxsize=32)
def load_schema(path: Path) -> etree.XMLSchema:
    """Parse and compile an XSD once; later calls return the same schema."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_LocalOnlyResolver(path.parent))
    tree = etree.parse(str(path), parser)
    return etree.XMLSchema(tree)


def check(tree: etree._ElementTree, artefact: Artefact) -> list[Finding]:
    """Validate a parsed document against an XSD; one finding per schema error."""
    with _LOCK:  # an lxml schema object is not safe to share between threads
        schema = load_schema(artefact.path)
        valid = schema.validate(tree)
        errors = list(schema.error_log) if not valid else []
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
