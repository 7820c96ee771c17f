"""Issue 11: each invoice is sent once even when the local state is lost (another working
folder, a deleted or emptied outbox, a fresh --state, credentials that cannot read the
organisation). The send stage asks Qonto for the invoice numbers it already has before
importing one it has no record of, and refuses a second invoice under one number."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from facturflow import exitcodes
from facturflow.transmit.errors import (
    OrganisationUnknownError,
    OutboxLostError,
    ValidationRejectedError,
)
from facturflow.transmit.outbox import Outbox
from facturflow.transmit.pipeline import SendOptions, send_invoices
from facturflow.transmit.qonto import QontoClient, QontoConfig, UploadFile
from facturflow.transmit.sandbox import Sandbox, SandboxConfig

from .dedup_helpers import other_bytes, other_content, send_json, spy_listings
from .transmit_helpers import QONTO_VARS, cii_variant, make_client
from .transmit_helpers import run_raising as run

pytestmark = pytest.mark.usefixtures("own_home")

XML = SendOptions(upload="xml")
ENV_VARS = (*QONTO_VARS, "XDG_STATE_HOME")


def by_number(box: Sandbox) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for invoice_id, entry in box.counters().items():
        out.setdefault(str(entry["number"]), []).append({"id": invoice_id, **entry})
    return out


# -- acceptance: two working folders, every local state deleted, a fresh --state ---------------

def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facturflow", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_each_xml_invoice_is_submitted_once_whatever_happens_to_the_local_state(
    tmp_path: Path
) -> None:
    numbers = [f"ONCE-{n}" for n in range(4)]
    home = tmp_path / "home"
    user_state = home / ".local" / "state" / "facturflow"
    folders = [tmp_path / "work-a", tmp_path / "work-b"]
    for folder in folders:
        (folder / "invoices").mkdir(parents=True)
        for number in numbers:
            (folder / "invoices" / f"{number}.xml").write_bytes(cii_variant(number))
    with Sandbox(SandboxConfig(state_dir=tmp_path / "sandbox")) as box:
        env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
        env.update(box.env(), HOME=str(home), QONTO_BACKOFF_BASE="0.01",
                   PYTHONPATH=os.pathsep.join(sys.path))

        def send(cwd: Path, *extra: str) -> dict[str, Any]:
            # The default upload: facturflow converts each XML into a Factur-X PDF, whose bytes
            # need not be the same from one conversion to the next.
            done = _cli(["send", "invoices", "--format", "json", *extra], cwd, env)
            assert done.returncode == 0, done.stdout + done.stderr
            summary: dict[str, Any] = json.loads(done.stdout)
            assert summary["organization"] == box.organization_id
            return summary

        first = send(folders[0])
        assert first["counts"]["sent"] == len(numbers)
        # The default state is the user's, not the working folder's.
        assert (user_state / "outbox.sqlite3").exists()
        assert not any((f / ".facturflow").exists() for f in folders)

        second = send(folders[1])  # another working folder, the default state
        assert second["counts"]["already_sent"] == len(numbers)

        shutil.rmtree(user_state)  # every local state gone
        for folder in folders:
            assert not (folder / ".facturflow").exists()
        third = send(folders[0])
        assert third["counts"]["already_sent"] == len(numbers), third

        fourth = send(folders[1], "--state", str(tmp_path / "fresh"))
        assert fourth["counts"]["already_sent"] == len(numbers), fourth

        found = by_number(box)
        assert sorted(found) == numbers
        # Imported once and submitted to the network once, each.
        assert all(len(entries) == 1 for entries in found.values()), found
        assert all(entries[0]["submissions"] == 1 for entries in found.values()), found
        assert all(entries[0]["calls"] == 1 for entries in found.values()), found
        ids = {o["invoice_number"]: o["invoice_id"] for o in fourth["invoices"]}
        assert ids == {n: found[n][0]["id"] for n in numbers}


# -- the number check at Qonto ------------------------------------------------------------------

def test_a_lost_outbox_does_not_import_again_library(sandbox: Sandbox, client: QontoClient,
                                                      tmp_path: Path) -> None:
    source = tmp_path / "a.xml"
    source.write_bytes(cii_variant("LIB-1"))
    first = send_invoices([source], client, tmp_path / "one", XML)
    assert first.count("sent") == 1
    source.write_bytes(other_bytes("LIB-1"))  # Qonto's import cannot tell: the number check does
    again = send_invoices([source], client, tmp_path / "two", XML)
    (outcome,) = again.outcomes
    assert outcome.kind == "already_sent" and outcome.invoice_id == first.outcomes[0].invoice_id
    assert len(sandbox.client_invoices()) == 1
    assert [c["calls"] for c in sandbox.counters().values()] == [1]
    with Outbox(tmp_path / "two", sandbox.organization_id, lock=False) as outbox:
        (item,) = outbox.items()
        assert item.state == "sent" and item.invoice_id == outcome.invoice_id
        assert "adopted" in str(outbox.history(item.upload_sha256)[-1][2])


def test_an_invoice_imported_but_never_sent_is_adopted_and_sent_once(
    box: Sandbox, tmp_path: Path
) -> None:
    source = tmp_path / "a.xml"
    source.write_bytes(cii_variant("ADOPT-1"))
    with make_client(box) as qonto:  # a run killed after the import, its state lost since
        (imported,) = qonto.import_client_invoices([UploadFile.from_path(
            tmp_path / "a.xml")])
    source.write_bytes(other_bytes("ADOPT-1"))
    code, (outcome,) = send_json(source, tmp_path / "s")
    assert code == 0, outcome
    assert outcome["outcome"] == "sent" and outcome["invoice_id"] == imported.invoice_id
    assert box.counters() == {imported.invoice_id: {"number": "ADOPT-1", "calls": 1,
                                                    "submissions": 1}}


def test_the_window_is_widened_to_the_issue_date_of_an_older_invoice(
    box: Sandbox, tmp_path: Path
) -> None:
    source = tmp_path / "a.xml"
    source.write_bytes(cii_variant("OLD-1"))
    # Imported nine days ago (the invoice is dated 2026-03-02): the sandbox's clock is set back
    # before the import (its hooks only move it forward), then forward to now.
    box.state.data["clock_offset"] = float(box.state.data["clock_offset"]) - 9 * 86400
    with make_client(box) as qonto:
        (imported,) = qonto.import_client_invoices([UploadFile.from_path(source)])
    box.advance(9 * 86400)
    source.write_bytes(other_bytes("OLD-1"))
    code, (outcome,) = send_json(source, tmp_path / "s", "--lookback-days", "1")
    assert code == 0, outcome
    assert outcome["invoice_id"] == imported.invoice_id
    assert len(box.client_invoices()) == 1


def test_a_failed_listing_imports_nothing_and_the_next_run_sends(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    paths = []
    for number in ("LST-1", "LST-2"):
        paths.append(tmp_path / f"{number}.xml")
        paths[-1].write_bytes(cii_variant(number))
    with make_client(sandbox, max_retries=0) as qonto:
        real = qonto.iter_client_invoices

        def failing(**params: Any) -> Any:
            sandbox.fail_next(1, "500")
            return real(**params)

        qonto.iter_client_invoices = failing  # type: ignore[method-assign]
        summary = send_invoices(paths, qonto, tmp_path / "s", XML)
    assert [o.kind for o in summary.outcomes] == ["failed", "failed"]
    assert all("cannot ask Qonto whether invoice number" in str(o.reason)
               for o in summary.outcomes)
    assert sandbox.client_invoices() == []
    with make_client(sandbox) as qonto:
        assert send_invoices(paths, qonto, tmp_path / "s", XML).count("sent") == 2


# -- same number, other content ---------------------------------------------------------------

def test_same_number_other_content_is_refused_from_the_outbox_and_predicted_offline(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = str(tmp_path / "state")
    first, second = tmp_path / "first.xml", tmp_path / "second.xml"
    first.write_bytes(cii_variant("SAME-1"))
    second.write_bytes(other_content("SAME-1"))
    assert run("send", str(first), "--upload", "xml", "--state", state).exit_code == 0
    (invoice,) = box.client_invoices()

    result = run("send", str(second), "--upload", "xml", "--state", state)
    assert result.exit_code == exitcodes.INVALID
    text = " ".join(result.stdout.split())
    for part in ("SAME-1 was already sent on", f"as Qonto invoice {invoice['id']}",
                 "content differs", "issue date 2026-03-03 here, 2026-03-02 in the earlier version",
                 "credit note", "new invoice under a new number"):
        assert part in text, text
    assert len(box.client_invoices()) == 1 and len(box.counters()) == 1

    # The dry run says the same, without Qonto (no configuration: no sandbox, no network).
    for name in ("QONTO_BASE_URL", "QONTO_API_KEY"):
        monkeypatch.delenv(name)
    before = box.requests
    dry = run("send", str(second), str(first), "--upload", "xml", "--state", state,
              "--dry-run", "--format", "json")
    assert dry.exit_code == exitcodes.INVALID
    refused, sent = json.loads(dry.stdout)["invoices"]
    assert refused["outcome"] == "failed" and "content differs" in refused["reason"]
    assert sent["outcome"] == "already_sent" and sent["invoice_id"] == invoice["id"]
    assert box.requests == before


def test_same_number_other_content_is_refused_from_qontos_record_when_the_outbox_is_lost(
    box: Sandbox, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.xml", tmp_path / "second.xml"
    first.write_bytes(cii_variant("SAME-2"))
    second.write_bytes(other_content("SAME-2"))
    assert run("send", str(first), "--upload", "xml", "--state",
               str(tmp_path / "one")).exit_code == 0
    (invoice,) = box.client_invoices()
    for dry in (["--dry-run"], []):  # predicted (reading Qonto), then refused alike
        code, (outcome,) = send_json(second, tmp_path / "two", *dry)
        assert code == exitcodes.INVALID, outcome
        assert outcome["outcome"] == "failed"
        for part in (f"already exists at Qonto as invoice {invoice['id']}",
                     f"created {invoice['created_at']}", "sent)", "content differs",
                     "issue date 2026-03-03 here, 2026-03-02 at Qonto", "credit note"):
            assert part in outcome["reason"], outcome["reason"]
    assert len(box.client_invoices()) == 1


def test_two_files_with_one_number_and_other_content_in_one_run(
    sandbox: Sandbox, client: QontoClient, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_bytes(cii_variant("SAME-3"))
    b.write_bytes(other_content("SAME-3"))
    dry = send_invoices([a, b], None, tmp_path / "s", SendOptions(upload="xml", dry_run=True))
    assert [o.kind for o in dry.outcomes] == ["would_send", "failed"]
    assert "content differs" in str(dry.outcomes[1].reason)
    summary = send_invoices([a, b], client, tmp_path / "s", XML)
    assert [o.kind for o in summary.outcomes] == ["sent", "failed"]
    assert "content differs" in str(summary.outcomes[1].reason)
    assert len(sandbox.client_invoices()) == 1


# -- the organisation ---------------------------------------------------------------------------

def test_credentials_that_cannot_read_the_organisation_send_nothing(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scopes = ("client_invoice.write", "client_invoices.read", "einvoicing.read", "client.read")
    access, refresh = box.issue_tokens(scopes)  # no organization.read: a 403
    monkeypatch.delenv("QONTO_API_KEY")
    monkeypatch.setenv("QONTO_ACCESS_TOKEN", access)
    monkeypatch.setenv("QONTO_REFRESH_TOKEN", refresh)
    monkeypatch.setenv("QONTO_CLIENT_ID", box.client_id)
    monkeypatch.setenv("QONTO_CLIENT_SECRET", box.client_secret)
    source = tmp_path / "a.xml"
    source.write_bytes(cii_variant("ORG-1"))
    for dry in (["--dry-run"], []):
        result = run("send", str(source), "--upload", "xml", "--state", str(tmp_path / "s"),
                     *dry)
        assert result.exit_code == exitcodes.CONFIG, result.output
        assert "cannot read the organisation" in result.stderr
        assert "organization.read" in result.stderr
    assert box.client_invoices() == []
    assert not (tmp_path / "s" / "outbox.sqlite3").exists()

    config = QontoConfig(base_url=box.base_url, access_token=access, refresh_token=refresh,
                         client_id=box.client_id, client_secret=box.client_secret)
    with QontoClient(config) as qonto, pytest.raises(OrganisationUnknownError):
        send_invoices([source], qonto, tmp_path / "s", XML)


# -- the state folder ---------------------------------------------------------------------------

def test_the_default_state_is_the_users_not_the_working_folders(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "a.xml"
    source.write_bytes(cii_variant("DEF-1"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert run("send", str(source), "--upload", "xml").exit_code == 0
    assert not (work / ".facturflow").exists()
    state = tmp_path / "home" / ".local" / "state" / "facturflow"
    with Outbox(state, box.organization_id, lock=False) as outbox:
        assert [i.invoice_number for i in outbox.items()] == ["DEF-1"]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))  # platformdirs honours it
    monkeypatch.chdir(tmp_path)
    result = run("send", str(source), "--upload", "xml")
    assert result.exit_code == 0 and "already sent" in result.stdout  # found at Qonto
    assert (tmp_path / "xdg" / "facturflow" / "outbox.sqlite3").exists()
    monkeypatch.setenv("FACTURFLOW_STATE", str(tmp_path / "env-state"))  # still overrides
    assert run("send", str(source), "--upload", "xml").exit_code == 0
    assert (tmp_path / "env-state" / "outbox.sqlite3").exists()
    assert len(box.counters()) == 1


@pytest.mark.parametrize("damage", ["deleted", "emptied", "garbage"])
def test_blobs_without_their_outbox_are_refused(box: Sandbox, tmp_path: Path,
                                                damage: str) -> None:
    state = tmp_path / "state"
    source = tmp_path / "a.xml"
    source.write_bytes(cii_variant("LOST-1"))
    assert run("send", str(source), "--state", str(state), "--upload", "xml").exit_code == 0
    outbox = state / "outbox.sqlite3"
    for extra in state.glob("outbox.sqlite3-*"):
        extra.unlink()
    if damage == "deleted":
        outbox.unlink()
    else:
        outbox.write_bytes(b"" if damage == "emptied" else b"not a database, not at all" * 200)
    for dry in (["--dry-run"], []):
        result = run("send", str(source), "--state", str(state), "--upload", "xml", *dry)
        assert result.exit_code == exitcodes.STATE, result.output
        message = " ".join(result.stderr.split())
        assert "stored upload(s) but its outbox" in message
        assert {"deleted": "is gone", "emptied": "is empty",
                "garbage": "cannot be read"}[damage] in message
        assert "To recover" in message and "from a backup" in message
        assert f"move {state / 'blobs'} and what is left of outbox.sqlite3 aside" in message
    with pytest.raises(OutboxLostError):
        Outbox(state, box.organization_id)
    # Following the advice (both moved aside) sends nothing twice.
    (state / "blobs").rename(tmp_path / "old-blobs")
    if outbox.exists():
        outbox.rename(tmp_path / "old-outbox")
    result = run("send", str(source), "--state", str(state), "--upload", "xml")
    assert result.exit_code == 0 and "already sent" in result.stdout
    assert [c["submissions"] for c in box.counters().values()] == [1]


# -- the window option ---------------------------------------------------------------------------

def test_the_lookback_window_is_validated(box: Sandbox, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "a.xml"
    source.write_bytes(cii_variant("WIN-1"))
    for bad in ("0", "-3", "x"):
        result = run("send", str(source), "--lookback-days", bad, "--dry-run")
        assert result.exit_code == exitcodes.USAGE
    monkeypatch.setenv("FACTURFLOW_LOOKBACK_DAYS", "forever")
    result = run("send", str(source), "--dry-run")
    assert result.exit_code == exitcodes.USAGE and "FACTURFLOW_LOOKBACK_DAYS" in result.output
    for bad_days in (0, -1, 10**6):
        with pytest.raises(ValueError, match="lookback_days"):
            SendOptions(lookback_days=bad_days)
    monkeypatch.setenv("FACTURFLOW_LOOKBACK_DAYS", "30")
    seen = spy_listings(monkeypatch)
    assert run("send", str(source), "--upload", "xml", "--state",
               str(tmp_path / "s")).exit_code == 0
    # One listing of the window per run, oldest first, imported invoices included; then, right
    # before and right after the import, only what Qonto created since the newest invoice seen.
    window, before, after = seen
    for params in seen:
        assert params["sort_by"] == "created_at:asc" and "exclude_imported" not in params
        assert params["filter[created_at_from]"].endswith("Z")
    assert window["filter[created_at_from]"] < before["filter[created_at_from]"]
    assert before["filter[created_at_from]"] <= after["filter[created_at_from]"]


# -- the sandbox's list honours the documented filters and paging ------------------------------

def test_the_sandbox_list_filters_sorts_and_pages(sandbox: Sandbox, client: QontoClient,
                                                 tmp_path: Path) -> None:
    ids = []
    for n in range(5):
        (tmp_path / f"{n}.xml").write_bytes(cii_variant(f"PG-{n}"))
        (imported,) = client.import_client_invoices([UploadFile.from_path(tmp_path /
                                                                          f"{n}.xml")])
        ids.append(imported.invoice_id)
        sandbox.advance(86400)  # one a day
    listed = [i["id"] for i in client.iter_client_invoices(sort_by="created_at:asc",
                                                           per_page=2)]
    assert listed == ids  # three pages of at most two, followed to the end
    assert [i["id"] for i in client.iter_client_invoices()] == ids[::-1]  # default: newest first
    created = [i["created_at"] for i in client.iter_client_invoices(sort_by="created_at:asc")]
    window = {"filter[created_at_from]": created[1], "filter[created_at_to]": created[3]}
    assert [i["id"] for i in client.iter_client_invoices(sort_by="created_at:asc",
                                                         **window)] == ids[1:4]
    assert client.list_client_invoices(exclude_imported="true") == []
    assert len(client.list_client_invoices(exclude_imported="false")) == 5
    assert len(client.list_client_invoices(**{"filter[status]": "paid,unpaid"})) == 5
    assert client.list_client_invoices(**{"filter[status]": "paid"}) == []
    assert len(client.list_client_invoices(**{"filter[updated_at_from]": "2000-01-01"})) == 5
    for bad in ({"filter[created_at_from]": "yesterday"}, {"sort_by": "number:asc"},
                {"exclude_imported": "maybe"}):
        with pytest.raises(ValidationRejectedError):
            client.list_client_invoices(**bad)
