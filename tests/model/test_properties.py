"""Property tests: random invoices survive JSON, CII and UBL, and the syntaxes agree."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from facturflow.detection import detect_bytes
from facturflow.model import Invoice
from facturflow.model.implied import canonical
from facturflow.syntax import read_tree, to_xml

from .strategies import invoices

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _through(invoice: Invoice, syntax: str) -> Invoice:
    xml = to_xml(invoice, syntax)  # type: ignore[arg-type]
    document = detect_bytes(xml, name=f"generated.{syntax}.xml")  # parsed like any input
    return read_tree(document.tree, document.syntax)


@SETTINGS
@given(invoices())
def test_json_round_trip_gives_an_equal_invoice(invoice: Invoice) -> None:
    assert Invoice.from_json(invoice.to_json()) == invoice


# Each syntax carries an invoice's canonical form (facturflow.model.implied: implied BT-148 and
# BT-110 explicit, a BT-6 equal to BT-5 left out) exactly; any invoice comes back with the same
# canonical form, so only implied terms may turn explicit or implicit on the way. An invoice
# already in canonical form (most generated ones) must come back strictly equal.


def _carried(invoice: Invoice, through: tuple[str, ...]) -> None:
    back = invoice
    for syntax in through:
        back = _through(back, syntax)
    assert canonical(back) == canonical(invoice)
    exact = canonical(invoice)
    for syntax in through:
        exact = _through(exact, syntax)
    assert exact == canonical(invoice)
    if canonical(invoice) == invoice:
        assert back == invoice


@SETTINGS
@given(invoices())
def test_cii_write_then_read_gives_an_equal_invoice(invoice: Invoice) -> None:
    _carried(invoice, ("cii",))


@SETTINGS
@given(invoices())
def test_ubl_write_then_read_gives_an_equal_invoice(invoice: Invoice) -> None:
    _carried(invoice, ("ubl",))


@SETTINGS
@given(invoices())
def test_ubl_invoice_document_carries_credit_note_codes_too(invoice: Invoice) -> None:
    # A UBL Invoice document (not CreditNote) whatever the type code: same model back.
    _carried(invoice, ("ubl-invoice",))


@SETTINGS
@given(invoices())
def test_ubl_to_cii_to_model_equals_the_model(invoice: Invoice) -> None:
    _carried(invoice, ("ubl", "cii"))


@SETTINGS
@given(invoices())
def test_cii_to_ubl_to_model_equals_the_model(invoice: Invoice) -> None:
    _carried(invoice, ("cii", "ubl"))


def test_note_subject_codes_with_digits_survive_ubl() -> None:
    # UNTDID 4451 has GS7: the UBL "#CODE#text" convention must accept digits in the code.
    from facturflow.syntax import ubl

    pattern = ubl._NOTE
    match = pattern.fullmatch("#GS7#0")
    assert match is not None and match.group(1) == "GS7"
