"""The Java reference's compatible BR-FR UBL copy gives the official file's results.

Benchmark-only. For every corpus UBL document the default rules send to
`BR-FR-Flux2-Schematron-UBL.xslt`, compares the SVRL of Java Saxon-HE 9.9 running the copy made
by benchmarks/java_compat.py with that of saxonche (what facturflow runs) running the unmodified
official file: the failed asserts (count, ids in order, and their full signature: id, flag,
location, test, text), the successful reports and the number of fired rules.

    python -m benchmarks.equivalence [--corpus DIR] [--all]   (--all: also invalid/ and rules/)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from .java_compat import compatible_copy, rewrite_stylesheet
from .reference import ReferenceUnavailable, harness_command
from .run import corpus_root, plan_documents

BR_FR_UBL = "BR-FR-Flux2-Schematron-UBL.xslt"
SVRL = "{http://purl.oclc.org/dsdl/svrl}"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"


@dataclass(frozen=True)
class Report:
    """What one SVRL report says, for comparison."""

    fired: tuple[str | None, ...]  # the context of each fired rule, in order
    failed: tuple[tuple[str | None, ...], ...]  # (id, flag, location, test, text) in order
    reports: tuple[tuple[str | None, ...], ...]  # successful reports, the same fields

    @property
    def failed_ids(self) -> tuple[str | None, ...]:
        return tuple(f[0] for f in self.failed)


def parse_svrl(svrl: bytes) -> Report:
    root = etree.fromstring(svrl, etree.XMLParser(huge_tree=True))
    fired: list[str | None] = []
    failed: list[tuple[str | None, ...]] = []
    reports: list[tuple[str | None, ...]] = []
    for el in root.iter():
        if el.tag == f"{SVRL}fired-rule":
            fired.append(el.get("context"))
        elif el.tag in (f"{SVRL}failed-assert", f"{SVRL}successful-report"):
            text = " ".join("".join(str(t) for t in el.itertext()).split())
            row = (el.get("id"), el.get("flag"), el.get("location"), el.get("test"), text)
            (failed if el.tag == f"{SVRL}failed-assert" else reports).append(row)
    return Report(tuple(fired), tuple(failed), tuple(reports))


@dataclass
class Outcome:
    official: Path
    copy: Path
    saxon_java: str
    documents: list[Path] = field(default_factory=list)  # corpus documents
    probes: list[Path] = field(default_factory=list)  # variants made to fire the rewritten rules
    rewritten_fired: dict[str, int] = field(default_factory=dict)  # documents where one fired
    failed_asserts: int = 0  # over all documents (official file, saxonche)
    same_count: int = 0  # documents with the same number of failed asserts
    same_ids: int = 0  # ... with the same failed-assert ids in the same order
    same_everything: int = 0  # ... with identical reports (every field, fired rules)
    problems: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        n = len(self.documents) + len(self.probes)
        return n > 0 and self.same_count == self.same_ids == self.same_everything == n

    def summary(self) -> str:
        n = len(self.documents) + len(self.probes)
        fired = ", ".join(f"{k} {v}" for k, v in self.rewritten_fired.items())
        return (f"{len(self.documents)} corpus UBL documents + {len(self.probes)} probes (corpus "
                f"documents edited so that the rewritten rules fire; documents on which one "
                f"fired: {fired}), {self.failed_asserts} failed asserts in all (saxonche, "
                f"official {self.official.name}); Java {self.saxon_java} on the compatible copy: "
                f"same count {self.same_count}/{n}, same ids {self.same_ids}/{n}, identical SVRL "
                f"(ids, locations, tests, texts, fired rules) {self.same_everything}/{n}")


def br_fr_ubl_documents(corpus: Path, everything: bool = False) -> list[tuple[Path, Path]]:
    """(document, official BR-FR UBL stylesheet) for the corpus documents the default rules send
    to it: those of the batch benchmark (ubl/), and with `everything` invalid/ and rules/ too."""
    folders = ("ubl", "invalid", "rules") if everything else ("ubl",)
    paths = sorted(p for f in folders for p in (corpus / f).glob("*.xml"))
    out = []
    for doc in plan_documents(paths):
        for sheet in doc.stylesheets:
            if sheet.name == BR_FR_UBL:
                out.append((doc.path, sheet))
    return out


def probe_documents(docs: Sequence[Path], workdir: Path) -> list[Path]:
    """Variants of the first corpus Invoice and CreditNote (with a ProfileID) that reach the
    templates the compatible copy rewrites (BR-FR-MV-14 and BR-FR-BD-14: the multi-vendor and
    sub-line frameworks M8 and S9, a corrective type code of either rule or neither, a line
    BillingReference to the invoice itself with the status GROUP, with or without a second
    reference to an earlier invoice): the corpus alone never fires them."""
    bases: dict[str, etree._ElementTree] = {}
    for doc in docs:
        tree = etree.parse(str(doc))
        kind = etree.QName(tree.getroot()).localname
        if kind not in bases and tree.getroot().find(f"{{{CBC}}}ProfileID") is not None:
            bases[kind] = tree
    codes = {"Invoice": ("384", "471", "380"), "CreditNote": ("381", "261", "380")}
    out = []
    for kind, base in sorted(bases.items()):
        for profile in ("M8", "S9"):
            for code in codes[kind]:
                for earlier in (False, True):
                    tree = etree.ElementTree(etree.fromstring(etree.tostring(base)))
                    root = tree.getroot()
                    _set(root, "ProfileID", profile)
                    _set(root, f"{kind}TypeCode", code)
                    own = root.findtext(f"{{{CBC}}}ID") or ""
                    lines = root.findall(f"{{{CAC}}}{kind}Line")
                    _billing_reference(lines[0], own, "GROUP", None)
                    if earlier:
                        _billing_reference(lines[0], "EARLIER-1", None, "2025-01-01")
                    _billing_reference(lines[-1], own, "GROUP", "1")  # has a line: no match
                    path = workdir / f"probe-{kind}-{profile}-{code}-{int(earlier)}.xml"
                    tree.write(str(path), xml_declaration=True, encoding="UTF-8")
                    out.append(path)
    return out


def _set(root: etree._Element, name: str, text: str) -> None:
    el = root.find(f"{{{CBC}}}{name}")
    if el is None:
        raise ValueError(f"no cbc:{name} in the probe's base document")
    el.text = text


def _billing_reference(line: etree._Element, target: str, status: str | None,
                       line_id: str | None) -> None:
    ref = etree.SubElement(line, f"{{{CAC}}}BillingReference")
    doc_ref = etree.SubElement(ref, f"{{{CAC}}}InvoiceDocumentReference")
    etree.SubElement(doc_ref, f"{{{CBC}}}ID").text = target
    if status is None:
        etree.SubElement(doc_ref, f"{{{CBC}}}IssueDate").text = "2025-01-01"
    else:
        etree.SubElement(doc_ref, f"{{{CBC}}}DocumentStatusCode").text = status
    if line_id is not None:
        ref_line = etree.SubElement(ref, f"{{{CAC}}}BillingReferenceLine")
        etree.SubElement(ref_line, f"{{{CBC}}}ID").text = line_id


def java_reports(docs: Sequence[Path], stylesheet: Path, workdir: Path
                 ) -> tuple[str, dict[str, str], list[bytes | str]]:
    """Java's SVRL of `stylesheet` on each document (bytes, or the error message)."""
    outdir = workdir / "java-svrl"
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = harness_command([(d, [stylesheet]) for d in docs], workdir / "java-svrl-jobs.tsv", "2g",
                          ["svrl", str(outdir)])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReferenceUnavailable(f"java harness failed (exit {proc.returncode}): "
                                   f"{proc.stderr[-800:]}")
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    results: list[bytes | str] = []
    for i in range(len(docs)):
        svrl = outdir / f"{i}-0.svrl"
        results.append(svrl.read_bytes() if svrl.exists()
                       else (outdir / f"{i}-0.error").read_text(encoding="utf-8"))
    return str(summary["saxon"]), dict(summary["compile_errors"]), results


