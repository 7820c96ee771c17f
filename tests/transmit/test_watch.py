"""`facturflow status --watch`: polls until every listed invoice is final, printing each
transition as it happens (text or JSON lines); exit 5 at --timeout, 1 on a refusal, 130 on
Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from facturflow import exitcodes
from facturflow.transmit.sandbox import Sandbox

from .transmit_helpers import cii_variant, run, sent

SRC = Path(__file__).resolve().parents[2] / "src"


def test_watch_prints_each_transition_until_final(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "W-1", "approved")
    result = run("status", "--watch", "--poll-interval", "0.1", "--timeout", "20",
                 "--state", state)
    assert result.exit_code == exitcodes.OK, result.output
    lines = result.stdout.splitlines()
    codes = [c for c in ("200 Déposée", "201 Émise par la plateforme",
                         "202 Reçue par la plateforme", "205 Approuvée")
             if any(c in line for line in lines)]
    assert len(codes) == 4, lines
    # in order, each once, the last one final
    firsts = [next(n for n, line in enumerate(lines) if c in line) for c in codes]
    assert firsts == sorted(firsts) and len(lines) == 5, lines
    assert "final: approved (205 Approuvée)" in lines[3]
    assert not any("final" in line for line in lines[:3])
    assert lines[-1] == "all 1 invoice(s) final"


def test_watch_of_an_invoice_already_final_marks_only_the_latest_event(
        box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "W-6", "approved")
    box.advance(10)
    result = run("status", "--watch", "--poll-interval", "0.1", "--state", state,
                 "--format", "json")
    assert result.exit_code == exitcodes.OK, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()][:-1]
    assert [r["final"] for r in rows] == [False, False, False, True]
    assert rows[-1]["outcome_text"] == "approved (205 Approuvée)"


def test_watch_json_lines(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "W-2", "refused")
    result = run("status", "W-2", "--watch", "--poll-interval", "0.1", "--timeout", "20",
                 "--state", state, "--format", "json")
    assert result.exit_code == exitcodes.INVALID, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    transitions = [r for r in rows if r["type"] == "transition"]
    assert [r["status_code"] for r in transitions] == [200, 201, 202, 210]
    assert transitions[-1]["label"] == "210 Refusée" and transitions[-1]["final"]
    assert transitions[-1]["outcome"] == "refused" and transitions[-1]["reason"] == "REFUS"
    assert rows[-1]["type"] == "done" and rows[-1]["exit_code"] == exitcodes.INVALID


def test_watch_gives_up_at_the_timeout_with_exit_5(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "W-3", "delivered")  # 202 and no decision: never final
    started = time.monotonic()
    result = run("status", "--watch", "--poll-interval", "0.2", "--timeout", "1.5",
                 "--state", state)
    assert result.exit_code == exitcodes.PENDING, result.output
    assert time.monotonic() - started < 10
    assert "still pending (exit 5): W-3" in result.stdout


def test_watch_with_nothing_matching_exits_1(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "W-4", "approved")
    result = run("status", "NOPE", "--watch", "--state", state)
    assert result.exit_code == exitcodes.INVALID and "no sent invoice to watch" in result.stdout


def test_ctrl_c_during_watch_exits_130(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "W-5", "delivered")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTO_")}
    env.update(box.env(), PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "facturflow", "status", "--watch",
                             "--poll-interval", "0.2", "--state", state], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "200 Déposée" in proc.stdout.readline()  # watching
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == exitcodes.INTERRUPTED, err
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err


def test_watch_says_which_listed_invoices_failed_to_send_and_exits_1(box: Sandbox,
                                                                     tmp_path: Path) -> None:
    # Imported, then send_by_einvoice refused (412, recipient unreachable): failed, not sent.
    box.config.unreachable_sirens = frozenset({"177441383", "610732067"})
    source, state = tmp_path / "W-8.xml", str(tmp_path / "state")
    source.write_bytes(cii_variant("W-8"))
    assert run("send", str(source), "--upload", "xml", "--state", state).exit_code == 1
    result = run("status", "--watch", "--state", state)
    assert result.exit_code == exitcodes.INVALID, result.output
    assert "no sent invoice to watch (failed to send: W-8)" in result.stdout
