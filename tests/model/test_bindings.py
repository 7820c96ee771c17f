"""The CII and UBL bindings on hand-written documents: paths, codes, signs and the XSD."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

import facturflow
from facturflow.cli import main
from facturflow.detection import detect_bytes
from facturflow.errors import InputError
from facturflow.model import Invoice
from facturflow.syntax import BindingError, read_tree, to_xml
from facturflow.validation import validate

CII_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice
  xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
 <rsm:ExchangedDocumentContext>
  <ram:BusinessProcessSpecifiedDocumentContextParameter><ram:ID>B1</ram:ID>
  </ram:BusinessProcessSpecifiedDocumentContextParameter>
  <ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017</ram:ID>
  </ram:GuidelineSpecifiedDocumentContextParameter>
 </rsm:ExchangedDocumentContext>
 <rsm:ExchangedDocument>
  <ram:ID>FA-2026-001</ram:ID><ram:TypeCode>381</ram:TypeCode>
  <ram:IssueDateTime><udt:DateTimeString format="102">20260105</udt:DateTimeString>
  </ram:IssueDateTime>
  <ram:IncludedNote><ram:Content>Avoir sur FA-2025-999</ram:Content>
   <ram:SubjectCode>AAI</ram:SubjectCode></ram:IncludedNote>
 </rsm:ExchangedDocument>
 <rsm:SupplyChainTradeTransaction>
  <ram:IncludedSupplyChainTradeLineItem>
   <ram:AssociatedDocumentLineDocument><ram:LineID>1</ram:LineID>
   </ram:AssociatedDocumentLineDocument>
   <ram:SpecifiedTradeProduct><ram:Name>Conseil</ram:Name></ram:SpecifiedTradeProduct>
   <ram:SpecifiedLineTradeAgreement>
    <ram:NetPriceProductTradePrice><ram:ChargeAmount>100.00</ram:ChargeAmount>
    </ram:NetPriceProductTradePrice>
   </ram:SpecifiedLineTradeAgreement>
   <ram:SpecifiedLineTradeDelivery>
    <ram:BilledQuantity unitCode="HUR">2</ram:BilledQuantity>
   </ram:SpecifiedLineTradeDelivery>
   <ram:SpecifiedLineTradeSettlement>
    <ram:ApplicableTradeTax><ram:TypeCode>VAT</ram:TypeCode><ram:CategoryCode>S</ram:CategoryCode>
     <ram:RateApplicablePercent>20</ram:RateApplicablePercent></ram:ApplicableTradeTax>
    <ram:SpecifiedTradeSettlementLineMonetarySummation>
     <ram:LineTotalAmount>200.00</ram:LineTotalAmount>
    </ram:SpecifiedTradeSettlementLineMonetarySummation>
   </ram:SpecifiedLineTradeSettlement>
  </ram:IncludedSupplyChainTradeLineItem>
  <ram:ApplicableHeaderTradeAgreement>
   <ram:SellerTradeParty>
    <ram:ID>CLIENT-42</ram:ID>
    <ram:GlobalID schemeID="0009">12345678200010</ram:GlobalID>
    <ram:Name>Vendeur SAS</ram:Name>
    <ram:SpecifiedLegalOrganization><ram:ID schemeID="0002">123456782</ram:ID>
    </ram:SpecifiedLegalOrganization>
    <ram:PostalTradeAddress><ram:PostcodeCode>75001</ram:PostcodeCode>
     <ram:CityName>Paris</ram:CityName><ram:CountryID>FR</ram:CountryID></ram:PostalTradeAddress>
    <ram:URIUniversalCommunication><ram:URIID schemeID="0225">123456782</ram:URIID>
    </ram:URIUniversalCommunication>
    <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">FR32123456782</ram:ID>
    </ram:SpecifiedTaxRegistration>
   </ram:SellerTradeParty>
   <ram:BuyerTradeParty><ram:Name>Acheteur SA</ram:Name>
    <ram:URIUniversalCommunication><ram:URIID schemeID="0225">987654321</ram:URIID>
    </ram:URIUniversalCommunication>
   </ram:BuyerTradeParty>
  </ram:ApplicableHeaderTradeAgreement>
  <ram:ApplicableHeaderTradeDelivery/>
  <ram:ApplicableHeaderTradeSettlement>
   <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
   <ram:ApplicableTradeTax><ram:CalculatedAmount>40.00</ram:CalculatedAmount>
    <ram:TypeCode>VAT</ram:TypeCode><ram:BasisAmount>200.00</ram:BasisAmount>
    <ram:CategoryCode>S</ram:CategoryCode><ram:DueDateTypeCode>72</ram:DueDateTypeCode>
    <ram:RateApplicablePercent>20</ram:RateApplicablePercent></ram:ApplicableTradeTax>
   <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    <ram:LineTotalAmount>200.00</ram:LineTotalAmount>
    <ram:TaxBasisTotalAmount>200.00</ram:TaxBasisTotalAmount>
    <ram:TaxTotalAmount currencyID="EUR">40.00</ram:TaxTotalAmount>
    <ram:GrandTotalAmount>240.00</ram:GrandTotalAmount>
    <ram:DuePayableAmount>240.00</ram:DuePayableAmount>
   </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
   <ram:InvoiceReferencedDocument><ram:IssuerAssignedID>FA-2025-999</ram:IssuerAssignedID>
   </ram:InvoiceReferencedDocument>
  </ram:ApplicableHeaderTradeSettlement>
 </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
"""


