"""facturflow.webhooks.verify: known vectors, stale and replayed events, a wrong secret, a body
changed by one byte, malformed headers."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from facturflow.errors import FacturflowError
from facturflow.lifecycle import describe_status, meaning
from facturflow.webhooks import (
    DurableReplayStore,
    MemoryReplayStore,
    WebhookError,
    WebhookFormatError,
    WebhookReplayError,
    WebhookSignatureError,
    WebhookStaleError,
    sign,
    verify,
)

SECRET = "whsec_test"
NOW = 1_700_000_000
BODY = json.dumps({"id": "evt_1", "type": "v1/client-invoices", "event": "updated",
                   "organization_id": "org-1", "created_at": "2023-11-14T22:13:20Z",
                   "data": {"id": "inv-1", "einvoicing_status": "submitted"}}).encode()


def header(body: bytes = BODY, secret: str = SECRET, t: int = NOW) -> dict[str, str]:
    # Computed here, independently of facturflow.webhooks.sign.
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Qonto-SHA256-Signature": f"t={t},v1={digest}"}


def check(headers: dict[str, str], body: bytes = BODY, **kw: object) -> object:
    kw.setdefault("now", NOW + 10)
    kw.setdefault("replay_store", MemoryReplayStore())
    return verify(headers, body, SECRET, **kw)  # type: ignore[arg-type]


def test_a_fixed_literal_vector() -> None:
    body = b'{"id":"evt_1","type":"v1/client-invoices"}'
    headers = {"qonto-sha256-signature": "t=1700000000,v1=c50d03657dfb4a721c1e883d04be0ddd"
               "600caa28b0f02eaea38e181f48fa5057"}
    event = verify(headers, body, "whsec_test", now=1_700_000_000, replay_store=None)
    assert event.id == "evt_1" and event.type == "v1/client-invoices"
    assert event.timestamp == 1_700_000_000
    assert sign(body, "whsec_test", 1_700_000_000) == headers["qonto-sha256-signature"]


def test_a_good_event_is_read_into_a_typed_event() -> None:
    event = check(header())
    assert event.id == "evt_1" and event.action == "updated"  # type: ignore[attr-defined]
    assert event.invoice_id == "inv-1"  # type: ignore[attr-defined]
    assert event.einvoicing_status == "submitted"  # type: ignore[attr-defined]
    assert event.organization_id == "org-1"  # type: ignore[attr-defined]


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        check(header(secret="another"))


@pytest.mark.parametrize("where", [0, len(BODY) // 2, len(BODY) - 1])
def test_a_body_changed_by_one_byte_is_refused(where: int) -> None:
    changed = bytearray(BODY)
    changed[where] ^= 0x01
    with pytest.raises(WebhookSignatureError):
        check(header(), bytes(changed))


def test_stale_and_future_events_are_refused_and_the_tolerance_is_configurable() -> None:
    with pytest.raises(WebhookStaleError, match="301 s old"):
        check(header(), now=NOW + 301)
    with pytest.raises(WebhookStaleError, match="in the future"):
        check(header(), now=NOW - 400)
    assert check(header(), now=NOW + 3000, tolerance=3600)
    assert check(header(), now=NOW + 299)


def test_a_replayed_event_is_refused() -> None:
    store = MemoryReplayStore()
    check(header(), replay_store=store)
    with pytest.raises(WebhookReplayError, match="evt_1"):
        check(header(), replay_store=store)


def test_the_default_store_remembers_across_calls() -> None:
    body = json.dumps({"id": "evt-default-store", "type": "x"}).encode()
    verify(header(body), body, SECRET, now=NOW)
    with pytest.raises(WebhookReplayError):
        verify(header(body), body, SECRET, now=NOW)


def test_the_durable_store_survives_a_restart_and_is_bounded(tmp_path: Path) -> None:
    store = DurableReplayStore(tmp_path / "seen.sqlite3", size=3)
    check(header(), replay_store=store)
    store.close()
    again = DurableReplayStore(tmp_path / "seen.sqlite3", size=3)
    with pytest.raises(WebhookReplayError):
        check(header(), replay_store=again)
    for n in range(5):
        assert again.remember(f"e{n}", NOW)
    assert not again.seen("evt_1") and again.seen("e4")  # the oldest fell out


@pytest.mark.parametrize("value", [
    "v1=abc",                      # no t
    "t=1700000000",                # no v1
    "t=1700000000,t=1700000001,v1=ab",  # two t
    "t=yesterday,v1=ab",           # t not a number
    "garbage",                     # not key=value
    "",
])
def test_malformed_headers_are_refused(value: str) -> None:
    with pytest.raises(WebhookSignatureError):
        check({"Qonto-SHA256-Signature": value})


def test_a_missing_header_is_refused() -> None:
    with pytest.raises(WebhookSignatureError, match="no Qonto-SHA256-Signature header"):
        check({})


def test_several_v1_signatures_pass_when_any_matches() -> None:
    good = header()["Qonto-SHA256-Signature"].split("v1=")[1]
    assert check({"Qonto-SHA256-Signature": f"t={NOW},v1={'0' * 64},v1={good},v0=zz"})
    with pytest.raises(WebhookSignatureError):
        check({"Qonto-SHA256-Signature": f"t={NOW},v1={'0' * 64},v1={'1' * 64}"})


def test_the_signed_payload_is_configurable() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    headers = {"Qonto-SHA256-Signature": f"t={NOW},v1={digest}"}
    assert check(headers, signed_payload="{body}")
    with pytest.raises(WebhookSignatureError):
        check(headers)  # the default signs "{t}.{body}"


def test_a_body_that_is_not_an_event_is_refused() -> None:
    body = b"[1, 2]"
    with pytest.raises(WebhookFormatError):
        check(header(body), body)


def test_the_exceptions_are_facturflow_errors() -> None:
    for cls in (WebhookSignatureError, WebhookStaleError, WebhookReplayError,
                WebhookFormatError):
        assert issubclass(cls, WebhookError) and issubclass(cls, FacturflowError)


def test_describe_status_prints_the_label_with_the_code() -> None:
    assert describe_status(205) == "205 Approuvée"
    assert describe_status("210", "en") == "210 Refused"
    assert describe_status({"status_code": 210, "reason": "REFUS",
                            "reason_message": "wrong price"}) == "210 Refusée: REFUS wrong price"
    assert describe_status("submitted") == "submitted (Déposée sur le réseau)"
    assert describe_status("not_delivered", "en") == "not_delivered (Not delivered)"
    assert describe_status("to_review") == "to_review"
    assert describe_status(None) == "none"
    assert all(meaning(code) for code in range(200, 215)) and meaning(999) == ""
