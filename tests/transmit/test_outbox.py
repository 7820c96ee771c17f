"""The outbox journal: transitions, durability across reopen, the exclusive lock, blob integrity.

The contract tests run against both backends: a state folder (SQLite) and a database on a
real PostgreSQL server (the `pg_url` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facturflow.errors import TransmitError
from facturflow.transmit import store
from facturflow.transmit.outbox import Outbox, OutboxBusyError, sha256
from facturflow.transmit.store import OutboxStore, StateLocation, open_outbox


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> StateLocation:
    """Where the outbox is: a state folder, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path
    return str(request.getfixturevalue("pg_url"))


def _record(outbox: OutboxStore, body: bytes = b"<Invoice/>", number: str = "N-1") -> str:
    item = outbox.record_validated(
        source_sha=sha256(body + b"src"), source_path=f"/in/{number}.xml",
        upload_format="xml:default", file_name=f"{number}.xml", upload=body,
        invoice_number=number, buyer_siren="610732067",
    )
    return item.upload_sha256


def test_an_invoice_walks_every_state_and_each_step_survives_a_reopen(state: StateLocation) -> None:
    with open_outbox(state, "org-1") as outbox:
        key = _record(outbox)
        assert [i.upload_sha256 for i in outbox.pending_import()] == [key]
        outbox.mark_importing([key])
    with open_outbox(state, "org-1") as outbox:  # as after a kill: the state is still there
        assert outbox.get(key).state == "importing"  # type: ignore[union-attr]
        assert [i.upload_sha256 for i in outbox.pending_import()] == [key]
        outbox.mark_imported({key: "inv-1"})
        assert outbox.pending_import() == []
        assert [i.invoice_id for i in outbox.pending_send()] == ["inv-1"]
        outbox.mark_sending(key)
    with open_outbox(state, "org-1") as outbox:
        assert [i.state for i in outbox.pending_send()] == ["sending"]
        outbox.mark_sent(key)
        assert outbox.pending_send() == []
        outbox.record_status(key, "submitted", [
            {"status_code": 201, "timestamp": "2026-01-01T00:00:01Z"},
            {"status_code": 200, "timestamp": "2026-01-01T00:00:00Z"},
        ])
        item = outbox.get(key)
        assert item is not None and item.state == "sent" and item.sent_at is not None
        assert item.latest_event == {"status_code": 201, "timestamp": "2026-01-01T00:00:01Z"}
        assert not item.final
        states = [h[1] for h in outbox.history(key)]
        assert states == ["validated", "importing", "imported", "sending", "sent",
                          "status:submitted"]


def test_failed_items_go_back_to_the_step_they_failed(state: StateLocation) -> None:
    with open_outbox(state, "org-1") as outbox:
        a = _record(outbox, b"<A/>", "A")
        b = _record(outbox, b"<B/>", "B")
        outbox.mark_imported({b: "inv-b"})
        outbox.mark_failed([a, b], "503 after retries")
        assert [i.upload_sha256 for i in outbox.pending_import()] == [a]
        assert [i.upload_sha256 for i in outbox.pending_send()] == [b]
        assert outbox.get(a).error == "503 after retries"  # type: ignore[union-attr]


def test_the_same_upload_is_one_row_and_a_source_maps_to_its_first_upload(
    state: StateLocation,
) -> None:
    with open_outbox(state, "org-1") as outbox:
        first = _record(outbox)
        again = _record(outbox)
        assert first == again and len(outbox.items()) == 1
        record = outbox.lookup_source(sha256(b"<Invoice/>src"), "xml:default")
        assert record is not None and record.upload_sha256 == first
        assert outbox.lookup_source(sha256(b"<Invoice/>src"), "facturx:default") is None


def test_organisations_are_kept_apart(state: StateLocation) -> None:
    with open_outbox(state, "org-1") as outbox:
        _record(outbox)
    with open_outbox(state, "org-2") as outbox:
        assert outbox.items() == []
        _record(outbox)
    assert store.organisations(state) == ["org-1", "org-2"]


def test_rejections_are_remembered(state: StateLocation) -> None:
    with open_outbox(state, "org-1") as outbox:
        outbox.record_rejected("abc", "xml:default", "/in/x.xml", "invalid: BR-CO-15")
        record = outbox.lookup_source("abc", "xml:default")
        assert record is not None and record.verdict == "rejected"
        assert record.reason == "invalid: BR-CO-15"


