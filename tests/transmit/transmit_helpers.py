"""Helpers of the transmission tests (a uniquely named module: `conftest` names collide)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from facturflow.transmit.qonto import QontoClient, QontoConfig
from facturflow.transmit.sandbox import Sandbox

DATA = Path(__file__).parent / "data"
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}


def cii_variant(number: str, *, break_totals: bool = False) -> bytes:
    """The project's own valid CII invoice with BT-1 set to `number` (and, on demand, a grand
    total that no longer adds up, a fatal BR-CO-15 finding)."""
    tree = etree.fromstring((DATA / "invoice-cii.xml").read_bytes())
    number_element = tree.find("rsm:ExchangedDocument/ram:ID", NS)
    assert number_element is not None
    number_element.text = number
    if break_totals:
        grand = tree.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/"
                          "ram:GrandTotalAmount", NS)
        assert grand is not None and grand.text is not None
        grand.text = f"{float(grand.text) + 10:.2f}"
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def make_client(box: Sandbox, **overrides: object) -> QontoClient:
    """A client on the sandbox with fast retries (tests must not sleep for seconds)."""
    values: dict[str, object] = {"base_url": box.base_url, "api_key": box.api_key,
                                 "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0}
    values.update(overrides)
    return QontoClient(QontoConfig(**values))  # type: ignore[arg-type]
