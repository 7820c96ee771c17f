"""What a rendered invoice says, in words, whatever it is drawn on (the PDF page or HTML).

`describe(invoice, lang)` turns the model into a `Document`: a title, the parties, then
sections (label/value pairs, tables, totals), each with its heading. Codes become words here
(units, VAT categories, payment means, note subjects, exemption reasons...; labels.name), so
the PDF and HTML renderers only lay text out.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..model import (
    AllowanceCharge,
    Buyer,
    Contact,
    Identifier,
    Invoice,
    PostalAddress,
    Seller,
)
from .labels import (
    Language,
    format_amount,
    format_date,
    format_number,
    format_percent,
    name,
    names,
    text,
)


@dataclass(frozen=True)
class Pairs:
    """Label: value rows under a heading (rows with an empty value are left out)."""

    heading: str
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    """A table under a heading; `widths` are relative, `aligns` LEFT, RIGHT or CENTER."""

    heading: str
    columns: tuple[str, ...]
    widths: tuple[float, ...]
    aligns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Totals:
    """The totals: (label, amount, strong) rows."""

    heading: str
    rows: tuple[tuple[str, str, bool], ...]


Section = Pairs | Table | Totals


@dataclass(frozen=True)
class Party:
    """One party's column: a heading, its name, then its details."""

    heading: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Document:
    """Everything a rendering shows, in one language."""

    lang: Language
    title: str  # "Facture N° FA-2026-0042"
    number: str
    author: str
    meta: tuple[tuple[str, str], ...]
    parties: tuple[Party, ...]
    party_extra: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]


def _join(*parts: str | None, sep: str = " – ") -> str:
    """The non-empty parts, each once, joined."""
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return sep.join(seen)


def ident(identifier: Identifier | None, lang: Language) -> str:
    """'123456782 (SIREN)': the scheme in words where known."""
    if identifier is None:
        return ""
    if not identifier.scheme:
        return identifier.value
    return f"{identifier.value} ({name('scheme', identifier.scheme, lang)})"


def address_lines(address: PostalAddress | None) -> list[str]:
    if address is None:
        return []
    lines = [line for line in (address.line1, address.line2, address.line3) if line]
    city = " ".join(part for part in (address.post_code, address.city) if part)
    region = ", ".join(part for part in (city, address.country_subdivision) if part)
    if address.country_code:
        region = f"{region} ({address.country_code})" if region else address.country_code
    if region:
        lines.append(region)
    return lines


def _contact_lines(contact: Contact | None, lang: Language) -> list[str]:
    if contact is None:
        return []
    parts = [part for part in (contact.point, contact.telephone, contact.email) if part]
    return [f"{text('contact', lang)}: {', '.join(parts)}"] if parts else []


