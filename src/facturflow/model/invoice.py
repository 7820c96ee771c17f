"""The EN 16931-1 semantic model of an invoice, as frozen dataclasses.

Every field carries its business term (BT-…) or business group (BG-…) id in its metadata:
`dataclasses.fields(Seller)[0].metadata["bt"] == "BT-27"`. A class used by several groups
(a postal address is BG-5 for the seller and BG-8 for the buyer) maps each group to its own term
ids: `metadata["bt"] == {"BG-5": "BT-35", "BG-8": "BT-50", ...}`; `business_term()` resolves it.

Values are typed: dates are `datetime.date`, amounts, prices, quantities, rates and percentages
are `Decimal`, coded values are `str` checked against their code list (see codelists.py), and
repeated terms are tuples. Amounts carry no currency of their own: as EN 16931-1 defines it, every
amount is in the invoice currency (BT-5), except BT-111 which is in the VAT accounting currency
(BT-6); each amount field says which in `metadata["currency"]`, and `Invoice.currency_of()`
answers it for a term.

Cardinalities are relaxed to optional where a Factur-X profile may omit a term (MINIMUM and
BASIC WL carry no lines, for instance): checking that a document is complete is the job of
`facturflow.validate`, not of the model.
"""

# term()/group() return dataclasses.field(...) with metadata, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from .codelists import check, precision_checked
from .errors import ModelError

# -- field declarations --------------------------------------------------------------------


def term(
    bt: str | dict[str, str],
    *,
    codelist: str | None = None,
    currency: str | None = None,
    required: bool = False,
) -> Any:
    """A business term field; optional (default None) unless `required`."""
    metadata: dict[str, Any] = {"bt": bt}
    if codelist:
        metadata["codelist"] = codelist
    if currency:
        metadata["currency"] = currency
    if required:
        return field(metadata=metadata)
    return field(default=None, metadata=metadata)


def group(bg: str | dict[str, str]) -> Any:
    """An optional business group field (one occurrence)."""
    return field(default=None, metadata={"bg": bg})


def groups(bg: str) -> Any:
    """A repeatable business group field (a tuple, empty by default)."""
    return field(default=(), metadata={"bg": bg, "many": True})


def terms(bt: str | dict[str, str], *, codelist: str | None = None) -> Any:
    """A repeatable business term field (a tuple, empty by default)."""
    metadata: dict[str, Any] = {"bt": bt, "many": True}
    if codelist:
        metadata["codelist"] = codelist
    return field(default=(), metadata=metadata)


