"""The outbox on PostgreSQL through the library and the CLI: `--state postgresql://...` for send,
status and outbox, commit before every network step, `outbox migrate` from a state folder,
and the one-line errors of a database that cannot be used. A real server (`pg_url`)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from facturflow import exitcodes
from facturflow.transmit.outbox import Outbox
from facturflow.transmit.outbox_pg import (
    DatabaseConfigError,
    DatabaseUnavailableError,
    MigrateConflictError,
)
from facturflow.transmit.outbox_pg_migrate import migrate_from_sqlite
from facturflow.transmit.pipeline import SendOptions, send_invoices
from facturflow.transmit.qonto import QontoClient
from facturflow.transmit.sandbox import Sandbox
from facturflow.transmit.store import open_outbox, organisations

from .pg_helpers import PASSWORD, PgServer
from .transmit_helpers import make_client, run, write_invoices

XML = SendOptions(upload="xml")


def _states(url: str, org: str) -> dict[str, str]:
    with open_outbox(url, org, lock=False) as outbox:  # another connection: commits only
        return {str(i.invoice_number): i.state for i in outbox.items()}


def _submissions(box: Sandbox) -> dict[str, int]:
    return {str(c["number"]): int(c["submissions"]) for c in box.counters().values()}


def test_each_transition_is_committed_before_its_network_step(
    sandbox: Sandbox, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    org = sandbox.organization_id
    real_import, real_send = QontoClient.import_client_invoices, QontoClient.send_by_einvoice

    def spy_import(self: QontoClient, files: Any) -> Any:
        seen.append(("import", _states(pg_url, org)))
        return real_import(self, files)

    def spy_send(self: QontoClient, invoice_id: str) -> None:
        seen.append(("send", _states(pg_url, org)))
        real_send(self, invoice_id)

    monkeypatch.setattr(QontoClient, "import_client_invoices", spy_import)
    monkeypatch.setattr(QontoClient, "send_by_einvoice", spy_send)
    paths = write_invoices(tmp_path / "in", "P-1", "P-2")
    with make_client(sandbox) as client:
        summary = send_invoices(paths, client, pg_url, XML)
        assert summary.ok and summary.count("sent") == 2
        assert seen == [
            ("import", {"P-1": "importing", "P-2": "importing"}),
            ("send", {"P-1": "sending", "P-2": "imported"}),
            ("send", {"P-1": "sent", "P-2": "sending"}),
        ]
        again = send_invoices(paths, client, pg_url, XML)
    assert again.count("already_sent") == 2
    assert _submissions(sandbox) == {"P-1": 1, "P-2": 1}
    assert not (tmp_path / "state").exists()  # nothing local: rows and uploads are in the database
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM blobs").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM items WHERE claimed_by IS NOT NULL"
                            ).fetchone() == (0,)  # every claim given back


def test_send_status_and_outbox_commands_take_a_database(box: Sandbox, tmp_path: Path,
                                                         pg_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (path,) = write_invoices(tmp_path / "in", "C-1")
    sent = run("send", str(path), "--upload", "xml", "--state", pg_url, "--format", "json")
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["counts"]["sent"] == 1
    status = run("status", "--state", pg_url)
    assert status.exit_code == 0 and "C-1 sent" in status.stdout
    listing = run("outbox", "list", "--state", pg_url, "--format", "json")
    assert [i["invoice_number"] for i in json.loads(listing.stdout)] == ["C-1"]
    shown = run("outbox", "show", "C-1", "--state", pg_url)
    assert shown.exit_code == 0 and "stored upload ok" in shown.stdout
    assert "validated" in shown.stdout and "sent" in shown.stdout
    check = run("outbox", "check", "--state", pg_url)
    assert check.exit_code == 0 and "1 sent" in check.stdout, check.output
    # FACTURFLOW_STATE names the database as well as --state does.
    monkeypatch.setenv("FACTURFLOW_STATE", pg_url)
    again = run("send", str(path), "--upload", "xml")
    assert again.exit_code == 0 and "already sent" in again.stdout, again.output
    assert _submissions(box) == {"C-1": 1}


def _sqlite_outbox(box: Sandbox, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A state folder that sent M-1 and M-2 and failed M-3 (sending disabled meanwhile)."""
    state = tmp_path / "state"
    paths = write_invoices(tmp_path / "in", "M-1", "M-2", "M-3")
    assert run("send", *map(str, paths[:2]), "--upload", "xml", "--state",
               str(state)).exit_code == 0
    box.set_settings(sending_status="disabled")
    assert run("send", str(paths[2]), "--upload", "xml", "--state", str(state)).exit_code == 1
    box.set_settings(sending_status="enabled")
    return state, paths


