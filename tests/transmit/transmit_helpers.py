"""Helpers of the transmission tests (a uniquely named module: `conftest` names collide)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from lxml import etree

from facturflow.cli import main
from facturflow.transmit.qonto import QontoClient, QontoConfig
from facturflow.transmit.sandbox import Sandbox

DATA = Path(__file__).parent / "data"
# The variables that would point the CLI elsewhere than the test's sandbox (or change what it
# does): the `box` fixture removes them all.
QONTO_VARS = ("QONTO_BASE_URL", "QONTO_API_KEY", "QONTO_ACCESS_TOKEN", "QONTO_REFRESH_TOKEN",
              "QONTO_CLIENT_ID", "QONTO_CLIENT_SECRET", "QONTO_STAGING_TOKEN", "QONTO_TOKEN_FILE",
              "QONTO_PARTNER_ID", "QONTO_PARTNER_TOKEN", "FACTURFLOW_STATE",
              "FACTURFLOW_SANDBOX_OUTCOME", "FACTURFLOW_LOOKBACK_DAYS")
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


def write_invoices(folder: Path, *numbers: str) -> list[Path]:
    """One valid CII invoice file per number in `folder` (created when missing)."""
    folder.mkdir(exist_ok=True)
    paths = []
    for number in numbers:
        path = folder / f"{number}.xml"
        path.write_bytes(cii_variant(number))
        paths.append(path)
    return paths


def run(*args: str, stdin: str | None = None) -> Result:
    """`facturflow ARGS` in process; an exception it raises is kept in `result.exception`."""
    return CliRunner().invoke(main, list(args), input=stdin)


def run_raising(*args: str) -> Result:
    """`facturflow ARGS` in process; an exception it raises fails the test with its traceback."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def sent(box: Sandbox, tmp_path: Path, number: str, outcome: str = "delivered") -> str:
    """The state folder after `send` of invoice `number`, to which `box` answers `outcome`."""
    box.set_outcome(number, outcome)
    source = tmp_path / f"{number}.xml"
    source.write_bytes(cii_variant(number))
    state = str(tmp_path / "state")
    result = run("send", str(source), "--upload", "xml", "--state", state)
    assert result.exit_code == 0, result.output
    return state
