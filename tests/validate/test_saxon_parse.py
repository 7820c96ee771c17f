"""Saxon's copy of a document: the scratch-file route gives the string route's tree."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from benchmarks.generate import generate

from facturflow import validate
from facturflow.detection import detect
from facturflow.rules import DEFAULT_RULE_SETS, plan
from facturflow.validation import schematron


def _svrls(document_xml: bytes, node: object) -> list[str]:
    engine = schematron._get_engine()
    steps, _ = plan(detect(document_xml), DEFAULT_RULE_SETS)
    return [
        schematron._compiled(engine, s.artefact).transform_to_string(xdm_node=node)
        for s in steps
        if s.layer == "schematron"
    ]


def test_large_documents_go_through_an_unnamed_scratch_file_with_the_same_results() -> None:
    xml = detect(generate(60, "cii", seed=3)).xml
    assert len(xml) >= schematron._SCRATCH_MIN_BYTES
    engine = schematron._get_engine()
    by_file = schematron._parse_for_saxon(engine, xml)
    by_string = engine.processor.parse_xml(xml_text=xml.decode("utf-8"))
    assert _svrls(xml, by_file) == _svrls(xml, by_string)
    fd = schematron._scratch_fd()
    if fd is None:  # not Linux: the string route is the only one
        return
    assert os.fstat(fd).st_size == 0  # emptied after each parse
    assert os.fstat(fd).st_nlink == 0  # no name: nothing to clean up, nobody else can open it


def test_a_forked_child_gets_its_own_scratch_file() -> None:
    xml = generate(60, "ubl", seed=4)
    assert validate(xml).ok
    parent_fd = schematron._scratch_fd()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        ok = validate(xml).ok and schematron._scratch_fd() != parent_fd
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0
    assert validate(xml).ok  # the parent's file still serves the parent


def test_a_scratch_route_that_fails_is_given_up_for_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    xml = detect(generate(60, "cii", seed=5)).xml
    engine = schematron._get_engine()
    expected = _svrls(xml, engine.processor.parse_xml(xml_text=xml.decode("utf-8")))
    calls: list[str] = []

    class Refusing:
        """Saxon's processor, refusing files (as when /proc is hidden from it)."""

        def __init__(self, real: Any) -> None:
            self._real = real

        def parse_xml(self, **kwargs: Any) -> Any:
            calls.append(next(iter(kwargs)))
            if "xml_file_name" in kwargs:
                raise RuntimeError("cannot read the file")
            return self._real.parse_xml(**kwargs)

    monkeypatch.setattr(schematron, "_scratch", None)
    monkeypatch.setattr(schematron, "_scratch_refused", None)
    fake = SimpleNamespace(processor=Refusing(engine.processor))
    first = schematron._parse_for_saxon(fake, xml)  # type: ignore[arg-type]
    second = schematron._parse_for_saxon(fake, xml)  # type: ignore[arg-type]
    assert calls == ["xml_file_name", "xml_text", "xml_text"]  # tried once, then not again
    assert _svrls(xml, first) == _svrls(xml, second) == expected
    assert schematron._scratch_fd() is None