def test_migrate_copies_a_sqlite_outbox_once_and_sending_goes_on_from_it(
    box: Sandbox, tmp_path: Path, pg_url: str
) -> None:
    state, paths = _sqlite_outbox(box, tmp_path)
    with Outbox(state, box.organization_id, lock=False) as local:
        before = {i.upload_sha256: i for i in local.items()}
        history = {sha: local.history(sha) for sha in before}
    first = run("outbox", "migrate", "--state", str(state), "--to", pg_url)
    assert first.exit_code == 0, first.output
    assert "3 invoice(s), 3 source verdict(s)" in first.stdout
    assert "3 stored upload(s)" in first.stdout and PASSWORD not in first.output
    with open_outbox(pg_url, box.organization_id, lock=False) as shared:
        assert {i.upload_sha256: i for i in shared.items()} == before
        assert {sha: shared.history(sha) for sha in before} == history
    again = run("outbox", "migrate", "--state", str(state), "--to", pg_url, "--format", "json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["copied"] == {"items": 0, "sources": 0, "history": 0, "stored_uploads": 0}
    assert report["already_there"] == {"items": 3, "sources": 3}
    # The database now carries on: the sent ones are not sent again, the failed one goes.
    sent = run("send", *map(str, paths), "--upload", "xml", "--state", pg_url, "--format",
               "json")
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["counts"] == {"sent": 1, "already_sent": 2, "rejected": 0,
                                                 "failed": 0, "would_send": 0}
    assert _submissions(box) == {"M-1": 1, "M-2": 1, "M-3": 1}


def test_migrate_refuses_rows_that_differ_and_copies_nothing(box: Sandbox, tmp_path: Path,
                                                             pg_url: str) -> None:
    state, _ = _sqlite_outbox(box, tmp_path)
    migrate_from_sqlite(state, pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE items SET state='failed' WHERE invoice_number='M-1'")
        conn.execute("DELETE FROM items WHERE invoice_number='M-2'")
    refused = run("outbox", "migrate", "--state", str(state), "--to", pg_url)
    assert refused.exit_code == exitcodes.STATE
    assert "M-1" in refused.stderr and "state differ" in refused.stderr
    assert "nothing copied" in refused.stderr and len(refused.stderr.splitlines()) == 1
    with psycopg.connect(pg_url) as conn:  # M-2 was not put back: all or nothing
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)
    with pytest.raises(MigrateConflictError):
        migrate_from_sqlite(state, pg_url)
    empty = run("outbox", "migrate", "--state", str(tmp_path / "none"), "--to", pg_url)
    assert empty.exit_code == exitcodes.STATE and "no SQLite outbox" in empty.stderr
    wrong = run("outbox", "migrate", "--state", str(state), "--to", str(tmp_path))
    assert wrong.exit_code == exitcodes.USAGE


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_database_that_cannot_be_used_is_one_line_without_the_password(
    box: Sandbox, tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    (path,) = write_invoices(tmp_path / "in", "E-1")
    cases = [
        # (URL, exit code, what the line says)
        (f"postgresql://facturflow:{PASSWORD}@127.0.0.1:{_closed_port()}/outbox",
         exitcodes.STATE, "database outbox on 127.0.0.1"),
        (pg_server.url(pg_url.rsplit("/", 1)[1], password="wrong-pass-123"),
         exitcodes.CONFIG, "password authentication failed"),
        (pg_server.url("no_such_db"), exitcodes.CONFIG, "database no_such_db on 127.0.0.1"),
    ]
    for url, code, says in cases:
        for args in (("send", str(path), "--upload", "xml"), ("status",), ("outbox", "list"),
                     ("outbox", "check")):
            result = run(*args, "--state", url)
            assert result.exit_code == code, (args, url, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit)
            line = result.stderr.strip()
            assert says in line and len(line.splitlines()) == 1, line
            assert PASSWORD not in result.output and "wrong-pass-123" not in result.output
        as_json = run("send", str(path), "--upload", "xml", "--state", url, "--format", "json")
        assert json.loads(as_json.stdout)["error"]["exit_code"] == code
    assert box.counters() == {}  # nothing was sent without an outbox
    with pytest.raises(DatabaseUnavailableError, match=r"127\.0\.0\.1"):
        open_outbox(cases[0][0], "org-1")
    with pytest.raises(DatabaseConfigError, match="password authentication failed"):
        organisations(cases[1][0])


def test_without_psycopg_the_option_says_how_to_install_it(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails
    (path,) = write_invoices(tmp_path / "in", "I-1")
    url = "postgresql://facturflow@127.0.0.1:5432/outbox"
    for args in (("send", str(path), "--upload", "xml"), ("status",), ("outbox", "list")):
        result = run(*args, "--state", url)
        assert result.exit_code == exitcodes.CONFIG, result.output
        assert "pip install 'facturflow[postgresql]'" in result.stderr
    with pytest.raises(DatabaseConfigError, match=r"facturflow\[postgresql\]"):
        open_outbox(url, "org-1")


def test_outbox_retry_and_forget_on_a_database(box: Sandbox, tmp_path: Path,
                                               pg_url: str) -> None:
    one, two = write_invoices(tmp_path / "in", "R-1", "R-2")
    box.set_settings(sending_status="disabled")
    failed = run("send", str(one), str(two), "--upload", "xml", "--state", pg_url)
    assert failed.exit_code == 1, failed.output
    box.set_settings(sending_status="enabled")
    listing = run("outbox", "list", "--failed", "--state", pg_url)
    assert "R-1 failed" in listing.stdout and "R-2 failed" in listing.stdout
    retried = run("outbox", "retry", "R-1", "--state", pg_url)
    assert retried.exit_code == 0 and "R-1 sent" in retried.stdout, retried.output
    forgotten = run("outbox", "forget", "R-2", "--yes", "--state", pg_url)
    assert forgotten.exit_code == 0, forgotten.output
    assert run("outbox", "forget", "R-1", "--yes", "--state", pg_url).exit_code == 1  # sent
    with psycopg.connect(pg_url) as conn:  # R-2's row, history, verdict and upload are gone
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM blobs").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM sources").fetchone() == (1,)
    assert _submissions(box) == {"R-1": 1}


def test_a_dry_run_on_a_database_predicts_and_writes_nothing(box: Sandbox, tmp_path: Path,
                                                              pg_url: str) -> None:
    one, two = write_invoices(tmp_path / "in", "D-1", "D-2")
    assert run("send", str(one), "--upload", "xml", "--state", pg_url).exit_code == 0
    dry = run("send", str(one), str(two), "--upload", "xml", "--state", pg_url, "--dry-run",
              "--format", "json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["counts"]["would_send"] == 1
    assert json.loads(dry.stdout)["counts"]["already_sent"] == 1
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (1,)


def test_a_database_in_facturflow_state_leaves_local_files_in_the_users_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facturflow.transmit.cli import default_state_dir, local_folder, state_dir, state_location

    url = "postgresql://facturflow@db.internal/facturflow"
    monkeypatch.setenv("FACTURFLOW_STATE", url)
    assert state_location(None) == url  # send, status, outbox: the database
    assert state_dir(None) == default_state_dir()  # tokens, sandbox, inbox: a folder
    assert local_folder(url) == default_state_dir()
    assert state_location(str(tmp_path)) == tmp_path == local_folder(tmp_path)


def test_a_bad_lease_is_a_usage_error(box: Sandbox, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (path,) = write_invoices(tmp_path / "in", "L-1")
    bad = run("send", str(path), "--lease-seconds", "0", "--state", str(tmp_path / "s"))
    assert bad.exit_code == exitcodes.USAGE and "--lease-seconds" in bad.output
    monkeypatch.setenv("FACTURFLOW_LEASE_SECONDS", "soon")
    bad = run("send", str(path), "--state", str(tmp_path / "s"))
    assert bad.exit_code == exitcodes.USAGE and "FACTURFLOW_LEASE_SECONDS" in bad.output
    with pytest.raises(ValueError, match="lease_seconds"):
        SendOptions(lease_seconds=0)


def test_a_connection_lost_mid_run_is_a_state_error_naming_the_database(pg_url: str) -> None:
    with open_outbox(pg_url, "org-1") as outbox:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "application_name = 'facturflow' AND pid <> pg_backend_pid()")
        with pytest.raises(DatabaseUnavailableError) as lost:
            outbox.items()
    message = str(lost.value)
    assert "database " in message and "127.0.0.1" in message and PASSWORD not in message
    assert "\n" not in message


def test_a_malformed_database_url_never_shows_its_password(
    box: Sandbox, tmp_path: Path, pg_server: PgServer
) -> None:
    """A URL the driver cannot parse: its message quotes the URL or the token it choked on,
    which may be the password (in the user part, in `?password=`, percent-encoded or
    not, or split by an '@' left unescaped). None of it reaches stderr, JSON or an exception."""
    port = pg_server.port
    cases = {
        f"postgresql://facturflow@[::1:{port}/outbox?password=Sekr1t-query": ("Sekr1t-query",),
        f"postgresql://facturflow:Sekr1t%ZZbad@127.0.0.1:{port}/outbox": ("Sekr1t%ZZbad",),
        f"postgresql://facturflow@127.0.0.1:{port}/outbox?password=Sekr1t%ZZq":
            ("Sekr1t%ZZq",),
        f"postgresql://facturflow:Sekr1t@pa55-word@127.0.0.1:{port}/outbox":
            ("Sekr1t", "pa55-word"),
    }
    for url, secrets in cases.items():
        for args in (("outbox", "list"), ("outbox", "check", "--format", "json"), ("status",)):
            result = run(*args, "--state", url)
            assert result.exit_code in (exitcodes.CONFIG, exitcodes.STATE), result.output
            assert "the outbox the outbox" not in result.output
            for secret in secrets:
                assert secret not in result.output, (url, args, result.output)
        with pytest.raises((DatabaseConfigError, DatabaseUnavailableError)) as raised:
            open_outbox(url, "org-1")
        for secret in secrets:
            assert secret not in str(raised.value), str(raised.value)


def test_two_migrations_of_one_outbox_at_once_copy_it_once_without_error(
    tmp_path: Path, pg_url: str
) -> None:
    """Two `outbox migrate` at once into one database (copies of one state folder, on two
    machines): one copies, the other waits for it and finds everything there, instead of
    failing on a unique-key violation."""
    import shutil
    import threading

    from facturflow.transmit.outbox import sha256

    first = tmp_path / "a"
    for org in ("org-1", "org-2"):
        with Outbox(first, org) as local:
            for n in range(150):
                body = f"<Invoice>{org}-{n}</Invoice>".encode()
                local.record_validated(
                    source_sha=sha256(body + b"src"), source_path=f"/in/{n}.xml",
                    upload_format="xml:default", file_name=f"{n}.xml", upload=body,
                    invoice_number=f"N-{n}", buyer_siren=None)
    second = tmp_path / "b"
    shutil.copytree(first, second)
    reports: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def migrate(folder: Path) -> None:
        barrier.wait()
        try:
            reports.append(migrate_from_sqlite(folder, pg_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(f,)) for f in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == [], errors
    assert sorted((r.items, r.items_present) for r in reports) == [(0, 300), (300, 0)]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (300,)
        assert conn.execute("SELECT count(*) FROM history").fetchone() == (300,)


def test_a_state_url_of_another_scheme_is_a_usage_error_not_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`postgresq://...` (a typo) used to be taken for a folder: a local outbox instead of the
    shared one (several senders each sending on their own) in a folder named after the
    password. It is a usage error naming the scheme, never the password."""
    monkeypatch.chdir(tmp_path)
    typo = "postgresq://facturflow:Typo-Pa55@127.0.0.1:5432/outbox"
    for args in (("outbox", "list", "--state", typo), ("status", "--state", typo),
                 ("outbox", "migrate", "--state", str(tmp_path), "--to",
                  typo.replace("postgresq", "pgsql"))):
        result = run(*args)
        assert result.exit_code == exitcodes.USAGE, result.output
        assert "is not a PostgreSQL URL" in result.output
        assert "Typo-Pa55" not in result.output
    monkeypatch.setenv("FACTURFLOW_STATE", typo)
    result = run("outbox", "list")
    assert result.exit_code == exitcodes.USAGE and "FACTURFLOW_STATE" in result.output
    assert "Typo-Pa55" not in result.output
    assert list(tmp_path.iterdir()) == []  # no folder made of the URL
