"""Property tests: on any bytes, detect and validate give a result or a documented error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facturflow import detect, validate
from facturflow.detection import PROFILES, SYNTAXES, Document
from facturflow.errors import InputError

from .helpers import VALID_CII, VALID_UBL

PREFIXES = st.sampled_from(
    [b"", b"%PDF-1.7\n", b"<?xml version='1.0'?>", b"\xef\xbb\xbf<", b"\xff\xfe<\x00", b"<a>"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=PREFIXES, body=st.binary(max_size=2048))
def test_detect_on_any_bytes_returns_a_document_or_an_input_error(
    prefix: bytes, body: bytes
) -> None:
    try:
        document = detect(prefix + body)
    except InputError as exc:
        assert exc.message and len(exc.message) < 2000
        return
    assert isinstance(document, Document)
    assert document.syntax in SYNTAXES and document.profile in PROFILES


SEEDS = [VALID_CII.read_bytes(), VALID_UBL.read_bytes()]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.integers(min_value=0, max_value=20000),
    insert=st.binary(max_size=64),
)
def test_validate_on_damaged_invoices_always_gives_a_report(
    seed: bytes, cut: int, insert: bytes
) -> None:
    data = seed[: cut % (len(seed) + 1)] + insert + seed[cut % (len(seed) + 1) :]
    report = validate(data)
    if data == seed:
        assert report.ok
    if report.error is not None:
        assert not report.ok and report.findings and report.findings[0].severity == "fatal"
    assert all(f.severity in ("fatal", "warning", "information") for f in report)