def test_a_second_writer_is_refused_but_readers_are_not(tmp_path: Path) -> None:
    with Outbox(tmp_path, "org-1") as outbox:
        key = _record(outbox)
        with pytest.raises(OutboxBusyError):
            Outbox(tmp_path, "org-1")
        with Outbox(tmp_path, "org-1", lock=False) as reader:
            assert reader.get(key) is not None
    Outbox(tmp_path, "org-1").close()  # released


def test_a_corrupt_stored_upload_is_detected(tmp_path: Path) -> None:
    with Outbox(tmp_path, "org-1") as outbox:
        key = _record(outbox)
        item = outbox.get(key)
        assert item is not None and outbox.blob(item) == b"<Invoice/>"
        (tmp_path / "blobs" / key).write_bytes(b"tampered")
        with pytest.raises(TransmitError):
            outbox.blob(item)


def test_find_by_path_id_number_or_hash_prefix(state: StateLocation) -> None:
    with open_outbox(state, "org-1") as outbox:
        key = _record(outbox, number="F-9")
        outbox.mark_imported({key: "inv-9"})
        for ref in ("/in/F-9.xml", "inv-9", "F-9", key[:12]):
            assert [i.upload_sha256 for i in outbox.find(ref)] == [key], ref
        assert outbox.find("nothing") == []


def test_a_corrupt_stored_upload_in_the_database_is_detected(pg_url: str) -> None:
    import psycopg

    with open_outbox(pg_url, "org-1") as outbox:
        key = _record(outbox)
        item = outbox.get(key)
        assert item is not None and outbox.blob(item) == b"<Invoice/>"
        assert outbox.blob_problem(item) is None
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE blobs SET data = 'tampered'::bytea")
        assert outbox.blob_problem(item) == "corrupt"
        with pytest.raises(TransmitError):
            outbox.blob(item)  # the source /in/N-1.xml is not there to rebuild it from


def test_the_stored_upload_lives_in_the_database_not_in_a_folder(pg_url: str,
                                                                 tmp_path: Path) -> None:
    """Another machine sharing the outbox finds the exact bytes to upload in the database."""
    with open_outbox(pg_url, "org-1") as outbox:
        key = _record(outbox, b"<Stored/>")
    with open_outbox(pg_url, "org-1") as elsewhere:
        item = elsewhere.get(key)
        assert item is not None and elsewhere.blob(item) == b"<Stored/>"
    assert not any(tmp_path.iterdir())


def test_an_invoice_is_claimed_by_one_sender_at_a_time(pg_url: str) -> None:
    with open_outbox(pg_url, "org-1") as a, open_outbox(pg_url, "org-1") as b:
        key = _record(a)
        other = _record(a, b"<Other/>", "N-2")
        assert set(a.claim([key])) == {key}
        assert b.claim([key, other]).keys() == {other}  # key is a's; other was free
        assert a.claim([key]).keys() == {key}  # a's own claim, renewed
        # Only the claimant writes the invoice's transitions: b's are refused, a's go.
        b.mark_importing([key])
        assert a.get(key).state == "validated"  # type: ignore[union-attr]
        a.mark_importing([key])
        a.mark_failed([key], "503")  # a step that ends gives the invoice back
        assert b.claim([key]).keys() == {key}
    with open_outbox(pg_url, "org-1") as c:  # closing gave back every claim
        assert c.claim([key, other]).keys() == {key, other}


def test_a_sent_invoice_is_never_claimed_again(pg_url: str) -> None:
    with open_outbox(pg_url, "org-1") as a, open_outbox(pg_url, "org-1") as b:
        key = _record(a)
        a.claim([key])
        a.mark_imported({key: "inv-1"})
        a.mark_sending(key)
        a.mark_sent(key)
        assert b.claim([key]) == {}


def test_a_dead_senders_claim_is_taken_over_when_its_lease_runs_out(pg_url: str) -> None:
    import time

    dead = open_outbox(pg_url, "org-1", lease_seconds=1.0)
    key = _record(dead)
    assert dead.claim([key]).keys() == {key}
    dead.mark_importing([key])
    dead._stop.set()  # type: ignore[attr-defined]  # it stops renewing, as if SIGKILLed
    with open_outbox(pg_url, "org-1", lease_seconds=1.0) as heir:
        assert heir.claim([key]) == {}  # still leased
        time.sleep(1.3)
        taken = heir.claim([key])
        assert taken.keys() == {key} and taken[key].state == "importing"
        assert any(state == "claimed" and detail and "taken over" in detail
                   for _, state, detail in heir.history(key))
        dead.mark_imported({key: "stale"})  # the dead sender's late write is refused
        assert heir.get(key).invoice_id is None  # type: ignore[union-attr]
        dead.db.close()  # type: ignore[attr-defined]


