"""Issue 11, attacked: "facturflow never sends an invoice twice nor loses one", tried the way a
stranger would break it (a credit note under an invoice's number, an issue date older than any
window, the listing's page edges and failures, a run interrupted between import and send whose
state is then lost). Every test runs against the real sandbox."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facturflow import exitcodes
from facturflow.transmit.pipeline import SendOptions, send_invoices
from facturflow.transmit.qonto import QontoClient, UploadFile
from facturflow.transmit.sandbox import Sandbox

from .dedup_helpers import ISSUED, other_bytes, other_content, send_json, spy_listings
from .transmit_helpers import cii_variant, make_client, write_invoices
from .transmit_helpers import run_raising as run

pytestmark = pytest.mark.usefixtures("own_home")


def credit_note(number: str) -> bytes:
    """A valid credit note (BT-3 381) numbered `number` with the very date and amounts of
    cii_variant(number): only its type tells it from the invoice."""
    data = cii_variant(number).replace(b"<ram:TypeCode>380</ram:TypeCode>",
                                       b"<ram:TypeCode>381</ram:TypeCode>", 1)
    reference = (b"<ram:InvoiceReferencedDocument><ram:IssuerAssignedID>EARLIER-1"
                 b"</ram:IssuerAssignedID><ram:FormattedIssueDateTime>"
                 b'<qdt:DateTimeString format="102">20260201</qdt:DateTimeString>'
                 b"</ram:FormattedIssueDateTime></ram:InvoiceReferencedDocument>"
                 b"</ram:ApplicableHeaderTradeSettlement>")
    changed = data.replace(b"</ram:ApplicableHeaderTradeSettlement>", reference, 1)
    assert changed.count(b"381") == 1 and changed != data
    return changed


# -- a credit note is not the invoice whose number it carries --------------------------------

def test_a_credit_note_under_an_invoice_number_is_never_reported_sent(
    box: Sandbox, tmp_path: Path
) -> None:
    invoice, note = tmp_path / "invoice.xml", tmp_path / "note.xml"
    invoice.write_bytes(cii_variant("CN-1"))
    note.write_bytes(credit_note("CN-1"))
    code, _ = send_json(invoice, tmp_path / "one")
    assert code == 0
    (sent,) = box.client_invoices()
    # Same number, date, currency and amounts: before, a lost state adopted the invoice for
    # the credit note and said "already sent" (exit 0), and the credit note never left.
    for state, dry in ((tmp_path / "two", ["--dry-run"]), (tmp_path / "two", []),
                       (tmp_path / "one", [])):
        code, (outcome,) = send_json(note, state, *dry)
        assert code == exitcodes.INVALID, (state, dry, outcome)
        assert outcome["outcome"] == "failed", outcome
        assert "document type (BT-3) 381 here, 380" in outcome["reason"], outcome["reason"]
        assert "a credit note takes a number of its own" in outcome["reason"]
    assert [i["id"] for i in box.client_invoices()] == [sent["id"]]
    assert [c["submissions"] for c in box.counters().values()] == [1]
    # The invoice itself, from a fresh state, is still recognised (and not sent again).
    code, (again,) = send_json(invoice, tmp_path / "three")
    assert code == 0 and again["outcome"] == "already_sent"
    assert again["invoice_id"] == sent["id"]


def test_a_credit_note_is_not_adopted_for_an_invoice_library(
    sandbox: Sandbox, client: QontoClient, tmp_path: Path
) -> None:
    note, invoice = tmp_path / "note.xml", tmp_path / "invoice.xml"
    note.write_bytes(credit_note("CN-2"))
    invoice.write_bytes(cii_variant("CN-2"))
    options = SendOptions(upload="xml")
    assert send_invoices([note], client, tmp_path / "a", options).count("sent") == 1
    summary = send_invoices([invoice], client, tmp_path / "b", options)
    (outcome,) = summary.outcomes
    assert outcome.kind == "failed" and "380 here, 381" in str(outcome.reason)
    assert len(sandbox.client_invoices()) == 1


# -- the window ----------------------------------------------------------------------------------

def test_an_issue_date_older_than_any_window_does_not_stop_the_run(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Year 1 is a valid EN 16931 date (only the French rules want 2000-2099): the window was
    # widened back to it, before datetime's range: OverflowError, a traceback, nothing sent.
    source = tmp_path / "old.xml"
    source.write_bytes(cii_variant("ANCIENT-1").replace(
        ISSUED, b'<udt:DateTimeString format="102">00010101<', 1))
    seen = spy_listings(monkeypatch)
    for dry in (["--dry-run"], []):
        code, (outcome,) = send_json(source, tmp_path / "s", "--rules", "en16931", *dry)
        assert code == 0, outcome
    assert outcome["outcome"] == "sent"
    starts = [params["filter[created_at_from]"] for params in seen]
    assert starts and all(start >= "1999-12-30" for start in starts), starts
    # Its state lost, the run finds it at Qonto all the same.
    code, (again,) = send_json(source, tmp_path / "fresh", "--rules", "en16931")
    assert code == 0 and again["outcome"] == "already_sent"
    assert [c["submissions"] for c in box.counters().values()] == [1]


# -- the listing: page edges, failures --------------------------------------------------------

def _import(client: QontoClient, folder: Path, numbers: list[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for start in range(0, len(numbers), 5):
        batch = numbers[start:start + 5]
        files = [UploadFile.from_path(path) for path in write_invoices(folder, *batch)]
        for imported, number in zip(client.import_client_invoices(files), batch, strict=True):
            ids[number] = imported.invoice_id
    return ids


@pytest.mark.slow
def test_the_number_is_found_on_the_last_page_at_100_and_101_invoices(
    box: Sandbox, tmp_path: Path
) -> None:
    numbers = [f"PAGE-{n:03d}" for n in range(101)]
    with make_client(box) as qonto:
        ids = _import(qonto, tmp_path / "imported", numbers[:100])
        box.advance(1)  # the 101st, created after the others: alone on page 2
        ids.update(_import(qonto, tmp_path / "imported", numbers[100:]))
    for number in (numbers[99], numbers[100]):  # last of page 1, only one of page 2
        source = tmp_path / f"{number}.xml"
        source.write_bytes(other_bytes(number))
        code, (outcome,) = send_json(source, tmp_path / f"state-{number}")
        assert code == 0, outcome
        assert outcome["outcome"] == "sent" and outcome["invoice_id"] == ids[number]
    assert len(box.client_invoices()) == 101


def _listing(client: QontoClient, before_page_2: Any) -> None:
    """Make `client`'s listing call `before_page_2()` once the first page is read."""
    real = client.iter_client_invoices

    def listing(**params: Any) -> Iterator[dict[str, Any]]:
        for count, invoice in enumerate(real(**params), 1):
            yield invoice
            if count == params.get("per_page", 100):
                before_page_2()

    client.iter_client_invoices = listing  # type: ignore[method-assign]