@pytest.fixture
def cii_credit_note() -> Invoice:
    document = detect_bytes(CII_HEAD.encode(), name="credit-note.xml")
    return read_tree(document.tree, document.syntax)


def test_cii_terms_land_where_cen_ts_16931_3_3_puts_them(cii_credit_note: Invoice) -> None:
    invoice = cii_credit_note
    assert (invoice.number, invoice.type_code, invoice.issue_date) == (
        "FA-2026-001", "381", date(2026, 1, 5))
    assert invoice.business_process == "B1"
    assert invoice.notes[0].subject_code == "AAI"
    assert invoice.tax_point_date_code == "432"  # CII 72 is UNTDID 2005 432 (paid to date)
    seller = invoice.seller
    assert seller is not None and seller.siren == "123456782"
    assert [(i.value, i.scheme) for i in seller.identifiers] == [
        ("CLIENT-42", None), ("12345678200010", "0009")]
    assert seller.electronic_address is not None
    assert seller.electronic_address.scheme == "0225"
    assert invoice.totals is not None and invoice.totals.vat_total == Decimal("40.00")
    assert invoice.preceding_invoices[0].reference == "FA-2025-999"
    line = invoice.lines[0]
    assert (line.quantity, line.unit_code, line.net_amount) == (Decimal(2), "HUR",
                                                                Decimal("200.00"))


def test_a_credit_note_becomes_a_ubl_creditnote_with_the_same_signs(
    cii_credit_note: Invoice,
) -> None:
    xml = to_xml(cii_credit_note, "ubl")
    root = etree.fromstring(xml)
    ns = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
          "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"}
    assert etree.QName(root).localname == "CreditNote"
    assert root.findtext("cbc:CreditNoteTypeCode", namespaces=ns) == "381"
    assert root.findtext("cac:CreditNoteLine/cbc:CreditedQuantity", namespaces=ns) == "2"
    assert root.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=ns) == "240.00"
    payable = root.find("cac:LegalMonetaryTotal/cbc:PayableAmount", ns)
    assert payable is not None and payable.get("currencyID") == "EUR"
    document = detect_bytes(xml, name="as-ubl.xml")
    assert document.syntax == "ubl-creditnote"
    assert read_tree(document.tree, document.syntax) == cii_credit_note


@pytest.mark.parametrize("syntax", ["cii", "ubl"])
def test_written_documents_pass_the_syntax_schema(cii_credit_note: Invoice, syntax: str) -> None:
    xml = to_xml(cii_credit_note, syntax)  # type: ignore[arg-type]
    report = validate(detect_bytes(xml, name=f"written.{syntax}"), rules="xsd")
    assert [f for f in report.findings if f.severity == "fatal"] == []