def test_a_live_senders_lease_is_renewed_while_it_runs(pg_url: str) -> None:
    import time

    with open_outbox(pg_url, "org-1", lease_seconds=0.6) as live, \
            open_outbox(pg_url, "org-1", lease_seconds=0.6) as other:
        key = _record(live)
        live.claim([key])
        time.sleep(1.5)  # two and a half leases: the heartbeat renewed it meanwhile
        assert other.claim([key]) == {}


def test_two_senders_recording_one_source_keep_one_upload(pg_url: str) -> None:
    """Conversions may give other bytes each time: whoever records a source first wins."""
    with open_outbox(pg_url, "org-1") as a, open_outbox(pg_url, "org-1") as b:
        first = a.record_validated(source_sha="src", source_path="/in/x.xml",
                                   upload_format="facturx:default", file_name="x.pdf",
                                   upload=b"%PDF-1", invoice_number="X", buyer_siren=None)
        second = b.record_validated(source_sha="src", source_path="/in/x.xml",
                                    upload_format="facturx:default", file_name="x.pdf",
                                    upload=b"%PDF-2", invoice_number="X", buyer_siren=None)
        assert second.upload_sha256 == first.upload_sha256
        assert [i.upload_sha256 for i in b.items()] == [first.upload_sha256]


def test_migrations_are_versioned_and_applied_once_by_concurrent_starters(pg_url: str) -> None:
    import threading

    import psycopg

    from facturflow.transmit.outbox_pg import SCHEMA_VERSION, connect

    errors: list[BaseException] = []

    def start() -> None:
        try:
            connect(pg_url).close()
        except BaseException as exc:  # (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_a_schema_newer_than_this_facturflow_is_refused(pg_url: str) -> None:
    import psycopg

    from facturflow.transmit.outbox_pg import DatabaseUnavailableError, connect

    connect(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'from the future', 0)")
    with pytest.raises(DatabaseUnavailableError, match=r"schema version 999.*upgrade"):
        open_outbox(pg_url, "org-1")


def test_a_sender_whose_claim_was_taken_over_writes_nothing_more(pg_url: str) -> None:
    """Fencing: sender A claims an invoice, then stops (SIGSTOP, a long GC pause) beyond its
    lease; B takes it over and sends it, which releases the claim. When A wakes up, its step
    is refused: the record stays B's (`sent` never goes back to `sending`, `imported` or
    `failed`), and the step before a network request raises, so that A makes no request."""
    import psycopg

    from facturflow.transmit.outbox_pg import ClaimLostError

    with open_outbox(pg_url, "org-1", lease_seconds=30) as a, \
            open_outbox(pg_url, "org-1", lease_seconds=30) as b:
        key = _record(a)
        assert set(a.claim([key])) == {key}
        a.mark_importing([key])
        with psycopg.connect(pg_url, autocommit=True) as conn:  # A's lease runs out
            conn.execute("UPDATE items SET lease_until = 0 WHERE upload_sha256 = %s", (key,))
        assert set(b.claim([key])) == {key}  # taken over
        b.mark_imported({key: "inv-b"})
        b.mark_sending(key)
        b.mark_sent(key)  # released
        # A wakes up: what it would record after its import, then its next steps.
        a.mark_imported({key: "inv-a"})
        with pytest.raises(ClaimLostError, match="another sender"):
            a.mark_sending(key)
        a.mark_sent(key)
        a.mark_failed([key], "send failed")
        with pytest.raises(ClaimLostError):
            a.mark_importing([key])
        item = b.get(key)
        assert item is not None and item.state == "sent" and item.invoice_id == "inv-b"
        states = [h[1] for h in b.history(key)]
        assert states == ["validated", "importing", "claimed", "imported", "sending", "sent"]
        # A claim of its own again (the invoice is free, not sent): A may go on.
        key2 = _record(a, b"<Invoice>2</Invoice>", "N-2")
        assert set(a.claim([key2])) == {key2}
        a.mark_importing([key2])
        # Without any claim (outbox retry, a failure before claiming): as before.
        key3 = _record(b, b"<Invoice>3</Invoice>", "N-3")
        b.mark_failed([key3], "not reachable")
        b.reset_failed(key3)
        assert b.get(key3).state == "validated"  # type: ignore[union-attr]
