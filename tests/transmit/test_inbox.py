"""The supplier-invoice inbox end to end against the sandbox: `inbox sync` (incremental, filters,
stored files, index), `inbox reject` with an AFNOR reason code, `inbox mark-paid`, `inbox show`,
the lifecycle events those actions cause, and hostile downloads; through the CLI and the
library (sync and async clients)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from facturflow import exitcodes
from facturflow.cli import main
from facturflow.transmit import errors as E
from facturflow.transmit import inbox as inbox_lib
from facturflow.transmit.inbox import STATE_NAME, SyncFilters, sync_inbox
from facturflow.transmit.qonto import AsyncQontoClient, QontoClient, QontoConfig
from facturflow.transmit.reasons import RefusalReason, parse_reason
from facturflow.transmit.sandbox import Sandbox, SandboxConfig

from .transmit_helpers import cii_variant, make_client
from .transmit_helpers import run_raising as run

REPO = Path(__file__).resolve().parents[2]
FACTURX_PDF = REPO / "fixtures" / "valid" / "fr-invoice-en16931.pdf"


@pytest.fixture
def box(box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The shared `box`, with a state folder of the test's own."""
    monkeypatch.setenv("FACTURFLOW_STATE", str(tmp_path / "state"))
    return box


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def _ids(box: Sandbox) -> dict[str, str]:
    return {str(i["invoice_number"]): str(i["id"]) for i in box.supplier_invoices()}


def _files(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file()}


# -- the acceptance path ---------------------------------------------------------------------


def test_sync_twice_then_reject_and_mark_paid_through_the_cli(box: Sandbox,
                                                               tmp_path: Path) -> None:
    box.inject_supplier_invoice(cii_variant("SUP-1"), "sup-1.xml")
    box.inject_supplier_invoice(cii_variant("SUP-2"), "sup-2.xml")
    out = tmp_path / "inbox"

    first = run("inbox", "sync", "--to", str(out), "--format", "json")
    assert first.exit_code == 0, first.output
    assert as_json(first)["counts"]["downloaded"] == 2
    before = _files(out)

    second = run("inbox", "sync", "--to", str(out), "--format", "json")
    assert second.exit_code == 0, second.output
    counts = as_json(second)["counts"]
    assert counts["downloaded"] == 0 and counts["refreshed"] == 0 and counts["indexed"] == 2
    stored = {k: v for k, v in _files(out).items() if "/" in k}
    assert stored == {k: v for k, v in before.items() if "/" in k}  # nothing written again

    ids = _ids(box)
    rejected = run("inbox", "reject", ids["SUP-1"], "--reason", "TX_TVA_ERR", "--note",
                   "TVA à 20 % au lieu de 5,5 %")
    assert rejected.exit_code == 0, rejected.output
    assert "TX_TVA_ERR" in rejected.stdout and "210 Refusée" in rejected.stdout
    (sup1,) = [i for i in box.supplier_invoices() if i["id"] == ids["SUP-1"]]
    assert sup1["status"] == "rejected" and sup1["declined_reason_code"] == "TX_TVA_ERR"
    assert sup1["einvoicing_lifecycle_events"][-1]["status_code"] == 210
    assert sup1["einvoicing_lifecycle_events"][-1]["reason"] == "TX_TVA_ERR"

    paid = run("inbox", "mark-paid", ids["SUP-2"], "--date", "2026-10-01")
    assert paid.exit_code == 0, paid.output
    assert "211 Paiement transmis" in paid.stdout and "2026-10-01" in paid.stdout

    shown = run("inbox", "show", ids["SUP-1"], "--lang", "en")
    assert shown.exit_code == 0, shown.output
    assert "210 Refused" in shown.stdout and "TX_TVA_ERR (Wrong VAT rate)" in shown.stdout
    assert "attachment" in shown.stdout and "30 minutes" in shown.stdout

    # The next sync sees the new statuses (the index is refreshed) and downloads nothing.
    third = as_json(run("inbox", "sync", "--to", str(out), "--format", "json"))
    assert third["counts"]["downloaded"] == 0 and third["counts"]["refreshed"] == 2
    rows = {r["invoice_number"]: r for r in map(json.loads, (out / "index.jsonl").open())}
    assert (rows["SUP-1"]["status"], rows["SUP-1"]["lifecycle_code"],
            rows["SUP-1"]["lifecycle_label"]) == ("rejected", 210, "Refusée")
    assert (rows["SUP-2"]["status"], rows["SUP-2"]["lifecycle_code"]) == ("paid", 211)