@pytest.mark.slow
def test_a_listing_failing_midway_imports_nothing_then_a_rerun_adopts(
    box: Sandbox, tmp_path: Path
) -> None:
    numbers = [f"MID-{n:03d}" for n in range(101)]
    with make_client(box) as qonto:
        ids = _import(qonto, tmp_path / "imported", numbers)
    source = tmp_path / "late.xml"
    source.write_bytes(other_bytes(numbers[-1]))  # on page 2
    options = SendOptions(upload="xml")
    with make_client(box, max_retries=0) as qonto:
        _listing(qonto, lambda: box.fail_next(1, "500"))
        (outcome,) = send_invoices([source], qonto, tmp_path / "s", options).outcomes
    assert outcome.kind == "failed" and "cannot ask Qonto" in str(outcome.reason)
    assert len(box.client_invoices()) == 101
    with make_client(box) as qonto:  # 5xx twice, then an answer: retried, then adopted
        _listing(qonto, lambda: box.fail_next(2, "503"))
        (outcome,) = send_invoices([source], qonto, tmp_path / "s", options).outcomes
    assert outcome.kind == "sent" and outcome.invoice_id == ids[numbers[-1]]
    assert len(box.client_invoices()) == 101
    assert box.counters()[ids[numbers[-1]]]["submissions"] == 1


# -- interrupted between import and send, then the state lost ---------------------------------

