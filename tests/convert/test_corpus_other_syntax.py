"""Every valid EN 16931 UBL and CII invoice of the shared corpus, converted to the other syntax.

Acceptance (issue 15, part B), on the product path `convert(..., to="cii"|"ubl")` with the
default, scope-aware rules: UBL -> CII and CII -> UBL for each valid corpus instance whose
profile is EN 16931 or one of its CIUS (XRechnung, Peppol BIS, EXTENDED-CTC-FR); MINIMUM,
BASIC WL and EXTENDED are no EN 16931 invoices (see the README). Each conversion must

- lose no business term (the model read back equals the source's, in canonical form), and
- have no fatal rule family its source does not have,

unless the lists below give the exact reason (a term or code the target syntax, or its rules,
cannot carry). The Factur-X direction is tests/convert/test_corpus_facturx.py. Listed entries
that no longer fire fail the test too: the lists can only shrink. The test prints the fidelity
table per direction; run with `-s` (the README quotes it).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import pytest
from convert_helpers import corpus_dir, corpus_manifest
from test_corpus_facturx import ALLOWED_DROPPED as FACTURX_DROPPED
from test_corpus_facturx import ALLOWED_NEW_FATAL as FACTURX_NEW_FATAL

from model.fidelity import rule_family

EN16931_PROFILES = frozenset({"en16931", "xrechnung", "peppol", "extended-ctc-fr"})
TARGET = {"ubl-invoice": "cii", "ubl-creditnote": "cii", "cii": "ubl"}

_PEPPOL_IN_CII = ("cen-FT_G2G_TD01_con_Allegato_Bonifico_e_Split_Payment.xml",
                  "cen-testfiles-CreditNote-Max_content.xml",
                  "cen-testfiles-Invoice-Max_content.xml",
                  "peppol-GR-base-example-TaxRepresentative.xml",
                  "oracles-brfr-ubl-synth-B1-pass.xml")
_SCHEME_LESS = ("a party identifier without a scheme (CII ram:ID, here BT-29 'PRIVATE_123') has no "
                "UBL form the French rules accept: BR-FR-CO-10 asks a schemeID on every UBL "
                "cac:PartyIdentification/cbc:ID, while the CII rules check only ram:GlobalID; the "
                "official AFNOR UBL twin of this invoice fails the same rule")
_EAS_9958 = ("the buyer's electronic address scheme (BT-49-1) is EAS '9958' (Leitweg-ID), which "
             "the Factur-X CII Schematron accepts and the CEN 1.3.16 UBL code list does not")
_BT83 = ("remittance information (BT-83) without a payment means (BT-81): UBL carries BT-83 only "
         "as cac:PaymentMeans/cbc:PaymentID, and cac:PaymentMeans requires a PaymentMeansCode "
         "(UBL schema, BR-49) the source does not give")

# New fatal families inherent to the source, per corpus file: rule family -> why.
ALLOWED_NEW_FATAL: dict[str, dict[str, str]] = {
    **{f"ubl/{name}": FACTURX_NEW_FATAL[f"ubl/{name}"] for name in _PEPPOL_IN_CII},
    "cii/afnor-z12v12-F202500001_INV_20250201_CII_Commentee_EN16931.xml": {
        "BR-FR-CO-10": _SCHEME_LESS,
    },
    "cii/zfcorpus-xr-EN16931_ElektronischeAdresse.cii.xml": {"BR-CL-25": _EAS_9958},
    "cii/zfcorpus-xr-EN16931_RechnungsUebertragung.cii.xml": {"BR-CL-25": _EAS_9958},
}
# Terms the target syntax cannot carry, per corpus file (convert() refuses them unless lossy).
ALLOWED_DROPPED: dict[str, dict[str, str]] = {
    "cii/kosit-01.21a-INVOICE_uncefact.xml": {
        "EXT-FR-FE-178": FACTURX_DROPPED["cii/kosit-01.21a-INVOICE_uncefact.xml"]["EXT-FR-FE-178"]
        .replace("Factur-X EN 16931, whose schema", "UBL, which"),
    },
    **{f"cii/zfcorpus-testout-ZF2Push{name}.xml": {"BT-83": _BT83}
       for name in ("Allowances", "ChargesAllowances", "Correction", "Edge")},
}
@dataclass
class Outcome:
    key: str
    profile: str
    to: str
    dropped: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    new_fatal: dict[str, str] = field(default_factory=dict)  # family -> first message
    error: str | None = None


def _check(args: tuple[str, str, str]) -> Outcome:
    key, profile, to = args
    from facturflow.conversion import ConversionRejected, convert, lost_terms
    from facturflow.reading import read
    from facturflow.validation import validate

    outcome = Outcome(key, profile, to)
    path = str(corpus_dir() / key)
    try:
        try:
            result = convert(path, to=to, lossy=True)  # type: ignore[arg-type]
        except ConversionRejected as exc:
            if exc.result is None:
                outcome.error = exc.message[:200]
                return outcome
            result = exc.result  # refused as invalid: compared with its source below
        outcome.dropped = result.dropped
        on_source = {rule_family(f.rule) for f in validate(path).fatal}
        for finding in result.report.fatal:
            family = rule_family(finding.rule)
            if family not in on_source:
                outcome.new_fatal.setdefault(family, finding.message[:160])
        before = read(path, check_codes=False)
        after = read(result.xml, check_codes=False)
        outcome.changed = tuple(t for t in lost_terms(before, after, ignore={"BT-24"})
                                if t not in outcome.dropped)
    except Exception as exc:  # a crash is a failure to report, not a reason to stop the run
        outcome.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    return outcome


def table(outcomes: list[Outcome]) -> str:
    """The README's fidelity table: one row per direction and source profile."""
    lines = [
        "| direction | profile | files | converted, nothing lost, no new fatal | listed: inherent "
        "(see the README) | unexplained | terms lost | new fatal "
        "(rule families) |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    groups = sorted({(o.to, o.profile) for o in outcomes})
    for to, profile in groups:
        mine = [o for o in outcomes if (o.to, o.profile) == (to, profile)]
        lost: Counter[str] = Counter()
        fatal: Counter[str] = Counter()
        clean = inherent = unexplained = 0
        for o in mine:
            lost.update((*o.dropped, *o.changed))
            fatal.update(list(o.new_fatal))
            issues = set(o.new_fatal) | set(o.dropped) | set(o.changed)
            allowed = set(ALLOWED_NEW_FATAL.get(o.key, {})) | set(ALLOWED_DROPPED.get(o.key, {}))
            if o.error or issues - allowed:
                unexplained += 1
            elif not issues:
                clean += 1
            else:
                inherent += 1

        def show(counter: Counter[str]) -> str:
            return ", ".join(f"{k} x{v}" for k, v in sorted(counter.items())) or "none"

        source = "UBL -> CII" if to == "cii" else "CII -> UBL"
        lines.append(f"| {source} | {profile} | {len(mine)} | {clean} | {inherent} "
                     f"| {unexplained} | {show(lost)} | {show(fatal)} |")
    return "\n".join(lines)


@pytest.mark.corpus
@pytest.mark.slow
def test_every_valid_en16931_ubl_and_cii_converts_to_the_other_syntax(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [r for r in corpus_manifest() if r["expected"] == "valid"
            and r["format"] in TARGET and r["profile"] in EN16931_PROFILES]
    if not rows:
        pytest.skip(f"shared corpus not found at {corpus_dir()} (set FACTURFLOW_CORPUS)")
    limit = int(os.environ.get("FACTURFLOW_CORPUS_LIMIT", "0"))
    jobs = [(r["path"], r["profile"], TARGET[r["format"]]) for r in rows[: limit or None]]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=context) as pool:
        outcomes = list(pool.map(_check, jobs, chunksize=4))
    with capsys.disabled():
        print("\n" + table(outcomes))

    problems = []
    for o in outcomes:
        may_fire = set(ALLOWED_NEW_FATAL.get(o.key, {}))
        may_drop = set(ALLOWED_DROPPED.get(o.key, {}))
        lost = set(o.dropped) | set(o.changed)
        unexplained = (set(o.new_fatal) - may_fire) | (lost - may_drop)
        if o.error or unexplained:
            problems.append(f"{o.key} -> {o.to}: {o.error or ''} unexplained: " + "; ".join(
                f"{k}: {o.new_fatal.get(k, 'lost')}" for k in sorted(unexplained)))
        stale = (may_fire - set(o.new_fatal)) | (may_drop - lost)
        if stale and not o.error:
            problems.append(f"{o.key}: no longer fires, remove from the lists: {sorted(stale)}")
    ran = {o.key for o in outcomes}
    missing = sorted((set(ALLOWED_NEW_FATAL) | set(ALLOWED_DROPPED)) - ran)
    if not limit:
        assert not missing, f"listed files not in the corpus run: {missing}"
    assert not problems, f"{len(problems)} of {len(outcomes)} failed:\n" + "\n".join(problems[:40])
