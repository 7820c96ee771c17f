"""`facturflow outbox` (list, show, retry, forget, check), stored uploads rebuilt from their
source, and a state folder that is read-only or full (real tmpfs mounts, when permitted)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from facturflow import exitcodes
from facturflow.transmit.outbox import Outbox, StoredUploadError, check_state
from facturflow.transmit.sandbox import Sandbox

from .transmit_helpers import cii_variant, run


def _source(folder: Path, number: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{number}.xml"
    path.write_bytes(cii_variant(number))
    return path


def _failed_one(box: Sandbox, tmp_path: Path) -> tuple[Path, str]:
    """A source whose send failed (sending disabled at Qonto), and the state folder."""
    box.set_settings(sending_status="disabled")
    source, state = _source(tmp_path / "in", "O-1"), str(tmp_path / "state")
    assert run("send", str(source), "--upload", "xml", "--state", state).exit_code == 1
    box.set_settings(sending_status="enabled")
    return source, state


def _submissions(box: Sandbox) -> dict[str, int]:
    return {str(c["number"]): int(c["submissions"]) for c in box.counters().values()}


def test_list_failed_show_and_retry(box: Sandbox, tmp_path: Path) -> None:
    _, state = _failed_one(box, tmp_path)
    ok = _source(tmp_path / "in", "O-2")
    assert run("send", str(ok), "--upload", "xml", "--state", state).exit_code == 0
    listing = run("outbox", "list", "--failed", "--state", state)
    assert listing.exit_code == 0 and "O-1 failed" in listing.stdout and "O-2" not in listing.stdout
    assert "2 invoice(s)" in run("outbox", "list", "--state", state).stdout
    shown = run("outbox", "show", "O-1", "--state", state)
    assert shown.exit_code == 0 and "history:" in shown.stdout
    assert "sending is disabled" in shown.stdout
    retried = run("outbox", "retry", "O-1", "--state", state)
    assert retried.exit_code == 0, retried.output
    assert "O-1 sent" in retried.stdout
    assert _submissions(box) == {"O-1": 1, "O-2": 1}
    again = run("outbox", "retry", "O-1", "--state", state)
    assert again.exit_code == exitcodes.USAGE and "nothing to retry" in again.stderr
    assert run("outbox", "show", "nothing-like-this", "--state", state).exit_code == 2


def test_a_stored_upload_missing_is_rebuilt_from_the_unchanged_source(box: Sandbox,
                                                                        tmp_path: Path) -> None:
    # A pre-flight failure leaves the invoice without a Qonto id: its stored upload is needed.
    source, state = _failed_one(box, tmp_path)
    (blob,) = [b for b in (tmp_path / "state" / "blobs").iterdir()]
    blob.unlink()
    check = run("outbox", "check", "--state", state)
    assert check.exit_code == exitcodes.STATE and "is missing" in check.stdout
    result = run("send", str(source), "--upload", "xml", "--state", state)
    assert result.exit_code == 0, result.output
    assert blob.read_bytes() == source.read_bytes() and _submissions(box) == {"O-1": 1}
    assert run("outbox", "check", "--state", state).exit_code == 0


def test_a_corrupt_stored_upload_with_a_changed_source_says_how_to_forget(
    box: Sandbox, tmp_path: Path
) -> None:
    source, state = _failed_one(box, tmp_path)
    (blob,) = list((tmp_path / "state" / "blobs").iterdir())
    blob.write_bytes(b"garbage")
    source.write_bytes(cii_variant("O-1-EDITED"))
    result = run("outbox", "retry", "O-1", "--state", state)
    assert result.exit_code == exitcodes.STATE
    assert "corrupt" in result.stderr and "source has changed" in result.stderr
    assert "facturflow outbox forget" in result.stderr and "Traceback" not in result.output
    with Outbox(state, box.organization_id) as outbox:
        (item,) = outbox.items()
        with pytest.raises(StoredUploadError):
            outbox.blob(item)
    forgot = run("outbox", "forget", "O-1", "--state", state, stdin="y\n")
    assert forgot.exit_code == 0 and "forgotten" in forgot.stdout
    assert not blob.exists()
    assert run("send", str(source), "--upload", "xml", "--state", state).exit_code == 0
    assert _submissions(box) == {"O-1-EDITED": 1}


def test_forget_asks_and_refuses_what_qonto_has_as_sent(box: Sandbox, tmp_path: Path) -> None:
    # Imported, then send_by_einvoice refused (412, recipient unreachable): a Qonto id, not sent.
    box.config.unreachable_sirens = frozenset({"177441383", "610732067"})
    source, state = _source(tmp_path / "in", "O-1"), str(tmp_path / "state")
    assert run("send", str(source), "--upload", "xml", "--state", state).exit_code == 1
    box.config.unreachable_sirens = frozenset()
    declined = run("outbox", "forget", "O-1", "--state", state, stdin="n\n")
    assert declined.exit_code == exitcodes.USAGE and "nothing forgotten" in declined.stderr
    # No answer at all (a script, standard input closed): a no, with the hint, not "Aborted!".
    silent = run("outbox", "forget", "O-1", "--state", state, stdin="")
    assert silent.exit_code == exitcodes.USAGE and "--yes" in silent.stderr
    assert "Aborted" not in silent.output
    # Qonto has the invoice as sent although the outbox does not know (an answer lost).
    invoice_id = box.client_invoices()[0]["id"]
    box.state.data["sends"][invoice_id] = {"calls": 1, "submissions": 1, "sent_at": box.now(),
                                           "outcome": "delivered"}
    refused = run("outbox", "forget", "O-1", "--yes", "--state", state)
    assert refused.exit_code == exitcodes.INVALID and "Qonto has it as sent" in refused.stderr
    assert "O-1" in run("outbox", "list", "--state", state).stdout
    for client in box.state.data["clients"].values():
        client["e_invoicing_reachable"] = True
    ok = _source(tmp_path / "in", "O-3")
    assert run("send", str(ok), "--upload", "xml", "--state", state).exit_code == 0
    sent = run("outbox", "forget", "O-3", "--yes", "--state", state, "--format", "json")
    assert sent.exit_code == exitcodes.INVALID
    assert json.loads(sent.stdout)["error"]["code"] == "sent"


def test_forget_of_an_entry_qonto_never_sent(box: Sandbox, tmp_path: Path) -> None:
    _, state = _failed_one(box, tmp_path)
    result = run("outbox", "forget", "O-1", "--yes", "--state", state)
    assert result.exit_code == 0, result.output
    assert "0 invoice(s)" in run("outbox", "list", "--state", state).stdout


def test_check_of_a_corrupt_outbox_lists_what_was_sent(box: Sandbox, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    for number in ("K-1", "K-2"):
        source = _source(tmp_path / "in", number)
        assert run("send", str(source), "--upload", "xml", "--state", state).exit_code == 0
    db = tmp_path / "state" / "outbox.sqlite3"
    with Outbox(state, box.organization_id) as outbox:
        outbox.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = outbox.db.execute("SELECT rootpage FROM sqlite_master "
                                    "WHERE name='items_invoice'").fetchone()
    data = bytearray(db.read_bytes())
    data[(root - 1) * 4096:root * 4096] = b"\xff" * 4096  # an index page is garbage
    db.write_bytes(bytes(data))
    result = run("outbox", "check", "--state", state)
    assert result.exit_code == exitcodes.STATE and "Traceback" not in result.output
    assert "needs attention" in result.stdout and "move" in result.stdout
    assert "sent: K-1 (" in result.stdout and "sent: K-2 (" in result.stdout
    data[100:4096] = b"\x00" * (4096 - 100)  # now the schema page too: nothing readable
    db.write_bytes(bytes(data))
    listed = run("outbox", "list", "--state", state)
    assert listed.exit_code == exitcodes.STATE and listed.stderr.startswith("error: ")
    assert run("outbox", "check", "--state", state).exit_code == exitcodes.STATE


def test_check_finds_stored_uploads_without_an_outbox(tmp_path: Path) -> None:
    blobs = tmp_path / "state" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / ("ab" * 32)).write_bytes(b"x")
    (blobs / ".blob.tmp123").write_bytes(b"half")
    report = check_state(tmp_path / "state")
    assert report.orphan_blobs == 1 and report.temporary_files == 1
    assert any("without an outbox" in a for a in report.advice)
    assert not (blobs / ".blob.tmp123").exists()


# -- a real small or read-only file system ------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 160 KiB tmpfs mounted on a temporary folder (needs root and CAP_SYS_ADMIN)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    point = tmp_path / "small"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(point)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)


def test_a_full_disk_is_one_line_leaves_no_temporary_file_and_loses_nothing(
    box: Sandbox, tmp_path: Path, small_fs: Path
) -> None:
    folder = tmp_path / "in"
    numbers = [f"D-{n:02d}" for n in range(40)]  # ~8 KB each: more than 160 KiB
    for number in numbers:
        _source(folder, number)
    state = str(small_fs / "state")
    result = run("send", str(folder), "--upload", "xml", "--state", state)
    _lines = result.stderr.strip().splitlines()
    assert result.exit_code == exitcodes.STATE, result.output
    assert len(_lines) == 1 and "disk full" in _lines[0] and "Traceback" not in result.output
    assert not list((small_fs / "state" / "blobs").glob(".blob.*"))
    sent_before = sum(_submissions(box).values())
    assert sent_before < len(numbers)
    _remount(small_fs, "size=20m")  # space freed: the rerun sends the rest, each once
    again = run("send", str(folder), "--upload", "xml", "--state", state)
    assert again.exit_code == 0, again.output
    assert _submissions(box) == dict.fromkeys(numbers, 1)


def test_a_read_only_state_folder_is_one_line(box: Sandbox, tmp_path: Path,
                                              small_fs: Path) -> None:
    state = str(small_fs / "state")
    first = _source(tmp_path / "in", "RO-1")
    assert run("send", str(first), "--upload", "xml", "--state", state).exit_code == 0
    _remount(small_fs, "ro")
    second = _source(tmp_path / "in", "RO-2")
    result = run("send", str(second), "--upload", "xml", "--state", state)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == exitcodes.STATE, result.output
    assert len(lines) == 1 and "read-only" in lines[0], lines
    assert _submissions(box) == {"RO-1": 1}
