"""Large SVRL is read as a stream (issue 19: bounded memory on invoices failing on every line);
the findings are exactly those of the whole-tree reading."""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks.generate import generate
from benchmarks.series import every_line_invalid

from facturflow.artefacts import builtin
from facturflow.detection import detect
from facturflow.validation import schematron


def _svrl(key: str, xml: bytes) -> bytes:
    engine: Any = schematron._get_engine()
    executable = schematron._compiled(engine, builtin(key))
    node = schematron._parse_for_saxon(engine, xml)
    return str(executable.transform_to_string(xdm_node=node)).encode("utf-8")


@pytest.mark.parametrize(("key", "syntax", "lines"), [
    ("sch-en16931-ubl", "ubl", 40),    # under the findings cap
    ("sch-brfr-ubl", "ubl", 700),      # over it: TRUNCATED with the same count
    ("sch-fx-en16931", "cii", 300),
])
def test_stream_and_tree_give_the_same_findings(
    key: str, syntax: str, lines: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = detect(every_line_invalid(generate(lines, syntax), syntax))
    svrl = _svrl(key, document.xml)
    monkeypatch.setattr(schematron, "_STREAM_SVRL_BYTES", 1 << 40)
    whole = schematron.parse_svrl(svrl, builtin(key), document.tree)
    monkeypatch.setattr(schematron, "_STREAM_SVRL_BYTES", 0)
    streamed = schematron.parse_svrl(svrl, builtin(key), document.tree)
    assert whole == streamed
    assert whole[1] and len(whole[0]) >= min(lines, schematron._MAX_FINDINGS)
    if lines > schematron._MAX_FINDINGS:
        assert whole[0][-1].rule == "TRUNCATED"
    assert all(f.location and f.location.line for f in whole[0] if f.rule != "TRUNCATED")


@pytest.mark.parametrize("svrl", [
    b'<svrl:schematron-output xmlns:svrl="http://purl.oclc.org/dsdl/svrl">'
    b'<svrl:failed-assert id="X"><svrl:text>t</svrl:text></svrl:failed-assert>'
    b"</svrl:schematron-output>",  # no rule fired: fail closed
    b'<svrl:schematron-output xmlns:svrl="http://purl.oclc.org/dsdl/svrl"><svrl:fired-rule/>'
    b'<svrl:failed-assert id="X">',  # cut short
])
def test_stream_fails_closed_like_the_tree(svrl: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    artefact = builtin("sch-brfr-ubl")
    whole = schematron.parse_svrl(svrl, artefact)
    monkeypatch.setattr(schematron, "_STREAM_SVRL_BYTES", 0)
    streamed = schematron.parse_svrl(svrl, artefact)
    assert streamed[1] is whole[1] is False
    assert [f.rule for f in streamed[0]] == [f.rule for f in whole[0]] == ["LAYER-FAILED"]
    assert streamed[0][0].message.split(":")[0] == whole[0][0].message.split(":")[0]


@pytest.mark.parametrize("syntax", ["ubl", "cii"])
def test_large_documents_write_their_svrl_to_a_file_with_the_same_report(
    syntax: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import facturflow

    xml = every_line_invalid(generate(120, syntax), syntax)
    in_memory = facturflow.validate(xml)
    calls: list[str] = []
    original = schematron._parse_large_svrl

    def spy(*args: Any) -> Any:
        calls.append(type(args[0]).__name__)
        return original(*args)

    monkeypatch.setattr(schematron, "_LARGE_DOCUMENT_BYTES", 0)
    monkeypatch.setattr(schematron, "_parse_large_svrl", spy)
    through_file = facturflow.validate(xml)
    assert calls and all(name == "BufferedReader" for name in calls)
    assert through_file.findings == in_memory.findings and not in_memory.ok
    assert len(in_memory.findings) > 120