def test_each_invoice_is_stored_once_with_its_files_and_indexed(box: Sandbox,
                                                                 tmp_path: Path) -> None:
    if not FACTURX_PDF.exists():
        pytest.skip(f"{FACTURX_PDF} missing (fixtures not generated)")
    box.inject_supplier_invoice(FACTURX_PDF.read_bytes(), "facture.pdf")
    box.inject_supplier_invoice(cii_variant("BAD-1", break_totals=True), "bad.xml")
    out = tmp_path / "inbox"
    result = run("inbox", "sync", "--to", str(out))
    assert result.exit_code == 0, result.output
    assert "downloaded 2" in result.stdout

    lines = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    pdf_row = next(r for r in lines if r["original"].endswith("original-facture.pdf"))
    folder = out / pdf_row["folder"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "invoice.json", "invoice.xml", "original-facture.pdf", "qonto.json", "validation.json"]
    assert (folder / "invoice.xml").read_bytes().lstrip().startswith(b"<")  # the embedded XML
    model = json.loads((folder / "invoice.json").read_text())
    assert model["BT-1"] == pdf_row["invoice_number"]
    assert pdf_row["valid"] is True and pdf_row["currency"] == "EUR"
    assert pdf_row["supplier_siren"] and pdf_row["total_with_vat"] and pdf_row["issue_date"]
    assert json.loads((folder / "validation.json").read_text())["valid"] is True

    bad = next(r for r in lines if r["invoice_number"] == "BAD-1")
    report = json.loads((out / bad["report"]).read_text())
    assert bad["valid"] is False and "BR-CO-15" in json.dumps(report)

    table = list(csv.DictReader(io.StringIO((out / "index.csv").read_text("utf-8-sig"))))
    assert [r["id"] for r in table] == [r["id"] for r in lines]
    assert set(table[0]) == set(inbox_lib.INDEX_FIELDS)
    # A stable name: the same invoice lands in the same folder on every run.
    assert pdf_row["folder"] == inbox_lib.folder_name(
        next(i for i in box.supplier_invoices() if i["id"] == pdf_row["id"]))


def test_sync_filters_status_einvoices_and_since(box: Sandbox, tmp_path: Path) -> None:
    box.inject_supplier_invoice(cii_variant("OLD-1"), "old.xml")
    box.advance(86400 * 3)
    box.inject_supplier_invoice(cii_variant("NEW-1"), "new.xml")
    box.inject_supplier_invoice(b"%PDF-1.4 not really an e-invoice", "scan.pdf")
    ids = _ids(box)
    assert run("inbox", "reject", ids["NEW-1"], "--reason", "DOUBLON").exit_code == 0
    since = box.supplier_invoices()[1]["created_at"][:10]

    def numbers(*options: str) -> list[str]:
        result = run("inbox", "sync", "--to", str(tmp_path / "-".join(options or ("all",))),
                     *options, "--format", "json")
        assert result.exit_code == 0, result.output
        return sorted(str(r["invoice_number"]) for r in as_json(result)["downloaded"])

    assert numbers("--status", "rejected") == ["NEW-1"]
    assert numbers("--status", "to_review", "--einvoices-only") == ["OLD-1"]
    assert numbers("--since", since, "--einvoices-only") == ["NEW-1"]
    assert numbers() == ["NEW-1", "None", "OLD-1"]
    bad = run("inbox", "sync", "--to", str(tmp_path / "x"), "--since", "last tuesday")
    assert bad.exit_code == exitcodes.USAGE and "not a date" in bad.output


def test_a_change_of_filters_keeps_its_own_cursor(box: Sandbox, tmp_path: Path) -> None:
    box.inject_supplier_invoice(cii_variant("A-1"), "a.xml")
    box.inject_supplier_invoice(cii_variant("B-1"), "b.xml")
    assert run("inbox", "reject", _ids(box)["B-1"], "--reason", "CMD_ERR").exit_code == 0
    out = tmp_path / "inbox"
    assert as_json(run("inbox", "sync", "--to", str(out), "--status", "rejected",
                       "--format", "json"))["counts"]["downloaded"] == 1
    wide = as_json(run("inbox", "sync", "--to", str(out), "--format", "json"))
    assert [r["invoice_number"] for r in wide["downloaded"]] == ["A-1"]
    state = json.loads((out / STATE_NAME).read_text())
    assert len(state["cursors"]) == 2 and len(state["invoices"]) == 2


