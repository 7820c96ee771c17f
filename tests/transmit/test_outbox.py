"""The outbox journal: transitions, durability across reopen, the exclusive lock, blob integrity."""

from __future__ import annotations

from pathlib import Path

import pytest

from facturflow.errors import TransmitError
from facturflow.transmit.outbox import Outbox, OutboxBusyError, organisations, sha256


def _record(outbox: Outbox, body: bytes = b"<Invoice/>", number: str = "N-1") -> str:
    item = outbox.record_validated(
        source_sha=sha256(body + b"src"), source_path=f"/in/{number}.xml",
        upload_format="xml:default", file_name=f"{number}.xml", upload=body,
        invoice_number=number, buyer_siren="610732067",
    )
    return item.upload_sha256


def test_an_invoice_walks_every_state_and_each_step_survives_a_reopen(tmp_path: Path) -> None:
    with Outbox(tmp_path, "org-1") as outbox:
        key = _record(outbox)
        assert [i.upload_sha256 for i in outbox.pending_import()] == [key]
        outbox.mark_importing([key])
    with Outbox(tmp_path, "org-1") as outbox:  # as after a kill: the state is still there
        assert outbox.get(key).state == "importing"  # type: ignore[union-attr]
        assert [i.upload_sha256 for i in outbox.pending_import()] == [key]
        outbox.mark_imported({key: "inv-1"})
        assert outbox.pending_import() == []
        assert [i.invoice_id for i in outbox.pending_send()] == ["inv-1"]
        outbox.mark_sending(key)
    with Outbox(tmp_path, "org-1") as outbox:
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


def test_failed_items_go_back_to_the_step_they_failed(tmp_path: Path) -> None:
    with Outbox(tmp_path, "org-1") as outbox:
        a = _record(outbox, b"<A/>", "A")
        b = _record(outbox, b"<B/>", "B")
        outbox.mark_imported({b: "inv-b"})
        outbox.mark_failed([a, b], "503 after retries")
        assert [i.upload_sha256 for i in outbox.pending_import()] == [a]
        assert [i.upload_sha256 for i in outbox.pending_send()] == [b]
        assert outbox.get(a).error == "503 after retries"  # type: ignore[union-attr]


def test_the_same_upload_is_one_row_and_a_source_maps_to_its_first_upload(tmp_path: Path) -> None:
    with Outbox(tmp_path, "org-1") as outbox:
        first = _record(outbox)
        again = _record(outbox)
        assert first == again and len(outbox.items()) == 1
        record = outbox.lookup_source(sha256(b"<Invoice/>src"), "xml:default")
        assert record is not None and record.upload_sha256 == first
        assert outbox.lookup_source(sha256(b"<Invoice/>src"), "facturx:default") is None


def test_organisations_are_kept_apart(tmp_path: Path) -> None:
    with Outbox(tmp_path, "org-1") as outbox:
        _record(outbox)
    with Outbox(tmp_path, "org-2") as outbox:
        assert outbox.items() == []
        _record(outbox)
    assert organisations(tmp_path) == ["org-1", "org-2"]


def test_rejections_are_remembered(tmp_path: Path) -> None:
    with Outbox(tmp_path, "org-1") as outbox:
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


def test_find_by_path_id_number_or_hash_prefix(tmp_path: Path) -> None:
    with Outbox(tmp_path, "org-1") as outbox:
        key = _record(outbox, number="F-9")
        outbox.mark_imported({key: "inv-9"})
        for ref in ("/in/F-9.xml", "inv-9", "F-9", key[:12]):
            assert [i.upload_sha256 for i in outbox.find(ref)] == [key], ref
        assert outbox.find("nothing") == []
