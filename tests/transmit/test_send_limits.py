"""`send --max-size / --max-nodes` and SendOptions(limits=...) (issue 19): an input over a limit
is rejected, named, and never uploaded; a run with the limit raised sends it (the refusal is
not remembered: it is the run's limit, not the file's defect)."""

from __future__ import annotations

import json
from pathlib import Path

from facturflow.exitcodes import INVALID
from facturflow.transmit.pipeline import SendOptions, send_invoices
from facturflow.transmit.sandbox import Sandbox
from facturflow.xmlsafe import DEFAULT_MAX_NODES, Limits

from .transmit_helpers import cii_variant, make_client
from .transmit_helpers import run_raising as run


def _source(tmp_path: Path, number: str, *, many_items: bool = False) -> Path:
    """A valid CII; with `many_items`, followed by a comment of DEFAULT_MAX_NODES '=' characters
    (over the default markup-item limit while its tree stays tiny)."""
    path = tmp_path / f"{number}.xml"
    data = cii_variant(number)
    path.write_bytes(data + b"\n<!--" + b"=" * DEFAULT_MAX_NODES + b"-->\n" if many_items
                     else data)
    return path


def test_max_size_rejects_the_input_and_a_raised_limit_sends_it(box: Sandbox,
                                                                 tmp_path: Path) -> None:
    source, state = _source(tmp_path, "LIM-1"), str(tmp_path / "state")
    size = source.stat().st_size
    refused = run("send", str(source), "--upload", "xml", "--state", state, "--max-size", "1KB")
    assert refused.exit_code == INVALID, refused.output
    named = [line for line in refused.output.splitlines() if "--max-size" in line]
    assert len(named) == 1
    assert f"{size} bytes exceeds --max-size 1 KB (raise it with --max-size)" in named[0]
    assert box.client_invoices() == []
    sent = run("send", str(source), "--upload", "xml", "--state", state, "--max-size",
               str(size), "--format", "json")
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["counts"]["sent"] == 1
    assert [i["number"] for i in box.client_invoices()] == ["LIM-1"]


def test_dry_run_takes_the_limits(box: Sandbox, tmp_path: Path) -> None:
    source, state = _source(tmp_path, "LIM-2"), str(tmp_path / "state")
    refused = run("send", str(source), "--upload", "xml", "--dry-run", "--state", state,
                  "--max-size", "1KB", "--format", "json")
    assert refused.exit_code == INVALID
    (outcome,) = json.loads(refused.stdout)["invoices"]
    assert outcome["outcome"] == "rejected"
    assert "exceeds --max-size 1 KB (raise it with --max-size)" in outcome["reason"]
    admitted = run("send", str(source), "--upload", "xml", "--dry-run", "--state", state,
                   "--max-size", "1MB", "--format", "json")
    assert admitted.exit_code == 0, admitted.output
    assert json.loads(admitted.stdout)["counts"]["would_send"] == 1
    assert box.client_invoices() == []


def test_max_nodes_reaches_detection_validation_and_the_factur_x(box: Sandbox,
                                                                 tmp_path: Path) -> None:
    source, state = _source(tmp_path, "LIM-3", many_items=True), str(tmp_path / "state")
    refused = run("send", str(source), "--state", state, "--format", "json")
    assert refused.exit_code == INVALID
    (outcome,) = json.loads(refused.stdout)["invoices"]
    assert outcome["outcome"] == "rejected"
    assert (f"exceeds --max-nodes {DEFAULT_MAX_NODES} (raise it with --max-nodes)"
            in outcome["reason"])
    assert box.client_invoices() == []
    # The default upload is a Factur-X made from the XML: the conversion takes the limit too.
    # (A dry run: the sandbox, like Qonto, reads uploads under its own limits.)
    admitted = run("send", str(source), "--dry-run", "--state", state, "--format", "json",
                   "--max-nodes", str(2 * DEFAULT_MAX_NODES))
    assert admitted.exit_code == 0, admitted.output
    (outcome,) = json.loads(admitted.stdout)["invoices"]
    assert outcome["outcome"] == "would_send", outcome
    assert "would upload LIM-3.pdf" in outcome["reason"]
    assert box.client_invoices() == []


def test_the_library_names_the_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    source = _source(tmp_path, "LIM-4")
    options = SendOptions(upload="xml", limits=Limits(max_bytes=1024))
    with make_client(sandbox) as client:
        summary = send_invoices([source], client, tmp_path / "state", options)
    (outcome,) = summary.outcomes
    assert outcome.kind == "rejected" and outcome.reason is not None
    assert "exceeds the limit of 1024 bytes" in outcome.reason
    assert "--max-size" not in outcome.reason
    assert sandbox.client_invoices() == []
