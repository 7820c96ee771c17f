"""Edges a new user (or an attacker) reaches first: hostile values, one line each, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from facturflow import exitcodes
from facturflow.cli import main
from facturflow.transmit.outbox import StateFolderError, check_state

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VALID = FIXTURES / "valid" / "fr-invoice-en16931.xml"


@pytest.mark.parametrize(
    "args",
    [
        # nan passed click's FloatRange (every comparison false): the wait never gave up,
        # and validate ran without a time limit; inf and 1e300 crashed with an OverflowError.
        ["validate", "--timeout", "nan", str(VALID)],
        ["validate", "--timeout", "inf", str(VALID)],
        ["validate", "--timeout", "1e300", str(VALID)],
        ["send", "--wait", "--timeout", "nan", str(VALID)],
        ["send", "--wait", "--timeout", "-1", str(VALID)],
        ["send", "--wait", "--poll-interval", "-1", str(VALID)],
        ["send", "--wait", "--poll-interval", "nan", str(VALID)],
        ["sandbox", "--fault-rate", "nan"],
        ["status", "--watch", "--timeout", "nan"],
        ["status", "--watch", "--poll-interval", "nan"],
        ["register", "status", "--timeout", "nan"],
        ["register", "status", "--poll-interval", "nan"],
        ["doctor", "--max-skew", "nan"],
        ["webhook", "serve", "--tolerance", "nan"],
        ["webhook", "serve", "--exec-timeout", "nan"],
    ],
)
def test_non_finite_or_out_of_range_numbers_are_usage_errors(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTURFLOW_STATE", str(tmp_path / "state"))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == exitcodes.USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    option = args[-2] if args[-1] != str(VALID) else args[-3]
    # send's --timeout is now an alias of --wait-timeout: click names both.
    names = {"--timeout": "'--wait-timeout' / '--timeout'"} if args[0] == "send" else {}
    assert f"Invalid value for {names.get(option, repr(option))}" in result.output
    assert result.output.count("Error:") == 1
    assert not (tmp_path / "state").exists()  # refused before anything started


# --- file names that are not UTF-8 (any byte but '/' and NUL is allowed on POSIX) ---------------

BAD_NAME = os.fsdecode(b"inv\xe9\xff.xml")  # 'inv\udce9\udcff.xml': Latin-1 bytes, undecodable


@pytest.fixture
def bad_named(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    try:
        (folder / BAD_NAME).write_bytes(VALID.read_bytes())
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses non-UTF-8 file names")
    return folder


@pytest.mark.parametrize("fmt", ["json", "sarif", "junit", "text"])
def test_validate_reports_a_non_utf8_file_name_in_every_format(
    fmt: str, bad_named: Path, tmp_path: Path
) -> None:
    # JSON to --output and SARIF anywhere failed with a UnicodeEncodeError traceback.
    out = tmp_path / f"report.{fmt}"
    result = CliRunner().invoke(main, ["validate", "--format", fmt, "--output", str(out),
                                       str(bad_named)])
    assert result.exit_code == exitcodes.OK, result.output
    assert result.exception is None
    assert out.stat().st_size > 0 and not list(tmp_path.glob(".report.*.part"))
    if fmt == "sarif":
        uris = [a["location"]["uri"] for run in json.loads(out.read_bytes())["runs"]
                for a in run["artifacts"]]
        assert any(uri.endswith("inv%E9%FF.xml") for uri in uris), uris
    if fmt == "json":  # the name's own bytes, as on standard output
        assert b"inv\xe9\xff.xml" in out.read_bytes()
    stdout = CliRunner().invoke(main, ["validate", "--format", fmt, str(bad_named)])
    assert stdout.exit_code == exitcodes.OK and stdout.exception is None, stdout.output


def test_send_refuses_a_non_utf8_file_name_in_one_line_and_sends_the_rest(
    bad_named: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outbox (SQLite) could not store the name: a traceback, and nothing else was sent.
    for name in list(os.environ):
        if name.startswith("QONTO_") or name.startswith("FACTURFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FACTURFLOW_STATE", str(tmp_path / "state"))
    (bad_named / "good.xml").write_bytes(
        (FIXTURES / "valid" / "fr-invoice-ubl-en16931.xml").read_bytes()
    )
    result = CliRunner().invoke(main, ["send", "--wait", "--poll-interval", "0.2",
                                       "--timeout", "30", str(bad_named)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == exitcodes.INVALID, result.output  # one input refused
    assert "file name is not valid UTF-8: rename the file" in result.output
    assert "good.xml: " in result.output and "sent (invoice" in result.output
    for command in (["status"], ["outbox", "show"], ["outbox", "forget", "--yes"]):
        found = CliRunner().invoke(main, [*command, str(bad_named / BAD_NAME)])
        assert found.exception is None or isinstance(found.exception, SystemExit), found.output
        assert found.exit_code in (exitcodes.INVALID, exitcodes.USAGE), found.output
        assert "Traceback" not in found.output


# --- a --state that names a file ----------------------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["status", "--format", "json"],
                                     ["outbox", "check"], ["outbox", "list"]])
@pytest.mark.parametrize("under", [False, True])
def test_a_state_folder_that_is_a_file_is_a_state_error_not_an_empty_outbox(
    command: list[str], under: bool, tmp_path: Path
) -> None:
    # status said "no invoice in the outbox" and outbox check said "ok", both exit 0.
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    state = afile / "sub" if under else afile
    result = CliRunner().invoke(main, [*command, "--state", str(state)])
    assert result.exit_code == exitcodes.STATE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if "json" in command:
        assert json.loads(result.stdout)["error"]["exit_code"] == exitcodes.STATE
    else:
        assert result.output.strip().splitlines() == [
            f"error: the state folder {state} is {'under a file' if under else 'not a folder'}"
        ]
    with pytest.raises(StateFolderError):
        check_state(state)
    assert afile.read_text() == "not a folder"


# --- SIGTERM ------------------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigterm_stops_validate_like_ctrl_c_and_leaves_no_worker_behind(tmp_path: Path) -> None:
    # SIGTERM killed the parent alone: its workers stayed for ever (orphans waiting on a pipe
    # they hold both ends of), and the files finished were not reported.
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(400):
        (folder / f"f{i:03}.xml").write_bytes(VALID.read_bytes())
    # The 400 files can all finish (exit 0) before the signal on a fast machine: two UBL files,
    # last in order, under a rule pack that never finishes on UBL keep the batch running.
    ubl = FIXTURES / "valid" / "fr-invoice-ubl-en16931.xml"
    for name in ("z0.xml", "z1.xml"):
        (folder / name).write_bytes(ubl.read_bytes())
    pack = tmp_path / "slow"
    pack.mkdir()
    (pack / "rulepack.toml").write_text(
        'name = "slow"\n[[schematron]]\nfile = "rules.xslt"\nsyntaxes = ["ubl-invoice"]\n'
    )
    (pack / "rules.xslt").write_text(
        '<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><out><xsl:value-of select="sum(for $i in 1 to 300000, '
        '$j in 1 to 300000 return ($i * $j) mod 7)"/></out></xsl:template></xsl:stylesheet>'
    )
    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "facturflow", "validate", "--jobs", "2", "--format", "json",
         "--rule-pack", str(pack), "--output", str(out), str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline and process.poll() is None:
        workers |= _children(process.pid)
        time.sleep(0.1)
    assert workers, "the batch started no worker"
    time.sleep(3)  # usually some files finished (a loaded machine may have none: still complete)
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=60)  # orphans held the pipes open: no end
    except subprocess.TimeoutExpired:
        for pid in (process.pid, *workers):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)  # never leave them to the next test
        raise
    assert process.returncode == exitcodes.INTERRUPTED, err.decode()
    assert b"Traceback" not in err and b"interrupted: " in err
    reported = json.loads(out.read_text(encoding="utf-8"))["files"]
    assert len(reported) < 402  # parseable, and stopped before the end
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "worker processes outlived the command"


# --- an outbox deleted or emptied beside its stored uploads -------------------------------------


@pytest.mark.parametrize("emptied", [False, True])
def test_outbox_check_does_not_bless_a_lost_outbox(emptied: bool, tmp_path: Path) -> None:
    # check said "ok" (exit 0) where send refuses the folder (OutboxLostError, exit 6); with an
    # emptied file, status and outbox list said "no such table: items".
    state = tmp_path / "state"
    (state / "blobs").mkdir(parents=True)
    (state / "blobs" / ("ab" * 32)).write_bytes(b"an upload")
    if emptied:
        (state / "outbox.sqlite3").write_bytes(b"")
    report = check_state(state)
    assert not report.ok and report.database.startswith("lost")
    result = CliRunner().invoke(main, ["outbox", "check", "--state", str(state)])
    assert result.exit_code == exitcodes.STATE, result.output
    assert "needs attention" in result.output
    for command in (["status"], ["outbox", "list"]):
        listed = CliRunner().invoke(main, [*command, "--state", str(state)])
        assert listed.exit_code == exitcodes.STATE, listed.output
        assert "stored upload(s) but its outbox" in listed.output
        assert "no such table" not in listed.output


def test_an_emptied_outbox_without_uploads_is_a_new_one_for_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # send used it as new, but send --dry-run, status and outbox list failed (exit 6).
    for name in list(os.environ):
        if name.startswith("QONTO_") or name.startswith("FACTURFLOW_"):
            monkeypatch.delenv(name)
    state = tmp_path / "state"
    (state / "blobs").mkdir(parents=True)
    (state / "outbox.sqlite3").write_bytes(b"")
    assert check_state(state).ok
    for command in (["status"], ["outbox", "list"], ["outbox", "check"],
                    ["send", "--dry-run", str(VALID)]):
        result = CliRunner().invoke(main, [*command, "--state", str(state)])
        assert result.exit_code == exitcodes.OK, (command, result.output)
    assert (state / "outbox.sqlite3").stat().st_size == 0  # the dry run wrote nothing


# --- a state folder that does not exist ---------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["status"], ["status", "--watch"], ["status", "--refresh"], ["status", "--format", "json"],
    ["outbox", "list"], ["outbox", "show", "F-1"], ["outbox", "check"],
    ["outbox", "retry", "F-1"], ["outbox", "forget", "--yes", "F-1"],
    ["register", "status"],
])
@pytest.mark.parametrize("named_by", ["option", "environment"])
def test_a_state_folder_that_does_not_exist_is_a_state_error_naming_it(
    command: list[str], named_by: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # status said "no invoice in the outbox" and outbox check "ok", both exit 0, for a
    # mistyped --state: the commands that read the state never make it.
    missing = tmp_path / "typo" / "state"
    if named_by == "option":
        command = [*command, "--state", str(missing)]
    else:
        monkeypatch.setenv("FACTURFLOW_STATE", str(missing))
    result = CliRunner().invoke(main, command)
    assert result.exit_code == exitcodes.STATE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if "json" in command:
        error = json.loads(result.stdout)["error"]
        assert error["exit_code"] == exitcodes.STATE and error["code"] == "no_state_folder"
        assert str(missing) in error["message"]
    else:
        assert result.output.strip().splitlines() == [
            f"error: the state folder {missing} does not exist: nothing was sent with it "
            "(--state or FACTURFLOW_STATE names the folder `facturflow send` used)"
        ]
    assert not (tmp_path / "typo").exists()
