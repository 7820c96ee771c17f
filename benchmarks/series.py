"""Size series (issue 19): seconds, peak memory and growth exponent of large invoices.

    python -m benchmarks.series                         # 1,000 ... 100,000 lines, UBL and CII
    python -m benchmarks.series --sizes 1000,4000,16000 --syntaxes ubl --java

Each (syntax, variant, size) runs in a fresh process that compiles the default rules on a
3-line invoice first, then validates the generated invoice once with `facturflow.validate`
(limits raised to admit it: `--max-size 1GB --max-nodes 100000000` on the command line); it
reports wall and CPU seconds of that validation and the process's peak RSS (VmHWM, compiling
included). Variants: `valid` (the generator's valid invoice) and `invalid` (every line's price
negative: BR-27 and BR-FR-DEC-03 fail on every line, so every line gets failed asserts and SVRL
locations); `--variants parents` adds S8 invoices whose lines are sub-lines of others
(BR-FR-MV-06/07's parent-line lookups), `groups` S8 invoices in groups of 10 lines
(BR-FR-MV-05/10), `group-vat` the same with a sub-invoice number and a VAT breakdown per group
(BR-FR-MV-09). The growth exponent is the log-log slope of CPU
time from 4,000 lines up.
`--java` adds the warmed Java reference (Saxon-HE, one thread) on the 16,000-line valid files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .generate import generate

SIZES = (1000, 4000, 16000, 64000, 100000)


def every_line_invalid(xml: bytes, syntax: str) -> bytes:
    """The invoice with every line's net price negative (a failure on every line)."""
    if syntax == "ubl":
        return xml.replace(b'<cbc:PriceAmount currencyID="EUR">',
                           b'<cbc:PriceAmount currencyID="EUR">-')
    return xml.replace(b"<ram:NetPriceProductTradePrice>\n          <ram:ChargeAmount>",
                       b"<ram:NetPriceProductTradePrice>\n          <ram:ChargeAmount>-")