# -- reject and mark-paid: usage, refusals ----------------------------------------------------


def test_reject_refuses_an_unknown_reason_code_naming_the_valid_ones(box: Sandbox) -> None:
    box.inject_supplier_invoice(cii_variant("R-1"), "r.xml")
    result = CliRunner().invoke(main, ["inbox", "reject", _ids(box)["R-1"], "--reason",
                                       "WRONG_VAT"])
    assert result.exit_code == exitcodes.USAGE
    assert "WRONG_VAT" in result.output and "TX_TVA_ERR" in result.output
    assert "REF_CT_ABSENT" in result.output
    missing = CliRunner().invoke(main, ["inbox", "reject", _ids(box)["R-1"]])
    assert missing.exit_code == exitcodes.USAGE and "--reason" in missing.output
    assert box.supplier_invoices()[0]["status"] == "to_review"  # nothing was sent


def test_reject_and_mark_paid_refused_by_qonto_are_one_line(box: Sandbox) -> None:
    box.inject_supplier_invoice(cii_variant("R-2"), "r.xml")
    inv = _ids(box)["R-2"]
    assert run("inbox", "reject", inv, "--reason", "DOUBLON").exit_code == 0
    again = run("inbox", "reject", inv, "--reason", "DOUBLON")
    assert again.exit_code == exitcodes.INVALID
    assert again.stderr.startswith("error: reject") and "rejected" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    paid = run("inbox", "mark-paid", inv)
    assert paid.exit_code == exitcodes.INVALID and "cannot be paid" in paid.stderr
    unknown = run("inbox", "show", "0190aaaa-0000-7000-8000-000000000000")
    assert unknown.exit_code == exitcodes.CONFIG and "no supplier invoice" in unknown.stderr
    json_error = as_json(run("inbox", "reject", inv, "--reason", "DOUBLON", "--format", "json"))
    assert json_error["error"]["code"] == "refused_by_qonto"


@pytest.mark.parametrize("value", ["2026-13-01", "01/10/2026", "2999-01-01"])
def test_mark_paid_refuses_a_bad_or_future_date(box: Sandbox, value: str) -> None:
    box.inject_supplier_invoice(cii_variant("P-1"), "p.xml")
    result = CliRunner().invoke(main, ["inbox", "mark-paid", _ids(box)["P-1"], "--date", value])
    assert result.exit_code == exitcodes.USAGE and value in result.output
    assert box.supplier_invoices()[0]["status"] == "to_review"


def test_qonto_answers_422_without_a_reason_code_for_a_french_einvoice(
    box: Sandbox, tmp_path: Path
) -> None:
    box.inject_supplier_invoice(cii_variant("Q-1"), "q.xml")
    inv = _ids(box)["Q-1"]
    with make_client(box) as client:
        with pytest.raises(E.ValidationRejectedError) as caught:
            client.reject_supplier_invoice(inv, None, "no code")
        assert caught.value.status == 422 and "declined_reason_code" in caught.value.message
        answer = client.reject_supplier_invoice(inv, RefusalReason.CALCUL_ERR.value, "calcul")
        assert answer["status"] == "rejected"
        events = client.get_supplier_invoice(inv)["einvoicing_lifecycle_events"]
        assert [e["status_code"] for e in events] == [202, 210]


def test_the_reason_codes_have_labels_in_both_languages() -> None:
    assert len(RefusalReason) == 13
    for reason in RefusalReason:
        assert reason.label("fr") and reason.label("en") and reason.label("fr") != reason.value
    assert parse_reason(" tx_tva_err ") is RefusalReason.TX_TVA_ERR
    with pytest.raises(ValueError, match="valid codes: TX_TVA_ERR"):
        parse_reason("NOPE")


# -- compatibility ------------------------------------------------------------------------------