def business_term(cls: type[Any], name: str, context: str | None = None) -> str:
    """The BT/BG id of field `name` of a model class, in the group `context` where shared."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            ident = f.metadata.get("bt") or f.metadata.get("bg")
            if isinstance(ident, dict):
                if context is None or context not in ident:
                    raise KeyError(f"{cls.__name__}.{name} needs one of {sorted(ident)}")
                return str(ident[context])
            return str(ident)
    raise KeyError(f"{cls.__name__} has no field {name!r}")


class Node:
    """Base of the model classes: checks every value's type (and amounts' precision and codes'
    lists) at construction, `dataclasses.replace` included, and freezes lists into tuples."""

    #: The group id of this class when it has a single one (None for shared classes).
    GROUP: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        precision = precision_checked()
        for spec in _specs(type(self)):
            value = getattr(self, spec.name)
            if spec.many:
                if isinstance(value, list):
                    value = tuple(value)
                    object.__setattr__(self, spec.name, value)
                elif not isinstance(value, tuple):
                    raise ModelError(spec.label, f"expected a tuple or list of {spec.kind_name}, "
                                                 f"got {_describe(value)}")
                items: tuple[Any, ...] = value
            elif value is None:
                if not spec.optional:
                    raise ModelError(spec.label, "is required, got None")
                continue
            else:
                items = (value,)
            for item in items:
                _check_type(spec, item, precision)
                if spec.code_list is not None:
                    check(spec.code_list, item, spec.label)


# The amounts EN 16931 allows two decimals at most (BR-DEC-01 ... BR-DEC-28); prices (BT-146,
# BT-147, BT-148), quantities and rates have no such limit.
_TWO_DECIMALS = frozenset(
    {f"BT-{n}" for n in (92, 93, 99, 100, *range(106, 118), 131, 136, 137, 141, 142)}
)


@dataclass(frozen=True, slots=True)
class _Spec:
    """What one field of a model class accepts (computed once per class)."""

    name: str
    label: str
    kind: type[Any]
    many: bool
    optional: bool
    code_list: str | None
    two_decimals: bool

    @property
    def kind_name(self) -> str:
        return _KIND_NAMES.get(self.kind, self.kind.__name__)


_KIND_NAMES = {date: "a datetime.date", Decimal: "a Decimal", str: "a str", bytes: "bytes"}
_SPECS: dict[type[Any], tuple[_Spec, ...]] = {}


def _specs(cls: type[Any]) -> tuple[_Spec, ...]:
    specs = _SPECS.get(cls)
    if specs is None:
        hints = typing.get_type_hints(cls)
        built = []
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            optional = False
            if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
                args = [a for a in typing.get_args(hint) if a is not type(None)]
                optional = len(args) < len(typing.get_args(hint))
                hint = args[0]
            many = typing.get_origin(hint) is tuple
            if many:
                hint = typing.get_args(hint)[0]
            ident = f.metadata.get("bt") or f.metadata.get("bg")
            if isinstance(ident, str):
                label = ident
                ids = {ident}
            elif isinstance(ident, dict):
                label = f"{cls.__name__}.{f.name}"
                ids = set(ident.values())
            else:
                label = f"{cls.__name__}.{f.name}"
                ids = set()
            built.append(_Spec(
                name=f.name, label=label, kind=hint, many=many, optional=optional,
                code_list=f.metadata.get("codelist"),
                two_decimals=bool(ids) and ids <= _TWO_DECIMALS,
            ))
        specs = _SPECS[cls] = tuple(built)
    return specs


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:59] + "…"
    return f"{type(value).__name__} {text}"


def _check_type(spec: _Spec, value: Any, precision: bool) -> None:
    kind = spec.kind
    if kind is date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return
        hint = ""
        if isinstance(value, str):
            hint = f" (write datetime.date.fromisoformat({value!r}))"
        elif isinstance(value, datetime):
            hint = " (write its .date(): EN 16931 dates have no time)"
        raise ModelError(spec.label, f"expected a datetime.date, got {_describe(value)}{hint}")
    if kind is Decimal:
        if not isinstance(value, Decimal):
            hint = ""
            if isinstance(value, float):
                hint = (f" (write Decimal({str(value)!r}): a float is not exact, "
                        f"0.1 + 0.2 == {0.1 + 0.2!r})")
            elif isinstance(value, int | str) and not isinstance(value, bool):
                hint = f" (write Decimal({str(value)!r}))"
            raise ModelError(spec.label, f"expected a Decimal, got {_describe(value)}{hint}")
        if not value.is_finite():
            raise ModelError(spec.label, f"expected a finite number, got {value}")
        if precision and spec.two_decimals:
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -2:
                raise ModelError(
                    spec.label,
                    f"{value} has {-exponent} decimals; EN 16931 allows at most 2 for an "
                    "amount (BR-DEC): round it, e.g. with .quantize(Decimal('0.01'))",
                )
        return
    if kind is str or kind is bytes:
        if not isinstance(value, kind):
            raise ModelError(spec.label, f"expected {spec.kind_name}, got {_describe(value)}")
        return
    if isinstance(kind, type) and not isinstance(value, kind):
        raise ModelError(spec.label, f"expected a {kind.__name__}, got {_describe(value)}")


# -- value types ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Identifier(Node):
    """An identifier with its optional scheme (the term's `-1` sub-term, e.g. BT-29-1)."""

    value: str
    scheme: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ElectronicAddress(Node):
    """An electronic address (BT-34, BT-49) with its mandatory EAS scheme (BT-34-1, BT-49-1)."""

    value: str
    scheme: str = field(metadata={"codelist": "eas", "bt": "BT-34-1/BT-49-1"})


@dataclass(frozen=True, kw_only=True, slots=True)
class ClassificationIdentifier(Node):
    """An item classification (BT-158) with its scheme (BT-158-1) and version (BT-158-2)."""

    value: str
    scheme: str | None = field(default=None, metadata={"codelist": "item_classification",
                                                        "bt": "BT-158-1"})
    version: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class BinaryObject(Node):
    """An attached document (BT-125) with its MIME code (BT-125-1) and file name (BT-125-2)."""

    content: bytes
    mime_code: str = field(metadata={"codelist": "mime", "bt": "BT-125-1"})
    filename: str = field(metadata={"bt": "BT-125-2"})


# -- groups --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Note(Node):
    """BG-1 INVOICE NOTE."""

    GROUP = "BG-1"
    subject_code: str | None = term("BT-21", codelist="text_subject")
    text: str = term("BT-22", required=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class PrecedingInvoice(Node):
    """BG-3 PRECEDING INVOICE REFERENCE."""

    GROUP = "BG-3"
    reference: str = term("BT-25", required=True)
    issue_date: date | None = term("BT-26")


@dataclass(frozen=True, kw_only=True, slots=True)
class PostalAddress(Node):
    """BG-5 / BG-8 / BG-12 / BG-15 postal address of the seller, buyer, tax representative or
    delivery place."""

    line1: str | None = term({"BG-5": "BT-35", "BG-8": "BT-50", "BG-12": "BT-64",
                              "BG-15": "BT-75"})
    line2: str | None = term({"BG-5": "BT-36", "BG-8": "BT-51", "BG-12": "BT-65",
                              "BG-15": "BT-76"})
    line3: str | None = term({"BG-5": "BT-162", "BG-8": "BT-163", "BG-12": "BT-164",
                              "BG-15": "BT-165"})
    city: str | None = term({"BG-5": "BT-37", "BG-8": "BT-52", "BG-12": "BT-66",
                             "BG-15": "BT-77"})
    post_code: str | None = term({"BG-5": "BT-38", "BG-8": "BT-53", "BG-12": "BT-67",
                                  "BG-15": "BT-78"})
    country_subdivision: str | None = term({"BG-5": "BT-39", "BG-8": "BT-54",
                                            "BG-12": "BT-68", "BG-15": "BT-79"})
    country_code: str | None = term({"BG-5": "BT-40", "BG-8": "BT-55", "BG-12": "BT-69",
                                     "BG-15": "BT-80"}, codelist="country")


@dataclass(frozen=True, kw_only=True, slots=True)
class Contact(Node):
    """BG-6 SELLER CONTACT / BG-9 BUYER CONTACT."""

    point: str | None = term({"BG-6": "BT-41", "BG-9": "BT-56"})
    telephone: str | None = term({"BG-6": "BT-42", "BG-9": "BT-57"})
    email: str | None = term({"BG-6": "BT-43", "BG-9": "BT-58"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Seller(Node):
    """BG-4 SELLER."""

    GROUP = "BG-4"
    name: str | None = term("BT-27")
    trading_name: str | None = term("BT-28")
    identifiers: tuple[Identifier, ...] = terms("BT-29")
    legal_registration_id: Identifier | None = term("BT-30")
    vat_id: str | None = term("BT-31")
    tax_registration_id: str | None = term("BT-32")
    additional_legal_information: str | None = term("BT-33")
    electronic_address: ElectronicAddress | None = term("BT-34")
    postal_address: PostalAddress | None = group("BG-5")
    contact: Contact | None = group("BG-6")

    def __post_init__(self) -> None:
        Node.__post_init__(self)
        # BT-29 order carries no meaning, but CII can only write identifiers without a scheme
        # (ram:ID) before those with one (ram:GlobalID): that order is the canonical one, so
        # that every syntax reads back an equal model.
        ordered = tuple(sorted(self.identifiers, key=lambda ident: ident.scheme is not None))
        object.__setattr__(self, "identifiers", ordered)

    @property
    def siren(self) -> str | None:
        """The SIREN (legal registration id of scheme 0002), as the French rules need it."""
        ident = self.legal_registration_id
        return ident.value if ident and ident.scheme == "0002" else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Buyer(Node):
    """BG-7 BUYER."""

    GROUP = "BG-7"
    name: str | None = term("BT-44")
    trading_name: str | None = term("BT-45")
    identifier: Identifier | None = term("BT-46")
    legal_registration_id: Identifier | None = term("BT-47")
    vat_id: str | None = term("BT-48")
    electronic_address: ElectronicAddress | None = term("BT-49")
    postal_address: PostalAddress | None = group("BG-8")
    contact: Contact | None = group("BG-9")

    @property
    def siren(self) -> str | None:
        """The SIREN (legal registration id of scheme 0002), as the French rules need it."""
        ident = self.legal_registration_id
        return ident.value if ident and ident.scheme == "0002" else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Payee(Node):
    """BG-10 PAYEE."""

    GROUP = "BG-10"
    name: str | None = term("BT-59")
    identifier: Identifier | None = term("BT-60")
    legal_registration_id: Identifier | None = term("BT-61")


@dataclass(frozen=True, kw_only=True, slots=True)
class TaxRepresentative(Node):
    """BG-11 SELLER TAX REPRESENTATIVE PARTY."""

    GROUP = "BG-11"
    name: str | None = term("BT-62")
    vat_id: str | None = term("BT-63")
    postal_address: PostalAddress | None = group("BG-12")


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery(Node):
    """BG-13 DELIVERY INFORMATION (the invoicing period BG-14 sits on the Invoice)."""

    GROUP = "BG-13"
    party_name: str | None = term("BT-70")
    location_id: Identifier | None = term("BT-71")
    actual_delivery_date: date | None = term("BT-72")
    address: PostalAddress | None = group("BG-15")


@dataclass(frozen=True, kw_only=True, slots=True)
class Period(Node):
    """BG-14 INVOICING PERIOD / BG-26 INVOICE LINE PERIOD."""

    start_date: date | None = term({"BG-14": "BT-73", "BG-26": "BT-134"})
    end_date: date | None = term({"BG-14": "BT-74", "BG-26": "BT-135"})


@dataclass(frozen=True, kw_only=True, slots=True)
class CreditTransfer(Node):
    """BG-17 CREDIT TRANSFER."""

    GROUP = "BG-17"
    account_id: str | None = term("BT-84")
    account_name: str | None = term("BT-85")
    service_provider_id: str | None = term("BT-86")


@dataclass(frozen=True, kw_only=True, slots=True)
class PaymentCard(Node):
    """BG-18 PAYMENT CARD INFORMATION."""

    GROUP = "BG-18"
    primary_account_number: str = term("BT-87", required=True)
    holder_name: str | None = term("BT-88")


@dataclass(frozen=True, kw_only=True, slots=True)
class DirectDebit(Node):
    """BG-19 DIRECT DEBIT."""

    GROUP = "BG-19"
    mandate_reference: str | None = term("BT-89")
    creditor_id: str | None = term("BT-90")
    debited_account_id: str | None = term("BT-91")


@dataclass(frozen=True, kw_only=True, slots=True)
class PaymentInstructions(Node):
    """BG-16 PAYMENT INSTRUCTIONS."""

    GROUP = "BG-16"
    means_code: str | None = term("BT-81", codelist="payment_means")
    means_text: str | None = term("BT-82")
    remittance_information: str | None = term("BT-83")
    credit_transfers: tuple[CreditTransfer, ...] = groups("BG-17")
    card: PaymentCard | None = group("BG-18")
    direct_debit: DirectDebit | None = group("BG-19")


@dataclass(frozen=True, kw_only=True, slots=True)
class AllowanceCharge(Node):
    """BG-20 DOCUMENT LEVEL ALLOWANCES, BG-21 DOCUMENT LEVEL CHARGES, BG-27 INVOICE LINE
    ALLOWANCES, BG-28 INVOICE LINE CHARGES: which one follows from the field holding it.

    The VAT fields exist at document level only; the reason code list depends on the kind
    (UNTDID 5189 for allowances, 7161 for charges) and is checked by the holder.
    """

    amount: Decimal = term({"BG-20": "BT-92", "BG-21": "BT-99", "BG-27": "BT-136",
                            "BG-28": "BT-141"}, currency="BT-5", required=True)
    base_amount: Decimal | None = term({"BG-20": "BT-93", "BG-21": "BT-100", "BG-27": "BT-137",
                                        "BG-28": "BT-142"}, currency="BT-5")
    percentage: Decimal | None = term({"BG-20": "BT-94", "BG-21": "BT-101", "BG-27": "BT-138",
                                       "BG-28": "BT-143"})
    vat_category_code: str | None = term({"BG-20": "BT-95", "BG-21": "BT-102"},
                                         codelist="vat_category")
    vat_rate: Decimal | None = term({"BG-20": "BT-96", "BG-21": "BT-103"})
    reason: str | None = term({"BG-20": "BT-97", "BG-21": "BT-104", "BG-27": "BT-139",
                               "BG-28": "BT-144"})
    reason_code: str | None = term({"BG-20": "BT-98", "BG-21": "BT-105", "BG-27": "BT-140",
                                    "BG-28": "BT-145"})


def _check_reasons(
    allowances: tuple[AllowanceCharge, ...], charges: tuple[AllowanceCharge, ...], where: str
) -> None:
    allowance_bt, charge_bt = ("BT-98", "BT-105") if where == "document" else ("BT-140", "BT-145")
    for item in allowances:
        if item.reason_code is not None:
            check("allowance_reason", item.reason_code, allowance_bt)
    for item in charges:
        if item.reason_code is not None:
            check("charge_reason", item.reason_code, charge_bt)


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentTotals(Node):
    """BG-22 DOCUMENT TOTALS."""

    GROUP = "BG-22"
    line_net_total: Decimal | None = term("BT-106", currency="BT-5")
    allowance_total: Decimal | None = term("BT-107", currency="BT-5")
    charge_total: Decimal | None = term("BT-108", currency="BT-5")
    tax_exclusive_amount: Decimal | None = term("BT-109", currency="BT-5")
    vat_total: Decimal | None = term("BT-110", currency="BT-5")
    vat_total_accounting: Decimal | None = term("BT-111", currency="BT-6")
    tax_inclusive_amount: Decimal | None = term("BT-112", currency="BT-5")
    prepaid_amount: Decimal | None = term("BT-113", currency="BT-5")
    rounding_amount: Decimal | None = term("BT-114", currency="BT-5")
    amount_due: Decimal | None = term("BT-115", currency="BT-5")


@dataclass(frozen=True, kw_only=True, slots=True)
class VatBreakdown(Node):
    """BG-23 VAT BREAKDOWN."""

    GROUP = "BG-23"
    taxable_amount: Decimal | None = term("BT-116", currency="BT-5")
    tax_amount: Decimal | None = term("BT-117", currency="BT-5")
    category_code: str = term("BT-118", codelist="vat_category", required=True)
    rate: Decimal | None = term("BT-119")
    exemption_reason: str | None = term("BT-120")
    exemption_reason_code: str | None = term("BT-121", codelist="vatex")


@dataclass(frozen=True, kw_only=True, slots=True)
class SupportingDocument(Node):
    """BG-24 ADDITIONAL SUPPORTING DOCUMENTS."""

    GROUP = "BG-24"
    reference: str = term("BT-122", required=True)
    description: str | None = term("BT-123")
    external_location: str | None = term("BT-124")
    attachment: BinaryObject | None = term("BT-125")


@dataclass(frozen=True, kw_only=True, slots=True)
class PriceDetails(Node):
    """BG-29 PRICE DETAILS."""

    GROUP = "BG-29"
    net_price: Decimal | None = term("BT-146", currency="BT-5")
    discount: Decimal | None = term("BT-147", currency="BT-5")
    gross_price: Decimal | None = term("BT-148", currency="BT-5")
    base_quantity: Decimal | None = term("BT-149")
    base_quantity_unit: str | None = term("BT-150", codelist="unit")


@dataclass(frozen=True, kw_only=True, slots=True)
class LineVat(Node):
    """BG-30 LINE VAT INFORMATION."""

    GROUP = "BG-30"
    category_code: str | None = term("BT-151", codelist="vat_category")
    rate: Decimal | None = term("BT-152")


@dataclass(frozen=True, kw_only=True, slots=True)
class ItemAttribute(Node):
    """BG-32 ITEM ATTRIBUTES."""

    GROUP = "BG-32"
    name: str = term("BT-160", required=True)
    value: str = term("BT-161", required=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class Item(Node):
    """BG-31 ITEM INFORMATION."""

    GROUP = "BG-31"
    name: str | None = term("BT-153")
    description: str | None = term("BT-154")
    seller_id: str | None = term("BT-155")
    buyer_id: str | None = term("BT-156")
    standard_id: Identifier | None = term("BT-157")
    classifications: tuple[ClassificationIdentifier, ...] = terms("BT-158")
    origin_country: str | None = term("BT-159", codelist="country")
    attributes: tuple[ItemAttribute, ...] = groups("BG-32")


@dataclass(frozen=True, kw_only=True, slots=True)
class InvoiceLine(Node):
    """BG-25 INVOICE LINE, with the EXTENDED-CTC-FR sub-line terms EXT-FR-FE-162/163 and
    multi-vendor terms EXT-FR-FE-164...181.

    BT-128 repeats: EN 16931 allows one, EXTENDED-CTC-FR multi-vendor lines carry several
    (the sub-invoice number with scheme AFL beside the object identifier)."""

    GROUP = "BG-25"
    id: str = term("BT-126", required=True)
    note: str | None = term("BT-127")
    object_ids: tuple[Identifier, ...] = terms("BT-128")
    quantity: Decimal | None = term("BT-129")
    unit_code: str | None = term("BT-130", codelist="unit")
    net_amount: Decimal | None = term("BT-131", currency="BT-5")
    order_line_reference: str | None = term("BT-132")
    accounting_reference: str | None = term("BT-133")
    period: Period | None = group("BG-26")
    allowances: tuple[AllowanceCharge, ...] = groups("BG-27")
    charges: tuple[AllowanceCharge, ...] = groups("BG-28")
    price: PriceDetails | None = group("BG-29")
    vat: LineVat | None = group("BG-30")
    item: Item | None = group("BG-31")
    # EXTENDED / EXTENDED-CTC-FR sub-lines: the parent line's BT-126 and the line's sub-type.
    parent_line_id: str | None = term("EXT-FR-FE-162")
    line_status: str | None = term("EXT-FR-FE-163", codelist="line_status")
    # EXTENDED-CTC-FR multi-vendor lines: the line's own seller and its VAT figures.
    seller_name: str | None = term("EXT-FR-FE-164")
    seller_global_id: Identifier | None = term("EXT-FR-FE-166")
    seller_legal_id: Identifier | None = term("EXT-FR-FE-167")
    seller_vat_id: str | None = term("EXT-FR-FE-168")
    seller_country: str | None = term("EXT-FR-FE-177", codelist="country")
    vat_exemption_reason: str | None = term("EXT-FR-FE-178")
    vat_date_code: str | None = term("EXT-FR-FE-180", codelist="vat_date_code")
    vat_amount: Decimal | None = term("EXT-FR-FE-181", currency="BT-5")

    def __post_init__(self) -> None:
        Node.__post_init__(self)
        _check_reasons(self.allowances, self.charges, "line")


@dataclass(frozen=True, kw_only=True, slots=True)
class Invoice(Node):
    """The EN 16931 INVOICE: BT-1 … BT-20, BG-1 … BG-25."""

    number: str = term("BT-1", required=True)
    issue_date: date = term("BT-2", required=True)
    type_code: str = term("BT-3", codelist="invoice_type", required=True)
    currency_code: str = term("BT-5", codelist="currency", required=True)
    tax_currency_code: str | None = term("BT-6", codelist="currency")
    tax_point_date: date | None = term("BT-7")
    tax_point_date_code: str | None = term("BT-8", codelist="vat_date_code")
    due_date: date | None = term("BT-9")
    buyer_reference: str | None = term("BT-10")
    project_reference: str | None = term("BT-11")
    contract_reference: str | None = term("BT-12")
    purchase_order_reference: str | None = term("BT-13")
    sales_order_reference: str | None = term("BT-14")
    receiving_advice_reference: str | None = term("BT-15")
    despatch_advice_reference: str | None = term("BT-16")
    tender_reference: str | None = term("BT-17")
    invoiced_object_id: Identifier | None = term("BT-18")
    buyer_accounting_reference: str | None = term("BT-19")
    payment_terms: str | None = term("BT-20")
    notes: tuple[Note, ...] = groups("BG-1")
    # BG-2 PROCESS CONTROL; BT-23 carries the French billing mode (cadre de facturation).
    business_process: str | None = term("BT-23")
    specification_id: str | None = term("BT-24")
    preceding_invoices: tuple[PrecedingInvoice, ...] = groups("BG-3")
    seller: Seller | None = group("BG-4")
    buyer: Buyer | None = group("BG-7")
    payee: Payee | None = group("BG-10")
    tax_representative: TaxRepresentative | None = group("BG-11")
    delivery: Delivery | None = group("BG-13")
    invoicing_period: Period | None = group("BG-14")
    payment_instructions: PaymentInstructions | None = group("BG-16")
    allowances: tuple[AllowanceCharge, ...] = groups("BG-20")
    charges: tuple[AllowanceCharge, ...] = groups("BG-21")
    totals: DocumentTotals | None = group("BG-22")
    vat_breakdown: tuple[VatBreakdown, ...] = groups("BG-23")
    supporting_documents: tuple[SupportingDocument, ...] = groups("BG-24")
    lines: tuple[InvoiceLine, ...] = groups("BG-25")

    def __post_init__(self) -> None:
        Node.__post_init__(self)
        _check_reasons(self.allowances, self.charges, "document")

    @property
    def is_credit_note(self) -> bool:
        """True for the credit note type codes (UNTDID 1001: 81, 83, 261, 262, 296, 308, 381,
        396, 420, 458, 532)."""
        return self.type_code in CREDIT_NOTE_TYPES

    @property
    def billing_mode(self) -> str | None:
        """The French billing mode (cadre de facturation: 'S1', 'B2', 'M4'...), in BT-23."""
        return self.business_process

    def currency_of(self, business_term: str) -> str | None:
        """The currency of an amount term: BT-6 for BT-111, BT-5 otherwise."""
        return self.tax_currency_code if business_term == "BT-111" else self.currency_code

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict keyed by BT/BG ids (see facturflow.model.serialize)."""
        from .serialize import to_dict

        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Invoice:
        """The inverse of to_dict(); raises ValueError on a malformed dict or a bad code."""
        from .serialize import from_dict

        return from_dict(data)

    def to_json(self, *, indent: int | None = 2) -> str:
        """to_dict() as JSON text."""
        import json

        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Invoice:
        """The inverse of to_json()."""
        import json

        return cls.from_dict(json.loads(text))


CREDIT_NOTE_TYPES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)