def test_interrupted_after_the_import_then_state_lost_sends_exactly_once(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "a.xml"
    source.write_bytes(cii_variant("INT-1"))
    state = tmp_path / "state"

    def interrupted(self: QontoClient, invoice_id: str) -> None:
        raise KeyboardInterrupt

    with make_client(box) as qonto, monkeypatch.context() as patch:
        patch.setattr(QontoClient, "send_by_einvoice", interrupted)
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the moment before the send
            send_invoices([source], qonto, state, SendOptions())  # Factur-X, converted
    (imported,) = box.client_invoices()
    assert box.counters()[imported["id"]]["calls"] == 0
    shutil.rmtree(state)  # the state is lost
    result = run("send", str(source), "--state", str(state), "--format", "json")
    assert result.exit_code == 0, result.output  # Factur-X again: a new conversion
    (outcome,) = json.loads(result.stdout)["invoices"]
    assert outcome["outcome"] == "sent" and outcome["invoice_id"] == imported["id"]
    shutil.rmtree(state)
    result = run("send", str(source), "--state", str(state), "--format", "json")
    (outcome,) = json.loads(result.stdout)["invoices"]
    assert outcome["outcome"] == "already_sent"
    assert box.counters() == {imported["id"]: {"number": "INT-1", "calls": 1,
                                               "submissions": 1}}


# -- two senders at once, from two state folders ----------------------------------------------

@pytest.mark.parametrize("listing", [1, 2])
def test_a_number_that_reaches_qonto_during_the_run_is_not_imported_again(
    box: Sandbox, tmp_path: Path, listing: int
) -> None:
    # Another machine imports the same invoice (other bytes) while this run goes: right after
    # the listing of Qonto's numbers (1), or after the check before the previous import (2).
    # With one listing per run, this run imported it a second time.
    mine, theirs = tmp_path / "mine.xml", tmp_path / "theirs.xml"
    mine.write_bytes(cii_variant("RACE-1"))
    theirs.write_bytes(other_bytes("RACE-1"))
    early = tmp_path / "early.xml"  # admitted and imported first
    early.write_bytes(cii_variant("RACE-0"))
    options = SendOptions(upload="xml", batch_size=1)
    competitor: list[str] = []
    with make_client(box) as qonto, make_client(box) as other:
        real = qonto.iter_client_invoices
        calls: list[int] = []

        def spy(**params: Any) -> Iterator[dict[str, Any]]:
            calls.append(1)
            yield from real(**params)
            if len(calls) == listing:
                (imported,) = other.import_client_invoices([UploadFile.from_path(theirs)])
                competitor.append(imported.invoice_id)

        qonto.iter_client_invoices = spy  # type: ignore[method-assign]
        summary = send_invoices([early, mine], qonto, tmp_path / "s", options)
    assert sorted(str(i["number"]) for i in box.client_invoices()) == ["RACE-0", "RACE-1"]
    first, second = summary.outcomes
    assert first.kind == "sent"
    if listing == 1:  # seen before this file was admitted: taken over at once
        assert second.kind == "sent" and second.invoice_id == competitor[0], second
    else:  # seen right before its import: held back, taken over by the next run
        assert second.kind == "failed", second
        assert "reached Qonto while this run was going" in str(second.reason)
        assert competitor[0] in str(second.reason)
        with make_client(box) as qonto:
            again = send_invoices([early, mine], qonto, tmp_path / "s", options)
        assert [o.kind for o in again.outcomes] == ["already_sent", "sent"]
        assert again.outcomes[1].invoice_id == competitor[0]
    assert [c["submissions"] for c in box.counters().values()] == [1, 1]


@pytest.mark.parametrize("case", ["same content", "other content", "unlisted"])
def test_two_imports_in_the_same_moment_send_one_invoice(
    box: Sandbox, tmp_path: Path, case: str
) -> None:
    # Another sender imports the same number in the very moment between this run's check and
    # its import (the race the check before import cannot close): Qonto holds it twice. Both
    # senders keep the earliest, so at most one is ever sent.
    mine, theirs = tmp_path / "mine.xml", tmp_path / "theirs.xml"
    mine.write_bytes(cii_variant("TWICE-1"))
    theirs.write_bytes(other_content("TWICE-1") if case == "other content"
                       else other_bytes("TWICE-1"))
    options = SendOptions(upload="xml")
    competitor: list[str] = []
    with make_client(box, max_retries=0) as qonto, make_client(box) as other:
        real, listing = qonto.import_client_invoices, qonto.iter_client_invoices

        def racing(files: list[UploadFile]) -> Any:
            (imported,) = other.import_client_invoices([UploadFile.from_path(theirs)])
            competitor.append(imported.invoice_id)
            return real(files)

        def failing(**params: Any) -> Any:
            if competitor and case == "unlisted":  # the listing right after the import fails
                box.fail_next(1, "500")
            return listing(**params)

        qonto.import_client_invoices = racing  # type: ignore[method-assign]
        qonto.iter_client_invoices = failing  # type: ignore[method-assign]
        (outcome,) = send_invoices([mine], qonto, tmp_path / "s", options).outcomes
    ours = next(i["id"] for i in box.client_invoices() if i["id"] != competitor[0])
    assert sorted(str(i["number"]) for i in box.client_invoices()) == ["TWICE-1", "TWICE-1"]
    if case == "same content":
        assert outcome.kind == "sent" and outcome.invoice_id == competitor[0], outcome
    elif case == "other content":
        assert outcome.kind == "failed", outcome
        assert "content differs (issue date 2026-03-02 here, 2026-03-03 at Qonto)" in str(
            outcome.reason)
        assert f"its own import ({ours}) is not sent" in str(outcome.reason)
    else:
        assert outcome.kind == "failed", outcome
        assert f"imported as Qonto invoice {ours}, but not sent" in str(outcome.reason)
        with make_client(box) as qonto:  # the next run adopts the earliest and sends it
            (outcome,) = send_invoices([mine], qonto, tmp_path / "s", options).outcomes
        assert outcome.kind == "sent" and outcome.invoice_id == competitor[0], outcome
    counters = box.counters()
    assert counters[ours]["calls"] == 0  # the later import is never sent
    assert counters[competitor[0]]["submissions"] == (0 if case == "other content" else 1)
