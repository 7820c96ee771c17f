"""`make demo`'s service step: start the service, validate one invoice with curl, stop it."""

from __future__ import annotations

import os

import pytest

from facturflow import demo


def test_the_demo_validates_through_the_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.serve_step(dict(os.environ)) == 0
    out = capsys.readouterr().out
    assert "/v1/validate" in out
    assert "fixtures/valid/fr-invoice-en16931.xml: valid (xml, cii, en16931)" in out
    assert "exit code 0: as expected" in out