class _Describer:
    def __init__(self, invoice: Invoice, lang: Language) -> None:
        self.invoice = invoice
        self.lang = lang

    def t(self, key: str) -> str:
        return text(key, self.lang)

    def amount(self, value: Decimal | None, *, currency: bool = False) -> str:
        if currency:
            return format_amount(value, self.invoice.currency_code, self.lang)
        return format_number(value, self.lang)

    def vat(self, category: str | None, rate: Decimal | None) -> str:
        """'20 %' at the standard rate; the category in words otherwise ('Exonéré de TVA')."""
        percent = format_percent(rate, self.lang)
        if category in (None, "S"):
            return percent
        if rate is not None and rate == 0:
            percent = ""
        return _join(name("vat_category", category, self.lang), percent, sep=" ")

    def reason(self, item: AllowanceCharge, allowance: bool) -> str:
        words = name("allowance_reason" if allowance else "charge_reason", item.reason_code,
                      self.lang)
        return _join(item.reason, words) if item.reason else words

    def title(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        inv, lang = self.invoice, self.lang
        kind = self.t("credit_note") if inv.is_credit_note else self.t("invoice")
        mode = inv.business_process or ""
        if mode in names("billing_mode"):  # the code too: it is what the parties quote
            mode = f"{name('billing_mode', mode, lang)} ({mode})"
        meta = (
            (self.t("type"), name("invoice_type", inv.type_code, lang)),
            (self.t("issue_date"), format_date(inv.issue_date, lang)),
            (self.t("due_date"), format_date(inv.due_date, lang)),
            (self.t("tax_point_date"), format_date(inv.tax_point_date, lang)),
            (self.t("currency"), inv.currency_code),
            (self.t("billing_mode"), mode),
        )
        return f"{kind} {self.t('number')} {inv.number}", meta

    def _party_head(self, party: Seller | Buyer) -> list[str]:
        """A seller's or buyer's name, trading name, address, VAT and legal identifiers."""
        lines = [party.name or party.trading_name or ""]
        if party.trading_name and party.name:
            lines.append(party.trading_name)
        lines += address_lines(party.postal_address)
        if party.vat_id:
            lines.append(f"{self.t('vat_id')}: {party.vat_id}")
        if party.siren:
            lines.append(f"{self.t('siren')}: {party.siren}")
        elif party.legal_registration_id:
            lines.append(
                f"{self.t('legal_id')}: {ident(party.legal_registration_id, self.lang)}")
        return lines

    def _party_reach(self, party: Seller | Buyer) -> list[str]:
        """A seller's or buyer's electronic address and contact."""
        lines: list[str] = []
        if party.electronic_address:
            address = party.electronic_address
            lines.append(f"{self.t('electronic_address')}: {address.value} "
                         f"({name('scheme', address.scheme, self.lang)})")
        return lines + _contact_lines(party.contact, self.lang)

    def parties(self) -> tuple[tuple[Party, ...], tuple[tuple[str, str], ...]]:
        inv, lang = self.invoice, self.lang
        seller, buyer = inv.seller, inv.buyer
        seller_lines: list[str] = []
        if seller is not None:
            seller_lines += self._party_head(seller)
            if seller.tax_registration_id:
                seller_lines.append(f"{self.t('tax_registration')}: {seller.tax_registration_id}")
            for identifier in seller.identifiers:
                seller_lines.append(f"{self.t('identifier')}: {ident(identifier, lang)}")
            seller_lines += self._party_reach(seller)
            if seller.additional_legal_information:
                seller_lines.append(seller.additional_legal_information)
        buyer_lines: list[str] = []
        if buyer is not None:
            buyer_lines += self._party_head(buyer)
            if buyer.identifier:
                buyer_lines.append(f"{self.t('identifier')}: {ident(buyer.identifier, lang)}")
            buyer_lines += self._party_reach(buyer)
        extra: list[tuple[str, str]] = []
        if inv.payee is not None:
            payee = inv.payee
            extra.append((self.t("payee"), ", ".join(
                part for part in (payee.name, ident(payee.identifier, lang),
                                  ident(payee.legal_registration_id, lang)) if part)))
        if inv.tax_representative is not None:
            rep = inv.tax_representative
            extra.append((self.t("tax_representative"), ", ".join(
                part for part in (rep.name, rep.vat_id, *address_lines(rep.postal_address))
                if part)))
        return (Party(self.t("seller"), tuple(seller_lines)),
                Party(self.t("buyer"), tuple(buyer_lines))), tuple(extra)

    def references(self) -> Section | None:
        inv, lang = self.invoice, self.lang
        rows = [
            (self.t("buyer_reference"), inv.buyer_reference or ""),
            (self.t("purchase_order"), inv.purchase_order_reference or ""),
            (self.t("sales_order"), inv.sales_order_reference or ""),
            (self.t("contract"), inv.contract_reference or ""),
            (self.t("project"), inv.project_reference or ""),
            (self.t("despatch_advice"), inv.despatch_advice_reference or ""),
            (self.t("receiving_advice"), inv.receiving_advice_reference or ""),
            (self.t("tender"), inv.tender_reference or ""),
            (self.t("object_id"), ident(inv.invoiced_object_id, lang)),
            (self.t("accounting_reference"), inv.buyer_accounting_reference or ""),
        ]
        for preceding in inv.preceding_invoices:
            issued = format_date(preceding.issue_date, lang)
            rows.append((self.t("preceding_invoice"),
                         f"{preceding.reference}" + (f" ({issued})" if issued else "")))
        period = inv.invoicing_period
        if period is not None and (period.start_date or period.end_date):
            rows.append((self.t("period"), f"{format_date(period.start_date, lang)} – "
                                           f"{format_date(period.end_date, lang)}"))
        delivery = inv.delivery
        if delivery is not None:
            where = ", ".join(
                part for part in (delivery.party_name, ident(delivery.location_id, lang),
                                  *address_lines(delivery.address)) if part)
            rows.append((self.t("delivery"), where))
            rows.append((self.t("delivery_date"), format_date(delivery.actual_delivery_date,
                                                              lang)))
        return _pairs(self.t("references"), rows)

    def lines(self) -> Section | None:
        inv, lang = self.invoice, self.lang
        if not inv.lines:
            return None
        rows: list[tuple[str, ...]] = []
        for line in inv.lines:
            item = line.item
            description = [item.name] if item and item.name else []
            if item and item.description and item.description != (item.name or ""):
                description.append(item.description)
            if line.note:
                description.append(line.note)
            if line.period and (line.period.start_date or line.period.end_date):
                description.append(f"{format_date(line.period.start_date, lang)} – "
                                   f"{format_date(line.period.end_date, lang)}")
            for allowance in line.allowances:
                description.append(self._allowance_text(allowance, True))
            for charge in line.charges:
                description.append(self._allowance_text(charge, False))
            price = line.price
            unit_price = ""
            if price is not None and price.net_price is not None:
                unit_price = format_number(price.net_price, lang, places=None, min_places=2)
                if price.base_quantity not in (None, Decimal(1)):
                    base = format_number(price.base_quantity, lang, places=None)
                    unit = name("unit", price.base_quantity_unit or line.unit_code, lang)
                    unit_price += f" {self.t('per')} {_join(base, unit, sep=' ')}"
            vat = self.vat(line.vat.category_code, line.vat.rate) if line.vat else ""
            rows.append((line.id, "\n".join(description),
                         format_number(line.quantity, lang, places=None),
                         name("unit", line.unit_code, lang), unit_price, vat,
                         self.amount(line.net_amount)))
        return Table(
            f"{self.t('lines')} ({inv.currency_code})",
            (self.t("col_line"), self.t("col_item"), self.t("col_quantity"), self.t("col_unit"),
             self.t("col_price"), self.t("col_vat"), self.t("col_net")),
            (5, 35, 12, 14, 14, 10, 14),
            ("LEFT", "LEFT", "RIGHT", "LEFT", "RIGHT", "CENTER", "RIGHT"),
            tuple(rows),
        )

    def _allowance_text(self, item: AllowanceCharge, allowance: bool) -> str:
        label = self.t("allowance" if allowance else "charge")
        sign = "-" if allowance else "+"
        reason = self.reason(item, allowance)
        pct = f" ({format_percent(item.percentage, self.lang)})" if item.percentage else ""
        return f"{label}{pct}: {sign}{self.amount(item.amount)}" + (f" – {reason}" if reason
                                                                     else "")

    def allowances_charges(self) -> Section | None:
        inv, lang = self.invoice, self.lang
        if not inv.allowances and not inv.charges:
            return None
        rows: list[tuple[str, ...]] = []
        for items, allowance in ((inv.allowances, True), (inv.charges, False)):
            label = self.t("allowance" if allowance else "charge")
            sign = "-" if allowance else "+"
            for item in items:
                base = ""
                if item.base_amount is not None:
                    base = self.amount(item.base_amount)
                    if item.percentage is not None:
                        base += f" × {format_percent(item.percentage, lang)}"
                rows.append((label, self.reason(item, allowance), base,
                             self.vat(item.vat_category_code, item.vat_rate),
                             f"{sign}{self.amount(item.amount)}"))
        return Table(
            self.t("allowances_charges"),
            (self.t("type"), self.t("col_item"), self.t("col_base"), self.t("col_vat"),
             self.t("col_net")),
            (14, 40, 20, 14, 14),
            ("LEFT", "LEFT", "RIGHT", "CENTER", "RIGHT"),
            tuple(rows),
        )

    def vat_breakdown(self) -> Section | None:
        inv, lang = self.invoice, self.lang
        if not inv.vat_breakdown:
            return None
        rows = tuple(
            (
                name("vat_category", entry.category_code, lang),
                format_percent(entry.rate, lang),
                self.amount(entry.taxable_amount),
                self.amount(entry.tax_amount),
                _join(name("vatex", entry.exemption_reason_code, lang), entry.exemption_reason),
            )
            for entry in inv.vat_breakdown
        )
        table = Table(
            f"{self.t('vat_breakdown')} ({inv.currency_code})",
            (self.t("col_category"), self.t("col_rate"), self.t("col_base"), self.t("col_tax"),
             self.t("col_exemption")),
            (28, 10, 16, 16, 30),
            ("LEFT", "RIGHT", "RIGHT", "RIGHT", "LEFT"),
            rows,
        )
        if any(row[-1] for row in rows):
            return table
        # No exemption anywhere: no empty column.
        return Table(table.heading, table.columns[:-1], (30, 12, 20, 20),
                     table.aligns[:-1], tuple(row[:-1] for row in rows))

    def totals(self) -> Section | None:
        inv = self.invoice
        totals = inv.totals
        if totals is None:
            return None
        rows: list[tuple[str, str, bool]] = [
            (self.t("line_total"), self.amount(totals.line_net_total, currency=True), False),
            (self.t("allowance_total"), self.amount(totals.allowance_total, currency=True),
             False),
            (self.t("charge_total"), self.amount(totals.charge_total, currency=True), False),
            (self.t("total_excl"), self.amount(totals.tax_exclusive_amount, currency=True),
             False),
            (self.t("total_vat"), self.amount(totals.vat_total, currency=True), False),
            (self.t("total_vat_accounting"),
             format_amount(totals.vat_total_accounting, inv.tax_currency_code, self.lang),
             False),
            (self.t("total_incl"), self.amount(totals.tax_inclusive_amount, currency=True),
             True),
            (self.t("prepaid"), self.amount(totals.prepaid_amount, currency=True), False),
            (self.t("rounding"), self.amount(totals.rounding_amount, currency=True), False),
            (self.t("amount_due"), self.amount(totals.amount_due, currency=True), True),
        ]
        shown = tuple(row for row in rows if row[1])
        return Totals(self.t("totals"), shown) if shown else None

    def payment(self) -> Section | None:
        inv, lang = self.invoice, self.lang
        rows: list[tuple[str, str]] = [(self.t("payment_terms"), inv.payment_terms or "")]
        instructions = inv.payment_instructions
        if instructions is not None:
            means = _join(name("payment_means", instructions.means_code, lang),
                          instructions.means_text)
            rows.append((self.t("payment_means"), means))
            rows.append((self.t("remittance"), instructions.remittance_information or ""))
            for transfer in instructions.credit_transfers:
                rows.append((self.t("iban"), transfer.account_id or ""))
                rows.append((self.t("account_name"), transfer.account_name or ""))
                rows.append((self.t("bic"), transfer.service_provider_id or ""))
            if instructions.card is not None:
                card = instructions.card
                rows.append((self.t("card"), " ".join(
                    part for part in (card.primary_account_number, card.holder_name) if part)))
            if instructions.direct_debit is not None:
                debit = instructions.direct_debit
                rows.append((self.t("mandate"), debit.mandate_reference or ""))
                rows.append((self.t("creditor_id"), debit.creditor_id or ""))
                rows.append((self.t("debited_account"), debit.debited_account_id or ""))
        if inv.due_date is not None:
            rows.append((self.t("due_date"), format_date(inv.due_date, lang)))
        return _pairs(self.t("payment"), rows)

    def notes(self) -> list[Section]:
        inv, lang = self.invoice, self.lang
        out: list[Section] = []
        notes = _pairs(self.t("notes"), [
            (name("text_subject", note.subject_code, lang) if note.subject_code
             else self.t("note"), note.text) for note in inv.notes])
        if notes is not None:
            out.append(notes)
        documents = _pairs(self.t("documents"), [
            (doc.reference, _join(doc.description, doc.external_location,
                                  doc.attachment.filename if doc.attachment else None) or "✓")
            for doc in inv.supporting_documents])
        if documents is not None:
            out.append(documents)
        return out


def _pairs(heading: str, rows: list[tuple[str, str]]) -> Pairs | None:
    kept = tuple((label, value) for label, value in rows if value)
    return Pairs(heading, kept) if kept else None


def describe(invoice: Invoice, lang: Language) -> Document:
    """The invoice in words, in `lang`."""
    if lang not in ("fr", "en"):
        raise ValueError(f"unsupported language {lang!r} (fr or en)")
    d = _Describer(invoice, lang)
    title, meta = d.title()
    parties, extra = d.parties()
    sections = [d.references(), d.lines(), d.allowances_charges(), d.vat_breakdown(),
                d.totals(), d.payment(), *d.notes()]
    seller = invoice.seller
    return Document(
        lang=lang, title=title, number=invoice.number,
        author=(seller.name or "") if seller is not None else "",
        meta=tuple((label, value) for label, value in meta if value),
        parties=parties, party_extra=extra,
        sections=tuple(section for section in sections if section is not None),
    )