def test_read_accepts_paths_bytes_and_factur_x_pdfs(cii_credit_note: Invoice,
                                                     tmp_path: Path) -> None:
    from facturflow.facturx import build_facturx

    path = tmp_path / "credit-note.xml"
    path.write_bytes(CII_HEAD.encode())
    assert facturflow.read(path) == cii_credit_note
    assert facturflow.read(CII_HEAD.encode()) == cii_credit_note
    pdf = build_facturx(CII_HEAD.encode(), invoice=cii_credit_note, profile="en16931")
    assert facturflow.read(pdf) == cii_credit_note


def test_read_names_the_business_term_of_a_bad_value() -> None:
    broken = CII_HEAD.replace("<ram:InvoiceCurrencyCode>EUR", "<ram:InvoiceCurrencyCode>EURO")
    with pytest.raises(InputError, match="BT-5"):
        facturflow.read(broken.encode())
    assert facturflow.read(broken.encode(), check_codes=False).currency_code == "EURO"
    bad_date = CII_HEAD.replace(">20260105<", ">2026-01-05<")
    with pytest.raises(InputError, match="BT-2"):
        facturflow.read(bad_date.encode())


def test_cli_read_prints_json_keyed_by_term_and_a_text_summary(tmp_path: Path) -> None:
    path = tmp_path / "credit-note.xml"
    path.write_bytes(CII_HEAD.encode())
    runner = CliRunner()
    result = runner.invoke(main, ["read", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert Invoice.from_json(result.output).number == "FA-2026-001"
    result = runner.invoke(main, ["read", str(path)])
    assert result.exit_code == 0
    assert "Credit note FA-2026-001" in result.output and "SIREN 123456782" in result.output
    missing = runner.invoke(main, ["read", str(tmp_path / "nope.xml")])
    assert missing.exit_code == 2


@pytest.mark.parametrize(
    ("fixture", "path", "term"),
    [
        ("fr-invoice-ubl-en16931.xml", "{*}TaxTotal/{*}TaxAmount", "BT-110"),
        ("fr-invoice-ubl-en16931.xml", "{*}LegalMonetaryTotal/{*}TaxExclusiveAmount", "BT-109"),
        ("fr-invoice-en16931.xml", ".//{*}SpecifiedTradeSettlementHeaderMonetarySummation"
         "/{*}TaxTotalAmount", "BT-110"),
    ],
)
@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf"])
def test_every_amount_reader_refuses_non_finite_numbers(
    fixture: str, path: str, term: str, bad: str
) -> None:
    # BT-110 is read by custom readers, not the generic binding: same rule for both.
    tree = etree.parse(str(Path(__file__).parents[2] / "fixtures" / "valid" / fixture))
    element = tree.getroot().find(path)
    assert element is not None
    element.text = bad
    syntax = "ubl-invoice" if "ubl" in fixture else "cii"
    with pytest.raises(BindingError) as refused:
        read_tree(tree, syntax)
    assert term in str(refused.value) and "finite" in str(refused.value)


def test_a_model_refusal_while_reading_names_its_business_term() -> None:
    # Invoices, groups and compound values are built by one _built: the model's own refusal
    # keeps its term; a missing argument is the binding's term with what Python says.
    from facturflow.model import PaymentCard
    from facturflow.syntax._engine import _built, build_invoice

    with pytest.raises(BindingError, match=r"BT-1\.\.BT-5.*a mandatory term is missing"):
        build_invoice({})
    with pytest.raises(BindingError, match=r"BG-18.*incomplete group: .*primary_account_number"):
        _built(PaymentCard, {"holder_name": "A"}, "BG-18", "incomplete group")
    with pytest.raises(BindingError) as refused:
        _built(PaymentCard, {"primary_account_number": 1234}, "BG-18", "incomplete group")
    assert refused.value.business_term == "BT-87"
