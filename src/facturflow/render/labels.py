"""The words of the rendered invoice, in French and English, and how numbers and dates read.

Codes read as words: `name("unit", "HUR", "fr") == "heure"`, from codenames.json (UN/ECE
Recommendations 20 and 21, UNTDID 4461, 4451, 1001, 5189, 7161, UNCL 5305, VATEX); a code the
data has no words for shows as itself.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Final, Literal

Language = Literal["fr", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("fr", "en")

TEXT: Final[dict[str, dict[Language, str]]] = {
    "invoice": {"fr": "Facture", "en": "Invoice"},
    "credit_note": {"fr": "Avoir", "en": "Credit note"},
    "number": {"fr": "N°", "en": "No."},
    "issue_date": {"fr": "Date d'émission", "en": "Issue date"},
    "due_date": {"fr": "Date d'échéance", "en": "Due date"},
    "tax_point_date": {"fr": "Date d'exigibilité de la TVA", "en": "VAT point date"},
    "currency": {"fr": "Devise", "en": "Currency"},
    "type": {"fr": "Type", "en": "Type"},
    "seller": {"fr": "Vendeur", "en": "Seller"},
    "buyer": {"fr": "Acheteur", "en": "Buyer"},
    "payee": {"fr": "Bénéficiaire du paiement", "en": "Payee"},
    "tax_representative": {"fr": "Représentant fiscal", "en": "Tax representative"},
    "vat_id": {"fr": "N° TVA", "en": "VAT ID"},
    "legal_id": {"fr": "Immatriculation", "en": "Registration"},
    "siren": {"fr": "SIREN", "en": "SIREN"},
    "tax_registration": {"fr": "N° fiscal", "en": "Tax registration"},
    "identifier": {"fr": "Identifiant", "en": "Identifier"},
    "electronic_address": {"fr": "Adresse électronique", "en": "Electronic address"},
    "contact": {"fr": "Contact", "en": "Contact"},
    "references": {"fr": "Références", "en": "References"},
    "buyer_reference": {"fr": "Référence acheteur", "en": "Buyer reference"},
    "purchase_order": {"fr": "Bon de commande", "en": "Purchase order"},
    "sales_order": {"fr": "Commande client", "en": "Sales order"},
    "contract": {"fr": "Contrat", "en": "Contract"},
    "project": {"fr": "Projet", "en": "Project"},
    "despatch_advice": {"fr": "Avis d'expédition", "en": "Despatch advice"},
    "receiving_advice": {"fr": "Avis de réception", "en": "Receiving advice"},
    "tender": {"fr": "Appel d'offres / lot", "en": "Tender or lot"},
    "preceding_invoice": {"fr": "Facture antérieure", "en": "Preceding invoice"},
    "billing_mode": {"fr": "Cadre de facturation", "en": "Billing framework"},
    "period": {"fr": "Période de facturation", "en": "Invoicing period"},
    "delivery": {"fr": "Livraison", "en": "Delivery"},
    "delivery_date": {"fr": "Date de livraison", "en": "Delivery date"},
    "lines": {"fr": "Lignes de facture", "en": "Invoice lines"},
    "col_line": {"fr": "#", "en": "#"},
    "col_item": {"fr": "Désignation", "en": "Description"},
    "col_quantity": {"fr": "Quantité", "en": "Quantity"},
    "col_unit": {"fr": "Unité", "en": "Unit"},
    "col_price": {"fr": "Prix unit. HT", "en": "Unit price"},
    "col_vat": {"fr": "TVA", "en": "VAT"},
    "col_net": {"fr": "Montant HT", "en": "Net amount"},
    "allowance": {"fr": "Remise", "en": "Allowance"},
    "charge": {"fr": "Frais", "en": "Charge"},
    "allowances_charges": {"fr": "Remises et frais", "en": "Allowances and charges"},
    "vat_breakdown": {"fr": "Ventilation de la TVA", "en": "VAT breakdown"},
    "col_category": {"fr": "Catégorie", "en": "Category"},
    "col_rate": {"fr": "Taux", "en": "Rate"},
    "col_base": {"fr": "Base HT", "en": "Taxable amount"},
    "col_tax": {"fr": "Montant TVA", "en": "VAT amount"},
    "col_exemption": {"fr": "Motif d'exonération", "en": "Exemption reason"},
    "totals": {"fr": "Totaux", "en": "Totals"},
    "line_total": {"fr": "Total des lignes HT", "en": "Sum of line net amounts"},
    "allowance_total": {"fr": "Total des remises", "en": "Allowances"},
    "charge_total": {"fr": "Total des frais", "en": "Charges"},
    "total_excl": {"fr": "Total HT", "en": "Total excluding VAT"},
    "total_vat": {"fr": "Total TVA", "en": "Total VAT"},
    "total_vat_accounting": {
        "fr": "Total TVA (devise comptable)",
        "en": "Total VAT (accounting currency)",
    },
    "total_incl": {"fr": "Total TTC", "en": "Total including VAT"},
    "prepaid": {"fr": "Déjà payé", "en": "Paid amount"},
    "rounding": {"fr": "Arrondi", "en": "Rounding"},
    "amount_due": {"fr": "Net à payer", "en": "Amount due"},
    "payment": {"fr": "Paiement", "en": "Payment"},
    "payment_means": {"fr": "Moyen de paiement", "en": "Payment means"},
    "payment_terms": {"fr": "Conditions de paiement", "en": "Payment terms"},
    "remittance": {"fr": "Référence de paiement", "en": "Remittance information"},
    "iban": {"fr": "IBAN / compte", "en": "IBAN / account"},
    "account_name": {"fr": "Titulaire du compte", "en": "Account name"},
    "bic": {"fr": "BIC", "en": "BIC"},
    "card": {"fr": "Carte", "en": "Card"},
    "mandate": {"fr": "Mandat de prélèvement", "en": "Direct debit mandate"},
    "creditor_id": {"fr": "ICS du créancier", "en": "Creditor identifier"},
    "debited_account": {"fr": "Compte débité", "en": "Debited account"},
    "notes": {"fr": "Notes", "en": "Notes"},
    "note": {"fr": "Note", "en": "Note"},
    "per": {"fr": "par", "en": "per"},
    "object_id": {"fr": "Objet facturé", "en": "Invoiced object"},
    "accounting_reference": {"fr": "Référence comptable acheteur",
                             "en": "Buyer accounting reference"},
    "documents": {"fr": "Documents joints", "en": "Supporting documents"},
    "page": {"fr": "Page {page} sur {pages}", "en": "Page {page} of {pages}"},
    "footer": {
        "fr": "Facture électronique Factur-X : le fichier factur-x.xml joint fait foi.",
        "en": "Factur-X e-invoice: the attached factur-x.xml file is the invoice of record.",
    },
    "footer_view": {
        "fr": "Vue lisible d'une facture électronique : le fichier d'origine fait foi.",
        "en": "Readable view of an e-invoice: the original file is the invoice of record.",
    },
    "footer_data": {
        "fr": "Facture Factur-X : ce document PDF fait foi ; factur-x.xml en reprend les données.",
        "en": "Factur-X invoice: this PDF is the invoice of record; factur-x.xml carries its data.",
    },
}

CodeNames = dict[str, dict[Language, str]]


@cache
def _code_names() -> dict[str, CodeNames]:
    """The words for each code list's codes (codenames.json: data, so adding words needs no
    code change)."""
    raw = json.loads(resources.files(__package__).joinpath("codenames.json").read_text("utf-8"))
    return {key: value for key, value in raw.items() if not key.startswith("_")}


def names(code_list: str) -> CodeNames:
    """The words of one code list: code -> {"fr": ..., "en": ...} (see codenames.json)."""
    return _code_names()[code_list]


def name(code_list: str, code: str | None, lang: Language) -> str:
    """What `code` of `code_list` means in `lang` ('C62' -> 'unité'); the code itself when the
    list has no words for it, '' for None."""
    if code is None:
        return ""
    words = names(code_list).get(code) or names(code_list).get(code.upper())
    return words[lang] if words else code


_MONTHS_EN: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                     "Nov", "Dec")


def text(key: str, lang: Language) -> str:
    """The label `key` in `lang`."""
    return TEXT[key][lang]


def format_date(value: date | None, lang: Language) -> str:
    """31/01/2026 in French, 31 Jan 2026 in English."""
    if value is None:
        return ""
    if lang == "fr":
        return value.strftime("%d/%m/%Y")
    return f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}"


def format_number(
    value: Decimal | None, lang: Language, *, places: int | None = 2, min_places: int = 0
) -> str:
    """1 234,56 in French (narrow no-break space), 1,234.56 in English.

    `places` rounds half-up for display (amounts: 2); None keeps the value's own decimals, with
    trailing zeros dropped (quantities, prices and rates keep the precision they were given),
    but at least `min_places` decimals.
    """
    if value is None:
        return ""
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    else:
        value = value.normalize()
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent > -min_places:  # 1E+2 -> 100
            value = value.quantize(Decimal(1).scaleb(-min_places))
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):f}"
    whole, _, fraction = digits.partition(".")
    group_sep, decimal_sep = ("\u202f", ",") if lang == "fr" else (",", ".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    result = group_sep.join(groups)
    if fraction:
        result += decimal_sep + fraction
    return sign + result


def format_amount(value: Decimal | None, currency: str | None, lang: Language) -> str:
    """An amount with its currency code: '1 234,56 EUR'."""
    if value is None:
        return ""
    number = format_number(value, lang)
    return f"{number} {currency}" if currency else number


def format_percent(value: Decimal | None, lang: Language) -> str:
    """A rate: '20 %' in French, '20%' in English."""
    if value is None:
        return ""
    number = format_number(value, lang, places=None)
    return f"{number}\u202f%" if lang == "fr" else f"{number}%"