def with_parent_lines(xml: bytes, syntax: str) -> bytes:
    """The invoice under the multi-vendor billing frame S8, each line k > 1 a sub-line of line
    k // 2 with a seller legal identifier k % 3 (BR-FR-MV-06/07 look every parent line up;
    two thirds of the lines fail BR-FR-MV-06)."""
    import re

    if syntax == "ubl":
        invoice_id = re.search(rb"<cbc:ID>([^<]*)</cbc:ID>", xml)
        assert invoice_id is not None

        def line(m: re.Match[bytes]) -> bytes:
            k = int(m.group(2))
            parent = (b"<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>"
                      + invoice_id.group(1) + b"</cbc:ID><cbc:DocumentStatusCode>DETAIL"
                      b"</cbc:DocumentStatusCode></cac:InvoiceDocumentReference>"
                      b"<cac:BillingReferenceLine><cbc:ID>%d</cbc:ID></cac:BillingReferenceLine>"
                      b"</cac:BillingReference>" % (k // 2)) if k > 1 else b""
            return m.group(1) + parent
        xml = re.sub(rb"(<cac:InvoiceLine>\s*<cbc:ID>(\d+)</cbc:ID>)", line, xml)
        counter = iter(range(1, 10**7))
        xml = re.sub(rb"<cac:Item>", lambda m: b"<cac:Item><cac:ManufacturerParty>"
                     b"<cac:PartyLegalEntity><cbc:CompanyID>%d</cbc:CompanyID>"
                     b"</cac:PartyLegalEntity></cac:ManufacturerParty>" % (next(counter) % 3), xml)
        return xml.replace(b"<cbc:ProfileID>S1<", b"<cbc:ProfileID>S8<")
    xml = re.sub(rb"<ram:LineID>(\d+)</ram:LineID>", lambda m: m.group(0) + (
        b"<ram:ParentLineID>%d</ram:ParentLineID>" % (int(m.group(1)) // 2)
        if int(m.group(1)) > 1 else b""), xml)
    counter = iter(range(1, 10**7))
    xml = re.sub(rb"<ram:SpecifiedLineTradeAgreement>", lambda m: m.group(0) + (
        b"<ram:ItemSellerTradeParty><ram:SpecifiedLegalOrganization><ram:ID>%d</ram:ID>"
        b"</ram:SpecifiedLegalOrganization></ram:ItemSellerTradeParty>" % (next(counter) % 3)),
        xml)
    return xml.replace(b"<ram:ID>S1<", b"<ram:ID>S8<")


def with_groups(xml: bytes, syntax: str, size: int = 10) -> bytes:
    """The invoice under the frame S8 with its lines in groups of `size`: the first line of
    each group a GROUP line, the others its DETAIL sub-lines (BR-FR-MV-10 counts, for each
    GROUP line, its sub-lines among all lines)."""
    import re

    def group_of(k: int) -> int:
        return k - (k - 1) % size

    if syntax == "ubl":
        invoice_id = re.search(rb"<cbc:ID>([^<]*)</cbc:ID>", xml)
        assert invoice_id is not None

        def line(m: re.Match[bytes]) -> bytes:
            k = int(m.group(2))
            status = b"GROUP" if group_of(k) == k else b"DETAIL"
            parent = (b"" if status == b"GROUP" else b"<cac:BillingReferenceLine><cbc:ID>%d"
                      b"</cbc:ID></cac:BillingReferenceLine>" % group_of(k))
            return (m.group(1) + b"<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>"
                    + invoice_id.group(1) + b"</cbc:ID><cbc:DocumentStatusCode>" + status
                    + b"</cbc:DocumentStatusCode></cac:InvoiceDocumentReference>" + parent
                    + b"</cac:BillingReference>")
        xml = re.sub(rb"(<cac:InvoiceLine>\s*<cbc:ID>(\d+)</cbc:ID>)", line, xml)
        xml = re.sub(rb'(<cbc:LineExtensionAmount currencyID="EUR">([^<]*)'
                     rb"</cbc:LineExtensionAmount>)",
                     rb'\1<cbc:TaxInclusiveLineExtensionAmount currencyID="EUR">\2'
                     rb"</cbc:TaxInclusiveLineExtensionAmount>", xml)
        return xml.replace(b"<cbc:ProfileID>S1<", b"<cbc:ProfileID>S8<")

    def cii_line(m: re.Match[bytes]) -> bytes:
        k = int(m.group(1))
        if group_of(k) == k:
            return m.group(0) + b"<ram:LineStatusReasonCode>GROUP</ram:LineStatusReasonCode>"
        return m.group(0) + (b"<ram:ParentLineID>%d</ram:ParentLineID><ram:LineStatusReasonCode>"
                             b"DETAIL</ram:LineStatusReasonCode>" % group_of(k))
    xml = re.sub(rb"<ram:LineID>(\d+)</ram:LineID>", cii_line, xml)
    xml = re.sub(rb"(<ram:LineTotalAmount>([^<]*)</ram:LineTotalAmount>)",
                 rb'\1<ram:TaxTotalAmount currencyID="EUR">0.00</ram:TaxTotalAmount>'
                 rb"<ram:GrandTotalAmount>\2</ram:GrandTotalAmount>", xml)
    return xml.replace(b"<ram:ID>S1<", b"<ram:ID>S8<")


def with_group_vat(xml: bytes, syntax: str, size: int = 10) -> bytes:
    """with_groups, each GROUP line k also a sub-invoice: its invoice number "F<k>" (an AFL
    reference, document type 130), a line VAT total of 0.00, and one VAT breakdown of its own
    in the header whose exemption reason starts with "#F<k>#" (BR-FR-MV-09 sums, for each
    GROUP line, the breakdowns of its invoice number among all breakdowns: one per group)."""
    import re

    xml = with_groups(xml, syntax, size)
    groups: list[int] = []
    if syntax == "ubl":
        def group_line(m: re.Match[bytes]) -> bytes:
            k = int(m.group(2))
            groups.append(k)
            return (m.group(1) + b"<cac:DocumentReference><cbc:ID schemeID=\"AFL\">F%d</cbc:ID>"
                    b"<cbc:DocumentTypeCode>130</cbc:DocumentTypeCode></cac:DocumentReference>"
                    b'<cac:TaxTotal><cbc:TaxAmount currencyID="EUR">0.00</cbc:TaxAmount>'
                    b"</cac:TaxTotal>" % k)
        xml = re.sub(rb"(<cac:InvoiceLine>\s*<cbc:ID>(\d+)</cbc:ID><cac:BillingReference>"
                     rb"(?:(?!</cac:BillingReference>).)*GROUP(?:(?!</cac:BillingReference>).)*"
                     rb"</cac:BillingReference>)", group_line, xml, flags=re.S)
        breakdowns = b"".join(
            b'<cac:TaxSubtotal><cbc:TaxableAmount currencyID="EUR">0.00</cbc:TaxableAmount>'
            b'<cbc:TaxAmount currencyID="EUR">0.00</cbc:TaxAmount><cac:TaxCategory>'
            b"<cbc:ID>E</cbc:ID><cbc:Percent>0</cbc:Percent><cbc:TaxExemptionReason>#F%d# "
            b"sous-facture</cbc:TaxExemptionReason><cac:TaxScheme><cbc:ID>VAT</cbc:ID>"
            b"</cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal>" % k for k in groups)
        return xml.replace(b"</cac:TaxTotal>\n  <cac:LegalMonetaryTotal>",
                           breakdowns + b"</cac:TaxTotal>\n  <cac:LegalMonetaryTotal>", 1)

    def cii_group(m: re.Match[bytes]) -> bytes:
        k = int(m.group(2))
        groups.append(k)
        return m.group(1) + (b"<ram:AdditionalReferencedDocument><ram:IssuerAssignedID>F%d"
                             b"</ram:IssuerAssignedID><ram:TypeCode>130</ram:TypeCode>"
                             b"<ram:ReferenceTypeCode>AFL</ram:ReferenceTypeCode>"
                             b"</ram:AdditionalReferencedDocument>" % k)
    xml = re.sub(rb"(<ram:LineID>(\d+)</ram:LineID><ram:LineStatusReasonCode>GROUP"
                 rb"(?:(?!</ram:IncludedSupplyChainTradeLineItem>).)*?"
                 rb"<ram:SpecifiedLineTradeSettlement>)", cii_group, xml, flags=re.S)
    breakdowns = b"".join(
        b"<ram:ApplicableTradeTax><ram:CalculatedAmount>0.00</ram:CalculatedAmount>"
        b"<ram:TypeCode>VAT</ram:TypeCode><ram:ExemptionReason>#F%d# sous-facture"
        b"</ram:ExemptionReason><ram:BasisAmount>0.00</ram:BasisAmount><ram:CategoryCode>E"
        b"</ram:CategoryCode><ram:RateApplicablePercent>0</ram:RateApplicablePercent>"
        b"</ram:ApplicableTradeTax>" % k for k in groups)
    return xml.replace(b"<ram:SpecifiedTradePaymentTerms>",
                       breakdowns + b"<ram:SpecifiedTradePaymentTerms>", 1)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(path: str, syntax: str) -> None:
    """Run in the fresh process: compile, then validate `path` once; print one JSON line."""
    import facturflow
    from facturflow.xmlsafe import Limits

    facturflow.validate(generate(3, syntax))
    limits = Limits(max_bytes=1 << 30, max_nodes=100_000_000)
    t0, c0 = time.perf_counter(), time.process_time()
    report = facturflow.validate(path, limits=limits)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({
        "wall": wall, "cpu": cpu, "peak_rss_mb": _peak_rss_mb(), "ok": report.ok,
        "error": report.error, "fatal": sum(1 for f in report.findings if f.fatal),
    }))


def slope(points: list[tuple[int, float]]) -> float | None:
    import math
    import statistics

    pts = [(math.log(n), math.log(t)) for n, t in points if t > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def run(sizes: tuple[int, ...], syntaxes: tuple[str, ...], variants: tuple[str, ...],
        java: bool, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for syntax in syntaxes:
        for variant in variants:
            rows = []
            for n in sizes:
                xml = generate(n, syntax)
                if variant == "invalid":
                    xml = every_line_invalid(xml, syntax)
                elif variant == "parents":
                    xml = with_parent_lines(xml, syntax)
                elif variant == "groups":
                    xml = with_groups(xml, syntax)
                elif variant == "group-vat":
                    xml = with_group_vat(xml, syntax)
                path = workdir / f"series-{syntax}-{variant}-{n}.xml"
                path.write_bytes(xml)
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks.series", "--child", str(path), syntax],
                    capture_output=True, text=True, timeout=3600, check=False)
                try:
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    row = {"failed": done.stderr[-500:]}
                row.update(lines=n, megabytes=len(xml) / 1e6)
                path.unlink()
                rows.append(row)
                print(f"{syntax} {variant:7s} {n:>7} lines {len(xml) / 1e6:7.1f} MB  "
                      + (f"wall {row['wall']:7.2f} s  cpu {row['cpu']:7.2f} s  peak RSS "
                         f"{row['peak_rss_mb']:6.0f} MB  ok={row['ok']} fatal={row['fatal']}"
                         f"{'  ERROR ' + str(row['error']) if row.get('error') else ''}"
                         if "wall" in row else f"FAILED {row['failed']}"), flush=True)
            points = [(r["lines"], r["cpu"]) for r in rows if "cpu" in r and r["lines"] >= 4000]
            exponent = slope(points)
            print(f"{syntax} {variant}: growth exponent of CPU from 4,000 lines: "
                  f"{'n/a' if exponent is None else f'{exponent:.2f}'}", flush=True)
            results[f"{syntax}-{variant}"] = {"rows": rows, "exponent": exponent}
        if java and 16000 in sizes:
            results[f"{syntax}-java-16000"] = _java(syntax, workdir)
    return results


def _java(syntax: str, workdir: Path) -> dict[str, Any]:
    from functools import partial

    from facturflow.detection import detect
    from facturflow.rules import DEFAULT_RULE_SETS, plan

    from .reference import run_reference
    from .run import java_or_reason, java_stylesheets

    path = workdir / f"series-{syntax}-java-16000.xml"
    path.write_bytes(generate(16000, syntax))
    steps, _ = plan(detect(path), DEFAULT_RULE_SETS)
    sheets = java_stylesheets([s.artefact.path for s in steps if s.layer == "schematron"])
    result, reason = java_or_reason(partial(
        run_reference, [(path, sheets)], threads=1, warmup_seconds=10.0, min_warmup_passes=1,
        repeat=1, workdir=workdir, timeout=3600))
    out: dict[str, Any] = {"reason": reason}
    if result is not None:
        out.update(wall=result.best_pass_seconds, cpu=result.median_pass_cpu_seconds)
        print(f"{syntax} Java reference (Saxon-HE 9.9, warmed, one thread), 16000 lines: wall "
              f"{out['wall']:.2f} s, cpu {out['cpu']:.2f} s", flush=True)
    else:
        print(f"{syntax} Java reference: not run ({reason})", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.series", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("FILE", "SYNTAX"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--syntaxes", default="ubl,cii")
    parser.add_argument("--variants", default="valid,invalid")
    parser.add_argument("--java", action="store_true", help="the Java reference at 16,000 lines")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="facturflow-series-") as tmp:
        results = run(tuple(int(x) for x in args.sizes.split(",")),
                      tuple(args.syntaxes.split(",")), tuple(args.variants.split(",")),
                      args.java, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