def test_bare_inbox_and_inbox_list_still_list_with_lifecycle_labels(box: Sandbox,
                                                                    tmp_path: Path) -> None:
    box.inject_supplier_invoice(cii_variant("L-1"), "l.xml")
    for args in (("inbox",), ("inbox", "list"), ("inbox", "--lang", "en")):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert "1 received invoice(s)" in result.stdout
    assert "202 Reçue par la plateforme" in run("inbox").stdout
    assert "202 Received by the platform" in run("inbox", "--lang", "en").stdout
    out = tmp_path / "dl"
    legacy = run("inbox", "--download", str(out), "--validate", "--format", "json")
    assert legacy.exit_code == 0 and as_json(legacy)[0]["valid"] is True
    assert len(list(out.iterdir())) == 1


# -- hostile downloads, interruption, broken state -------------------------------------------


def test_hostile_names_and_non_invoices_stay_inside_the_folder(box: Sandbox,
                                                               tmp_path: Path) -> None:
    box.inject_supplier_invoice(cii_variant("H-1"), "h.xml")
    box.inject_supplier_invoice(b"MZ\x90\x00 this is a program, not an invoice", "setup.exe")
    with box.state.lock:  # names with ../ and a dot file, as a hostile answer could give
        for att in box.state.data["attachments"].values():
            att["file_name"] = {"h.xml": "../../evil.xml",
                                "setup.exe": "../../../.bashrc"}[att["file_name"]]
    outside = sorted(str(p) for p in tmp_path.rglob("*"))
    out = tmp_path / "inbox"
    result = run("inbox", "sync", "--to", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = as_json(result)["downloaded"]
    assert len(rows) == 2
    created = sorted(str(p) for p in tmp_path.rglob("*") if not p.is_relative_to(out))
    assert [p for p in created if p not in outside and "state" not in p] == []
    names = sorted((out / r["original"]).name for r in rows)
    assert names == ["original-bashrc", "original-evil.xml"]
    for row in rows:
        assert (out / row["original"]).resolve().parent == (out / row["folder"]).resolve()
    odd = next(r for r in rows if r["invoice_number"] is None)
    assert odd["valid"] is False and odd["model"] is None and odd["error"]


def test_a_download_over_the_cap_is_reported_and_retried_next_run(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box.inject_supplier_invoice(cii_variant("BIG-1"), "big.xml")
    box.inject_supplier_invoice(b"<small/>", "small.xml")
    size = len(cii_variant("BIG-1"))
    monkeypatch.setenv("QONTO_MAX_DOWNLOAD_BYTES", str(size - 1))
    out = tmp_path / "inbox"
    capped = run("inbox", "sync", "--to", str(out), "--format", "json")
    assert capped.exit_code == exitcodes.INVALID
    report = as_json(capped)
    assert [f["invoice_number"] for f in report["failed"]] == ["BIG-1"]
    assert report["counts"]["downloaded"] == 1
    monkeypatch.setenv("QONTO_MAX_DOWNLOAD_BYTES", str(10 * size))
    retried = as_json(run("inbox", "sync", "--to", str(out), "--format", "json"))
    assert [r["invoice_number"] for r in retried["downloaded"]] == ["BIG-1"]
    assert retried["counts"]["failed"] == 0


def test_ctrl_c_during_sync_leaves_a_consistent_state(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        box.inject_supplier_invoice(cii_variant(f"INT-{n}"), f"int-{n}.xml")
    real = inbox_lib.store_invoice
    calls: list[int] = []

    def interrupt_on_second(folder: Path, *args: Any, **kw: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            (folder / ".partial-half-written").mkdir()  # as a kill mid-write would leave
            raise KeyboardInterrupt
        return real(folder, *args, **kw)

    monkeypatch.setattr(inbox_lib, "store_invoice", interrupt_on_second)
    out = tmp_path / "inbox"
    result = CliRunner().invoke(main, ["inbox", "sync", "--to", str(out)])
    assert result.exit_code == exitcodes.INTERRUPTED
    assert "running the same command again continues" in result.output
    state = json.loads((out / STATE_NAME).read_text())
    assert len(state["invoices"]) == 1
    # Which one the first run kept depends on the order Qonto lists them in: not assumed.
    (kept,) = [entry["row"]["invoice_number"] for entry in state["invoices"].values()]
    monkeypatch.setattr(inbox_lib, "store_invoice", real)
    rest = as_json(run("inbox", "sync", "--to", str(out), "--format", "json"))
    again = sorted(r["invoice_number"] for r in rest["downloaded"])
    assert kept not in again and sorted([kept, *again]) == ["INT-0", "INT-1", "INT-2"]
    assert not list(out.glob(".partial-*"))
    assert len((out / "index.jsonl").read_text().splitlines()) == 3


def test_an_unreadable_state_file_is_exit_6_and_left_alone(box: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "inbox"
    out.mkdir()
    (out / STATE_NAME).write_text("{not json")
    result = run("inbox", "sync", "--to", str(out))
    assert result.exit_code == exitcodes.STATE and STATE_NAME in result.stderr
    assert (out / STATE_NAME).read_text() == "{not json"


def test_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path: Path) -> None:
    rows = [{"id": "x", "supplier_name": "=HYPERLINK(\"http://evil\")", "total_with_vat": "-5.00"}]
    inbox_lib.write_index(tmp_path, rows)
    table = list(csv.DictReader(io.StringIO((tmp_path / "index.csv").read_text("utf-8-sig"))))
    assert table[0]["supplier_name"].startswith("'=") and table[0]["total_with_vat"] == "-5.00"


# -- the library, sync and async -------------------------------------------------------------


def test_library_sync_and_attachment_url_renewal(box: Sandbox, tmp_path: Path) -> None:
    box.inject_supplier_invoice(cii_variant("LIB-1"), "lib.xml")
    with make_client(box) as client:
        result = sync_inbox(client, tmp_path / "a", SyncFilters(einvoices_only=True))
        assert [r["invoice_number"] for r in result.downloaded] == ["LIB-1"]
        assert sync_inbox(client, tmp_path / "a").downloaded == []
        # A signed URL dies after 30 minutes; download_attachment asks for a fresh one.
        attachment_id = box.supplier_invoices()[0]["attachment_id"]
        stale = client.get_attachment(attachment_id)["url"]
        box.advance(31 * 60)
        with pytest.raises(E.PermissionDeniedError):
            client._run(client._ops.download(stale))
        assert client.download_attachment(attachment_id)[1] == cii_variant("LIB-1")


def test_async_client_implements_the_same_inbox_endpoints(box: Sandbox) -> None:
    box.inject_supplier_invoice(cii_variant("AS-1"), "as-1.xml")
    box.inject_supplier_invoice(cii_variant("AS-2"), "as-2.xml")

    async def flow() -> tuple[list[str], dict[str, Any], dict[str, Any], bytes]:
        config = QontoConfig(base_url=box.base_url, api_key=box.api_key, backoff_base=0.01)
        async with AsyncQontoClient(config) as c:
            ids = {i["invoice_number"]: i["id"] async for i in c.aiter_supplier_invoices()}
            rejected = await c.reject_supplier_invoice(ids["AS-1"], "DOUBLE_FACT", "twice")
            paid = await c.mark_supplier_invoice_paid(ids["AS-2"], "2026-10-02")
            only = [i["invoice_number"] async for i in
                    c.aiter_supplier_invoices(**{"filter[status][]": ["rejected"]})]
            attachment = (await c.get_supplier_invoice(ids["AS-2"]))["attachment_id"]
            _, data = await c.download_attachment(attachment)
            return only, rejected, paid, data

    only, rejected, paid, data = asyncio.run(flow())
    assert only == ["AS-1"]
    assert rejected["einvoicing_lifecycle_events"][-1]["status_code"] == 210
    assert paid["payment_date"] == "2026-10-02"
    assert paid["einvoicing_lifecycle_events"][-1]["status_code"] == 211
    assert data == cii_variant("AS-2")


def test_mark_paid_path_and_field_are_settings(box: Sandbox) -> None:
    config = QontoConfig.from_env({"QONTO_SUPPLIER_PAID_PATH": "/v2/supplier_invoices/{id}/pay",
                                   "QONTO_SUPPLIER_PAID_FIELD": "paid_at"},
                                  base_url=box.base_url, api_key=box.api_key)
    assert (config.supplier_paid_path, config.supplier_paid_field) == (
        "/v2/supplier_invoices/{id}/pay", "paid_at")
    with pytest.raises(E.ConfigError, match="QONTO_SUPPLIER_PAID_PATH"):
        QontoConfig.from_env({"QONTO_SUPPLIER_PAID_PATH": "no-id-here"})
    box.inject_supplier_invoice(cii_variant("CFG-1"), "c.xml")
    with QontoClient(config) as client, pytest.raises(E.QontoError) as caught:
        client.mark_supplier_invoice_paid(_ids(box)["CFG-1"])
    assert caught.value.status == 404 and "/pay" in str(caught.value.message) + str(
        caught.value.path)


def test_options_before_the_subcommand_apply_to_it(box: Sandbox, tmp_path: Path) -> None:
    box.inject_supplier_invoice(cii_variant("OPT-1"), "o.xml")
    result = run("inbox", "--format", "json", "--lang", "en", "show", _ids(box)["OPT-1"])
    label = as_json(result)["lifecycle"][0]["label"]
    assert result.exit_code == 0 and "202" in label and "Received by the platform" in label
    wrong = CliRunner().invoke(main, ["inbox", "--validate", "sync", "--to", str(tmp_path)])
    assert wrong.exit_code == exitcodes.USAGE and "inbox list" in wrong.output


def test_reject_and_payment_survive_a_sandbox_restart(tmp_path: Path) -> None:
    folder = tmp_path / "sb"
    with Sandbox(SandboxConfig(state_dir=folder)) as sandbox:
        first = sandbox.inject_supplier_invoice(cii_variant("RS-1"), "a.xml")
        second = sandbox.inject_supplier_invoice(cii_variant("RS-2"), "b.xml")
        with make_client(sandbox) as client:
            client.reject_supplier_invoice(first["id"], "DOUBLON", "déjà reçue")
            client.mark_supplier_invoice_paid(second["id"], "2026-10-03")
    with Sandbox(SandboxConfig(state_dir=folder)) as sandbox:
        stored = {i["id"]: i for i in sandbox.supplier_invoices()}
    assert (stored[first["id"]]["status"], stored[first["id"]]["declined_reason_code"]) == (
        "rejected", "DOUBLON")
    assert [e["status_code"] for e in stored[second["id"]]["einvoicing_lifecycle_events"]] == [
        202, 211]


def test_a_stranger_s_session_in_subprocesses_with_the_http_injection_hook(
    tmp_path: Path
) -> None:
    """The sandbox in this process, the CLI in others, invoices injected over HTTP."""
    import os
    import subprocess
    import sys

    import httpx

    with Sandbox(SandboxConfig(state_dir=tmp_path / "sb")) as sandbox:
        for number in ("HTTP-1", "HTTP-2"):
            answer = httpx.post(f"{sandbox.base_url}/_sandbox/supplier_invoices",
                                content=cii_variant(number),
                                headers={"Authorization": sandbox.api_key,
                                         "X-File-Name": f"{number}.xml"})
            assert answer.status_code == 201
        env = {k: v for k, v in os.environ.items() if not k.startswith("QONTO_")}
        env.update(sandbox.env(), FACTURFLOW_STATE=str(tmp_path / "state"),
                   PYTHONPATH=os.pathsep.join(sys.path))

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "facturflow", *args], env=env,
                                  capture_output=True, text=True, timeout=120)

        out = tmp_path / "inbox"
        first = cli("inbox", "sync", "--to", str(out))
        assert first.returncode == 0, first.stderr
        assert "downloaded 2," in first.stdout
        second = cli("inbox", "sync", "--to", str(out))
        assert second.returncode == 0 and "downloaded 0," in second.stdout
        ids = _ids(sandbox)
        rejected = cli("inbox", "reject", ids["HTTP-1"], "--reason", "MONTANTTOTAL_ERR")
        assert rejected.returncode == 0, rejected.stderr
        shown = json.loads(cli("inbox", "show", ids["HTTP-1"], "--format", "json").stdout)
        assert shown["lifecycle"][-1]["status_code"] == 210
        assert shown["lifecycle"][-1]["reason"] == "MONTANTTOTAL_ERR"
        assert cli("doctor").returncode == 0


def test_two_syncs_on_one_folder_do_not_race(box: Sandbox, tmp_path: Path) -> None:
    import fcntl
    import os

    out = tmp_path / "inbox"
    out.mkdir()
    fd = os.open(out / inbox_lib.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another sync holds the folder
        result = run("inbox", "sync", "--to", str(out))
        assert result.exit_code == exitcodes.STATE and "another `inbox sync`" in result.stderr
    finally:
        os.close(fd)
    assert run("inbox", "sync", "--to", str(out)).exit_code == 0


def test_a_real_sigint_during_sync_exits_130_and_the_next_run_continues(
    tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from facturflow.transmit.sandbox import FaultPlan

    with Sandbox(SandboxConfig(state_dir=tmp_path / "sb")) as sandbox:
        for n in range(12):
            sandbox.inject_supplier_invoice(cii_variant(f"SIG-{n}"), f"sig-{n}.xml")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QONTO_")}
        env.update(sandbox.env(), FACTURFLOW_STATE=str(tmp_path / "state"),
                   PYTHONPATH=os.pathsep.join(sys.path))
        out = tmp_path / "inbox"
        command = [sys.executable, "-m", "facturflow", "inbox", "sync", "--to", str(out)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                (out / STATE_NAME).exists() and json.loads(
                    (out / STATE_NAME).read_text())["invoices"]):
            time.sleep(0.01)
        # From now on every request hangs: the sync is caught in the middle of its work.
        sandbox.set_faults(FaultPlan(rate=1.0, kinds=("stall",), stall_seconds=3.0))
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == exitcodes.INTERRUPTED, stderr
        assert "Traceback" not in stderr and "running the same command again" in stderr
        stored = json.loads((out / STATE_NAME).read_text())["invoices"]
        assert 1 <= len(stored) < 12
        for entry in stored.values():  # every recorded invoice is complete on disk
            assert (out / entry["row"]["folder"] / "qonto.json").is_file()
        sandbox.set_faults(FaultPlan())
        rest = subprocess.run([*command, "--format", "json"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert rest.returncode == 0, rest.stderr
        assert json.loads(rest.stdout)["counts"]["downloaded"] == 12 - len(stored)
        assert not list(out.glob(".partial-*"))


def test_an_empty_to_or_download_is_refused_not_the_current_folder(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--to "$DIR"` with DIR unset copied into the current folder (index.csv, state, lock).
    box.inject_supplier_invoice(FACTURX_PDF.read_bytes(), "incoming.pdf")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for empty in ("", "  "):
        result = CliRunner().invoke(main, ["inbox", "sync", "--to", empty])
        assert result.exit_code == exitcodes.USAGE, result.output
        assert "Invalid value for '--to': is empty (an unset variable?)" in result.output
        for listing in (["inbox"], ["inbox", "list"]):
            result = CliRunner().invoke(main, [*listing, "--download", empty])
            assert result.exit_code == exitcodes.USAGE, result.output
            assert "'--download': is empty" in result.output
    assert list(work.iterdir()) == []  # nothing written here
    assert run("inbox", "sync", "--to", ".").exit_code == 0  # said explicitly: allowed
    assert (work / "index.csv").is_file()


def test_an_unknown_status_is_kept_but_said(box: Sandbox, tmp_path: Path) -> None:
    # A typo (to-review) copied nothing, silently, exit 0.
    box.inject_supplier_invoice(FACTURX_PDF.read_bytes(), "incoming.pdf")
    result = CliRunner().invoke(main, ["inbox", "sync", "--to", str(tmp_path / "in"),
                                       "--status", "to-review", "--status", "to_review"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0].startswith(
        "warning: --status 'to-review' is not a status Qonto is known to use (to_review, ")
    assert "'to_review'" not in result.stderr  # a known one is not warned about
    assert "downloaded 1," in result.stdout


def test_a_copy_folder_that_cannot_be_made_is_one_line_naming_it(box: Sandbox,
                                                                 tmp_path: Path) -> None:
    # It said "error: <path>: Not a directory".
    box.inject_supplier_invoice(FACTURX_PDF.read_bytes(), "incoming.pdf")
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    result = CliRunner().invoke(main, ["inbox", "sync", "--to", str(afile / "inbox")])
    assert result.exit_code == exitcodes.USAGE, result.output
    assert result.stderr.splitlines() == [
        f"error: cannot write the copy in {afile / 'inbox'}: Not a directory"]
    assert afile.read_text() == "not a folder"
