"""Compile the vendored Schematron sources (XRechnung, Peppol BIS) to XSLT with SchXslt.

XRechnung (KoSIT) and Peppol BIS Billing 3.0 publish their rules as ISO Schematron only. The
compiled stylesheets are vendored next to their sources (`schematron/xrechnung/`,
`schematron/peppol-bis-3/`) and pinned in `schematron/manifest.json` with the sha256 of every
source file they were compiled from; this module is how they were made:

    python -m facturflow.compile_schematron           # rewrite the compiled files
    python -m facturflow.compile_schematron --check   # exit 1 when a compiled file differs

The compiler is SchXslt (vendored unmodified in `schematron/schxslt/`, its XSLT 2.0 pipeline
`pipeline-for-svrl.xsl`: include, expand abstract patterns, compile), run by saxonche in this
process with the same engine (local files only) the validation uses. The output is made
reproducible: SchXslt stamps the compile time into the stylesheet's metadata (`dct:created`,
twice), replaced by a fixed text; it names patterns with generate-id() values that count the
documents the Saxon process has parsed before, renumbered from 1; and each start tag is put on
one line (Saxon wraps long ones, and their length depends on those ids). So compiling the same
sources with the same SchXslt and Saxon gives the same bytes, whatever ran before
(`tests/conformance/test_vendored_rulesets.py` recompiles and compares). The Saxon major.minor
version SchXslt records stays in the file: another Saxon may compile differently, and the test
says so.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .artefacts import data_dir, sha256_file

PIPELINE = "schematron/schxslt/xslt-2.0/pipeline-for-svrl.xsl"
SCHXSLT = "SchXslt (schxslt/schxslt@84ee9dd8, XSLT 2.0 pipeline-for-svrl.xsl)"
_STAMP = re.compile(rb"<dct:created>[0-9][0-9T:.Z+-]*</dct:created>")
# generate-id() values (SchXslt names patterns and templates with them): d<document number>
# <node kind><node number>. The document number counts the documents this Saxon process has
# built so far, so it depends on what ran before; it is renumbered from 1.
_GENERATED_ID = re.compile(rb"\bd([0-9]+)([a-z][0-9]+)\b")
_FIXED_STAMP = b"<dct:created>not recorded (reproducible build)</dct:created>"


@dataclass(frozen=True)
class Compilation:
    """One compiled stylesheet: the Schematron it is made from, relative to the data folder."""

    source: str
    output: str
    # Every file the source includes (its own path first): all of them are pinned.
    inputs: tuple[str, ...]


COMPILATIONS: tuple[Compilation, ...] = (
    Compilation(
        "schematron/xrechnung/src/cii/XRechnung-CII-validation.sch",
        "schematron/xrechnung/XRechnung-CII-validation.xslt",
        (
            "schematron/xrechnung/src/cii/XRechnung-CII-validation.sch",
            "schematron/xrechnung/src/common.sch",
        ),
    ),
    Compilation(
        "schematron/xrechnung/src/ubl/XRechnung-UBL-validation.sch",
        "schematron/xrechnung/XRechnung-UBL-validation.xslt",
        (
            "schematron/xrechnung/src/ubl/XRechnung-UBL-validation.sch",
            "schematron/xrechnung/src/common.sch",
        ),
    ),
    Compilation(
        "schematron/peppol-bis-3/src/PEPPOL-EN16931-UBL.sch",
        "schematron/peppol-bis-3/PEPPOL-EN16931-UBL.xslt",
        ("schematron/peppol-bis-3/src/PEPPOL-EN16931-UBL.sch",),
    ),
    Compilation(
        "schematron/peppol-bis-3/src/PEPPOL-EN16931-CII.sch",
        "schematron/peppol-bis-3/PEPPOL-EN16931-CII.xslt",
        ("schematron/peppol-bis-3/src/PEPPOL-EN16931-CII.sch",),
    ),
)


def compile_one(compilation: Compilation, root: Path | None = None) -> bytes:
    """The compiled XSLT of one vendored Schematron source, as bytes (reproducible)."""
    from .validation import schematron

    base = root or data_dir()
    with schematron._lock:  # the validation's own engine: one Saxon per process
        engine = schematron._get_engine()
        compiler = engine.xslt.compile_stylesheet(stylesheet_file=str(base / PIPELINE))
        if compiler is None:
            raise RuntimeError(f"cannot compile {PIPELINE}")
        # Parsed from its path, so that SchXslt resolves <include href="../common.sch"/>.
        source = engine.processor.parse_xml(xml_file_name=str(base / compilation.source))
        text = compiler.transform_to_string(xdm_node=source)
    if not text:
        raise RuntimeError(f"SchXslt produced nothing for {compilation.source}")
    for path in compilation.inputs:
        if _GENERATED_ID.search((base / path).read_bytes()):
            # Renumbering would also change the rules' own text: refuse rather than guess.
            raise RuntimeError(f"{path} contains text shaped like a generated id (d1e2)")
    return _reproducible(text.encode("utf-8"))


# A start tag (attribute values never hold a raw '<' or '>': Saxon escapes them).
_TAG = re.compile(rb"<[^<>!?][^<>]*>")
_WRAP = re.compile(rb"\n\s+")


def _unwrap(match: re.Match[bytes]) -> bytes:
    return _WRAP.sub(b" ", match[0])


def _reproducible(xslt: bytes) -> bytes:
    # Saxon's indenter puts the attributes of a long start tag on lines of their own, and how
    # long a tag is depends on the generated ids in it, which depend on what ran before: one
    # line per tag, whatever its length. (A raw newline cannot occur inside a start tag but
    # between attributes: in attribute values it is written as &#xA;.)
    stamped = _TAG.sub(_unwrap, _STAMP.sub(_FIXED_STAMP, xslt))
    numbers: dict[bytes, bytes] = {}

    def renumber(match: re.Match[bytes]) -> bytes:
        number = numbers.setdefault(match[1], str(len(numbers) + 1).encode())
        return b"d" + number + match[2]

    stable = _GENERATED_ID.sub(renumber, stamped)
    return stable if stable.endswith(b"\n") else stable + b"\n"


def source_hashes(compilation: Compilation, root: Path | None = None) -> dict[str, str]:
    base = root or data_dir()
    return {path: sha256_file(base / path) for path in compilation.inputs}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    base = data_dir()
    stale = []
    for compilation in COMPILATIONS:
        compiled = compile_one(compilation, base)
        target = base / compilation.output
        if check:
            if not target.is_file() or target.read_bytes() != compiled:
                stale.append(compilation.output)
            continue
        target.write_bytes(compiled)
        print(f"compiled {compilation.source} -> {compilation.output} ({len(compiled)} bytes)")
    if check:
        for output in stale:
            print(f"{output}: differs from a fresh compilation of its source", file=sys.stderr)
        if not stale:
            print("compiled stylesheets match their sources")
        return 1 if stale else 0
    print("now run `python -m facturflow.artefacts --write` to pin them in the manifest")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
