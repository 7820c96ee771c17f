"""`facturflow read FILE [--format json|text]`: print an invoice as the EN 16931 model."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import click

from .detection import detect
from .errors import FacturflowError
from .inputs import cli_limits, limit_options
from .model.invoice import Invoice
from .reading import read_with_mapping

EXIT_OK = 0
EXIT_UNREADABLE = 2


@click.command("read")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="json: keyed by business term ids (Invoice.to_dict()); text: a summary.")
@click.option("--no-code-check", is_flag=True,
              help="Keep codes outside the EN 16931 code lists instead of refusing the input.")
@limit_options
def read_command(path: Path, fmt: str, no_code_check: bool, max_size: int | None = None,
                 max_nodes: int | None = None) -> None:
    """Read an invoice (UBL, CII, Factur-X PDF, or ZUGFeRD 1.0 through its EN 16931 mapping)
    into the EN 16931 model and print it."""
    try:
        document = detect(path, limits=cli_limits(max_size, max_nodes))
        invoice, mapping = read_with_mapping(document, check_codes=not no_code_check)
    except FacturflowError as exc:
        click.echo(f"{path}: error: {exc.message}", err=True)
        sys.exit(EXIT_UNREADABLE)
    for warning in mapping.warnings() if mapping is not None else ():
        click.echo(f"{path}: note: {warning}", err=True)
    click.echo(invoice.to_json() if fmt == "json" else render_text(invoice))
    sys.exit(EXIT_OK)


def render_text(invoice: Invoice) -> str:
    """A short human summary: header, parties, lines, VAT breakdown and totals."""
    out: list[str] = []
    kind = "Credit note" if invoice.is_credit_note else "Invoice"
    out.append(f"{kind} {invoice.number} (BT-3 {invoice.type_code}) of {invoice.issue_date}"
               f" in {invoice.currency_code}")
    if invoice.due_date:
        out.append(f"  due {invoice.due_date}")
    if invoice.business_process:
        out.append(f"  business process (BT-23): {invoice.business_process}")
    for label, party in (("Seller", invoice.seller), ("Buyer", invoice.buyer)):
        if party is None:
            continue
        details = [party.name or "?"]
        if party.vat_id:
            details.append(f"VAT {party.vat_id}")
        if party.siren:
            details.append(f"SIREN {party.siren}")
        if party.electronic_address:
            address = party.electronic_address
            details.append(f"address {address.scheme}:{address.value}")
        out.append(f"{label}: " + ", ".join(details))
    if invoice.lines:
        out.append("Lines:")
        for line in invoice.lines:
            name = line.item.name if line.item and line.item.name else ""
            quantity = _num(line.quantity)
            unit = f" {line.unit_code}" if line.unit_code else ""
            indent = "    " if line.parent_line_id else "  "
            out.append(f"{indent}{line.id}. {name}  {quantity}{unit}  {_num(line.net_amount)}")
    if invoice.vat_breakdown:
        out.append("VAT:")
        for vat in invoice.vat_breakdown:
            out.append(f"  {vat.category_code} {_num(vat.rate)}%  on {_num(vat.taxable_amount)}"
                       f" = {_num(vat.tax_amount)}")
    totals = invoice.totals
    if totals:
        out.append(f"Total without VAT {_num(totals.tax_exclusive_amount)}, VAT "
                   f"{_num(totals.vat_total)}, with VAT {_num(totals.tax_inclusive_amount)}, "
                   f"due {_num(totals.amount_due)} {invoice.currency_code}")
    return "\n".join(out)


def _num(value: Decimal | None) -> str:
    return "-" if value is None else str(value)