def saxonche_reports(docs: Sequence[Path], stylesheet: Path) -> list[bytes | str]:
    """saxonche's SVRL of the unmodified `stylesheet` on each document (or the error)."""
    from saxonche import PySaxonProcessor

    processor = PySaxonProcessor(license=False)
    executable = processor.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(stylesheet))
    out: list[bytes | str] = []
    for doc in docs:
        try:
            node = processor.parse_xml(xml_file_name=str(doc))
            out.append(executable.transform_to_string(xdm_node=node).encode("utf-8"))
        except Exception as exc:  # compared with Java's error, if any
            out.append(re.sub(r"\s+", " ", str(exc))[:300])
    return out


def check(corpus: Path, workdir: Path, everything: bool = False, probes: bool = True
          ) -> Outcome:
    """Compare Java on the compatible copy with saxonche on the official BR-FR UBL file, on the
    corpus documents and (`probes`) on variants made to fire the rewritten templates."""
    pairs = br_fr_ubl_documents(corpus, everything)
    if not pairs:
        raise ValueError(f"no document of {corpus} goes to {BR_FR_UBL}")
    officials = {sheet for _, sheet in pairs}
    if len(officials) != 1:
        raise ValueError(f"several {BR_FR_UBL}: {sorted(officials)}")
    official = officials.pop()
    copy = compatible_copy(official)
    rewritten = {pattern for _, pattern, _ in rewrite_stylesheet(official.read_bytes())[1]}
    corpus_docs = [d for d, _ in pairs]
    probe_docs = probe_documents(corpus_docs, workdir) if probes else []
    docs = corpus_docs + probe_docs
    saxon, compile_errors, java = java_reports(docs, copy, workdir)
    if compile_errors:
        raise AssertionError(f"Saxon-HE {saxon} cannot compile the copy: {compile_errors}")
    ours = saxonche_reports(docs, official)
    outcome = Outcome(official, copy, saxon, corpus_docs, probe_docs,
                      {"corpus": 0, "probes": 0})
    for doc, want_raw, got_raw in zip(docs, ours, java, strict=True):
        if isinstance(want_raw, str) or isinstance(got_raw, str):
            outcome.problems.append(f"{doc.name}: saxonche {want_raw!r:.200}, Java "
                                    f"{got_raw!r:.200}")
            continue
        want, got = parse_svrl(want_raw), parse_svrl(got_raw)
        if rewritten.intersection(want.fired):
            outcome.rewritten_fired["probes" if doc in probe_docs else "corpus"] += 1
        outcome.failed_asserts += len(want.failed)
        outcome.same_count += len(want.failed) == len(got.failed)
        outcome.same_ids += want.failed_ids == got.failed_ids
        if want == got:
            outcome.same_everything += 1
        else:
            outcome.problems.append(
                f"{doc.name}: failed asserts {len(want.failed)} (saxonche) / {len(got.failed)} "
                f"(Java), ids {want.failed_ids} / {got.failed_ids}; first difference: "
                f"{_first_difference(want, got)}")
    return outcome


def _first_difference(want: Report, got: Report) -> str:
    if want.fired != got.fired:
        return f"fired rules {len(want.fired)} / {len(got.fired)}"
    for kind, a, b in (("failed", want.failed, got.failed), ("report", want.reports, got.reports)):
        for x, y in zip(a, b, strict=False):
            if x != y:
                return f"{kind} {x!r:.300} / {y!r:.300}"
        if len(a) != len(b):
            return f"{kind} count {len(a)} / {len(b)}"
    return "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--all", action="store_true", help="also the invalid/ and rules/ folders")
    args = parser.parse_args(argv)
    corpus = corpus_root(args.corpus)
    if corpus is None:
        parser.error("no corpus (--corpus, FACTURFLOW_CORPUS or ../shared/corpus)")
    with tempfile.TemporaryDirectory(prefix="facturflow-equiv-") as tmp:
        outcome = check(corpus, Path(tmp), everything=args.all)
    print(outcome.summary())
    print(f"copy: {outcome.copy}")
    for problem in outcome.problems:
        print(f"  {problem}")
    return 0 if outcome.equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
