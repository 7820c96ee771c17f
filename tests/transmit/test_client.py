"""QontoClient and AsyncQontoClient against the sandbox over real sockets: every error class,
retries, idempotency, limits checked before sending, pagination, OAuth rotation, redaction."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

import httpx
import pytest

from facturflow.transmit import errors as E
from facturflow.transmit.qonto import (
    AsyncQontoClient,
    QontoClient,
    QontoConfig,
    RateLimiter,
    UploadFile,
    _Core,
    load_tokens,
)
from facturflow.transmit.sandbox import Sandbox, SandboxConfig

from .transmit_helpers import cii_variant, make_client


def _xml(number: str) -> UploadFile:
    return UploadFile(f"{number}.xml", cii_variant(number), "application/xml")


def _imported_id(client: QontoClient, number: str) -> str:
    (imported,) = client.import_client_invoices([_xml(number)])
    return imported.invoice_id


# -- the happy path and the contract's shapes ----------------------------------------------------


def test_import_send_and_track_an_invoice(client: QontoClient, sandbox: Sandbox) -> None:
    assert client.organization()["id"] == sandbox.organization_id
    assert client.einvoicing_settings().sending_enabled
    invoice_id = _imported_id(client, "C-1")
    invoice = client.get_client_invoice(invoice_id)
    assert (invoice.number, invoice.status, invoice.einvoicing_status) == ("C-1", "unpaid",
                                                                          "pending")
    assert invoice.raw["total_amount"] == {"value": "14821.55", "currency": "EUR"}
    client.send_by_einvoice(invoice_id)
    sandbox.advance(10)
    invoice = client.get_client_invoice(invoice_id)
    assert [e.status_code for e in invoice.lifecycle_events] == [200, 201, 202]
    assert invoice.latest_event is not None and invoice.latest_event.status_code == 202
    assert invoice.einvoicing_status == "submitted"


def test_reimport_returns_the_existing_id_and_a_repeated_send_does_not_resubmit(
    client: QontoClient, sandbox: Sandbox
) -> None:
    first = _imported_id(client, "C-2")
    assert _imported_id(client, "C-2") == first
    client.send_by_einvoice(first)
    client.send_by_einvoice(first)
    assert sandbox.counters()[first] == {"number": "C-2", "calls": 2, "submissions": 1}


def test_refused_outcome_maps_to_declined(client: QontoClient, sandbox: Sandbox) -> None:
    sandbox.set_outcome("C-3", "refused")
    invoice_id = _imported_id(client, "C-3")
    client.send_by_einvoice(invoice_id)
    sandbox.advance(10)
    invoice = client.get_client_invoice(invoice_id)
    assert invoice.einvoicing_status == "declined"
    assert invoice.latest_event is not None and invoice.latest_event.status_code == 210


def test_lists_follow_every_page(client: QontoClient) -> None:
    for n in range(7):
        _imported_id(client, f"P-{n}")
    assert len(client.list_client_invoices(per_page=3)) == 7
    assert len(client.list_client_invoices()) == 7


def test_supplier_invoices_are_listed_and_their_file_downloaded(
    client: QontoClient, sandbox: Sandbox
) -> None:
    data = cii_variant("IN-1")
    sandbox.inject_supplier_invoice(data, "in-1.xml")
    (listed,) = client.list_supplier_invoices()
    assert listed["invoice_number"] == "IN-1" and listed["is_einvoice"] is True
    assert client.get_supplier_invoice(listed["id"])["id"] == listed["id"]
    name, body = client.download_attachment(listed["attachment_id"])
    assert (name, body) == ("in-1.xml", data)


def test_supplier_attachment_url_expires_after_30_minutes(
    client: QontoClient, sandbox: Sandbox
) -> None:
    sandbox.inject_supplier_invoice(cii_variant("IN-2"), "in-2.xml")
    (listed,) = client.list_supplier_invoices()
    url = client.get_attachment(listed["attachment_id"])["url"]
    sandbox.advance(31 * 60)
    assert httpx.get(url).status_code == 403


def test_client_reachability_is_exposed(client: QontoClient) -> None:
    invoice_id = _imported_id(client, "R-1")
    client_id = client.get_client_invoice(invoice_id).raw["client"]["id"]
    assert client.get_client(client_id)["e_invoicing_reachable"] is True
    assert [c["id"] for c in client.iter_clients()] == [client_id]


def test_onboarding_registrations(sandbox: Sandbox) -> None:
    with make_client(sandbox, partner_id=sandbox.config.partner_id,
                     partner_token=sandbox.partner_token) as c:
        created = c.create_registration({
            "legal_flow": "existing_company", "locale": "fr",
            "partner_user": {"email": "a@example.fr", "first_name": "A", "last_name": "B"},
            "organization": {"legal_number": "610732067"},
        })
        assert created["status"] == "pending" and created["redirection_link"]
        assert c.get_registration(created["id"])["id"] == created["id"]
        assert [r["id"] for r in c.list_registrations()] == [created["id"]]
        with pytest.raises(E.ValidationRejectedError) as info:
            c.create_registration({"legal_flow": "existing_company",
                                   "partner_user": {"email": "a@example.fr"},
                                   "organization": {"legal_number": "12"}})
        assert info.value.errors[0].pointer == "/organization/legal_number"
    with make_client(sandbox, partner_token=sandbox.partner_token) as c, pytest.raises(
        E.AuthenticationError
    ):
        c.list_registrations()  # no Qonto-Partner-Id


# -- one test per error class ----------------------------------------------------------------


def test_authentication_error_carries_status_code_and_trace_id(sandbox: Sandbox) -> None:
    with make_client(sandbox, api_key="sandbox-org:not-the-secret") as c, pytest.raises(
        E.AuthenticationError
    ) as info:
        c.organization()
    err = info.value
    assert err.status == 401 and err.codes == ("unauthorized",)
    assert err.trace_id and len(err.trace_id) == 32
    assert "not-the-secret" not in str(err) and "not-the-secret" not in repr(err)
    # The envelope's trace_id is the X-Tyk-Trace-Id header (API.md §3.2).
    raw = httpx.get(sandbox.base_url + "/v2/organization", headers={"Authorization": "x:y"})
    assert raw.json()["trace_id"] == raw.headers["X-Tyk-Trace-Id"]
    assert raw.json()["errors"][0]["code"] == "unauthorized"


def test_permission_error_on_a_missing_scope(sandbox: Sandbox) -> None:
    access, _ = sandbox.issue_tokens(("organization.read",))
    with make_client(sandbox, api_key=None, access_token=access) as c:
        assert c.organization()["id"] == sandbox.organization_id
        with pytest.raises(E.PermissionDeniedError) as info:
            c.einvoicing_settings()
    assert info.value.status == 403 and info.value.missing_scope


def test_not_found_error(client: QontoClient) -> None:
    with pytest.raises(E.NotFoundError) as info:
        client.get_client_invoice("0190b7a4-0000-7000-8000-000000000000")
    assert info.value.status == 404 and info.value.trace_id


def test_precondition_error_when_sending_is_disabled(client: QontoClient,
                                                     sandbox: Sandbox) -> None:
    invoice_id = _imported_id(client, "PC-1")
    sandbox.set_settings(sending_status="disabled")
    with pytest.raises(E.PreconditionError) as info:
        client.send_by_einvoice(invoice_id)
    assert info.value.status == 412 and info.value.codes == ("einvoicing_not_activated",)


def test_precondition_error_when_the_recipient_is_unreachable(tmp_path: Path) -> None:
    config = SandboxConfig(state_dir=tmp_path / "sb", unreachable_sirens=frozenset({"610732067"}))
    with Sandbox(config) as box, make_client(box) as c:
        invoice_id = _imported_id(c, "PC-2")
        with pytest.raises(E.PreconditionError) as info:
            c.send_by_einvoice(invoice_id)
        assert info.value.codes == ("recipient_not_reachable_on_einvoicing",)
        assert box.counters()[invoice_id]["submissions"] == 0


def test_validation_rejected_error_points_at_the_bad_file(client: QontoClient) -> None:
    files = [_xml("V-1"), UploadFile("notes.txt", b"just text", "text/plain")]
    with pytest.raises(E.ValidationRejectedError) as info:
        client.import_client_invoices(files)
    err = info.value
    assert err.status == 422 and err.errors[0].pointer == "/client_invoices/1"
    assert client.list_client_invoices() == []  # all-or-nothing


def test_rate_limited_error_after_the_retries(sandbox: Sandbox) -> None:
    sandbox.fail_next(3, "429")
    with make_client(sandbox, max_retries=2) as c, pytest.raises(E.RateLimitedError) as info:
        c.organization()
    assert info.value.status == 429 and info.value.retry_after == pytest.approx(0.05)


def test_server_error_after_the_retries(sandbox: Sandbox) -> None:
    sandbox.fail_next(3, "503")
    with make_client(sandbox, max_retries=2) as c, pytest.raises(E.ServerError) as info:
        c.organization()
    assert info.value.status == 503 and info.value.trace_id


def test_transport_error_on_dropped_connections(sandbox: Sandbox) -> None:
    sandbox.fail_next(2, "drop")
    with make_client(sandbox, max_retries=1) as c, pytest.raises(E.TransportError) as info:
        c.organization()
    assert info.value.status is None


def test_transport_error_on_a_stall_longer_than_the_timeout(sandbox: Sandbox) -> None:
    sandbox.config.faults.stall_seconds = 0.5
    sandbox.fail_next(1, "stall")
    with make_client(sandbox, max_retries=0, timeout=0.1) as c, pytest.raises(E.TransportError):
        c.organization()


def test_transport_error_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = QontoConfig(base_url=f"http://127.0.0.1:{port}", api_key="a:b", max_retries=0)
    with QontoClient(config) as c, pytest.raises(E.TransportError):
        c.organization()


def test_staging_token_missing_is_reported_as_such(tmp_path: Path) -> None:
    config = SandboxConfig(state_dir=tmp_path / "sb", staging_token="stage-me")
    with Sandbox(config) as box:
        with make_client(box) as c, pytest.raises(E.StagingTokenError) as info:
            c.organization()
        assert "staging token missing or wrong" in info.value.message
        with make_client(box, staging_token="stage-me") as c:
            assert c.organization()["id"] == box.organization_id


# -- retries, idempotency and local checks -------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502", "503", "429", "drop", "drop_after"])
def test_transient_faults_are_retried(client: QontoClient, sandbox: Sandbox, kind: str) -> None:
    sandbox.fail_next(2, kind)
    assert client.organization()["id"] == sandbox.organization_id


def test_a_lost_import_answer_does_not_duplicate_the_invoice(
    client: QontoClient, sandbox: Sandbox
) -> None:
    sandbox.fail_next(1, "drop_after")  # processed, answer lost, retried by the client
    invoice_id = _imported_id(client, "I-1")
    assert list(sandbox.counters()) == [invoice_id]


def test_writes_carry_one_idempotency_key_reused_across_retries() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("X-Qonto-Idempotency-Key"))
        if len(seen) == 1:
            return httpx.Response(503, json={"errors": []})
        return httpx.Response(204)

    config = QontoConfig(base_url="http://127.0.0.1:9", api_key="a:b", backoff_base=0.001)
    with QontoClient(config, transport=httpx.MockTransport(handler)) as c:
        c.send_by_einvoice("inv-1")
    assert len(seen) == 2 and seen[0] is not None and seen[0] == seen[1]


def test_retry_after_is_honoured_over_the_backoff() -> None:
    core = _Core(QontoConfig(base_url="http://127.0.0.1:9", api_key="a:b"))
    err = E.RateLimitedError("429", status=429, retry_after=7.0)
    delay = core.retry_delay(err, attempt=0, started=__import__("time").monotonic())
    assert delay is not None and delay >= 7.0
    assert core.retry_delay(E.NotFoundError("404", status=404), 0, 0.0) is None


def test_import_limits_are_checked_before_any_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be made")

    config = QontoConfig(base_url="http://127.0.0.1:9", api_key="a:b")
    with QontoClient(config, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(E.ValidationRejectedError) as info:
            c.import_client_invoices([UploadFile(f"{n}.pdf", b"%PDF-1.7") for n in range(6)])
        assert info.value.codes == ("too_many_files",)
        with pytest.raises(E.ValidationRejectedError) as info:
            c.import_client_invoices([UploadFile("big.pdf", b"0" * 5_000_001)])
        assert info.value.codes == ("file_too_large",)
        with pytest.raises(E.ValidationRejectedError) as info:
            c.import_client_invoices([UploadFile(f"{n}.pdf", b"0" * 4_000_000) for n in range(4)])
        assert info.value.codes == ("request_too_large",)
        with pytest.raises(E.ValidationRejectedError):
            c.import_client_invoices([])


def test_rate_limiter_spaces_requests_beyond_a_window() -> None:
    now = [0.0]
    limiter = RateLimiter([(2, 10.0)], clock=lambda: now[0])
    assert limiter.reserve() == 0.0 and limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(10.0)
    now[0] = 25.0
    assert limiter.reserve() == 0.0


def test_plain_http_is_refused_except_on_loopback() -> None:
    with pytest.raises(ValueError):
        QontoConfig(base_url="http://thirdparty.qonto.com", api_key="a:b")
    with pytest.raises(ValueError):
        QontoConfig(api_key="no-colon")
    assert QontoConfig(base_url="http://127.0.0.1:8000", api_key="a:b")


def test_error_bodies_are_parsed_defensively() -> None:
    entries, trace = E.parse_error_body({"errors": {"message": "Not found"}, "trace_id": "t1"})
    assert (entries[0].detail, trace) == ("Not found", "t1")
    entries, _ = E.parse_error_body({"code": "sca_required", "message": "SCA"})
    assert entries[0].code == "sca_required"
    assert E.parse_error_body(["odd"]) == ([], None)
    assert E.parse_error_body(None) == ([], None)


# -- OAuth ---------------------------------------------------------------------------------------


def test_oauth_refresh_rotates_and_persists_the_refresh_token(sandbox: Sandbox,
                                                              tmp_path: Path) -> None:
    _, refresh = sandbox.issue_tokens()
    store = tmp_path / "tokens.json"
    with make_client(sandbox, api_key=None, access_token="expired-or-unknown",
                     refresh_token=refresh, client_id=sandbox.client_id,
                     client_secret=sandbox.client_secret, token_store=store) as c:
        assert c.organization()["id"] == sandbox.organization_id  # 401 -> refresh -> retry
    saved = load_tokens(store)
    assert saved is not None and saved.refresh_token and saved.refresh_token != refresh
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    # The old refresh token is dead; a new client picks the rotated one from the store.
    with make_client(sandbox, api_key=None, refresh_token=refresh, client_id=sandbox.client_id,
                     client_secret=sandbox.client_secret, token_store=store) as c:
        assert c.einvoicing_settings().sending_enabled


def test_oauth_code_exchange(sandbox: Sandbox, tmp_path: Path) -> None:
    code = sandbox.authorization_code()
    store = tmp_path / "tokens.json"
    with make_client(sandbox, api_key=None, client_id=sandbox.client_id,
                     client_secret=sandbox.client_secret, token_store=store) as c:
        c.exchange_code(code, "https://app.example/callback")
        assert c.organization()["id"] == sandbox.organization_id
    with make_client(sandbox, api_key=None, client_id=sandbox.client_id,
                     client_secret=sandbox.client_secret) as c, pytest.raises(
        E.AuthenticationError
    ):
        c.exchange_code(code, "https://app.example/callback")  # single use


# -- secrets never leak ------------------------------------------------------------------------


def test_secrets_are_redacted_from_messages_reprs_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cr3t-value-123"

    def handler(request: httpx.Request) -> httpx.Response:
        # A hostile or buggy server echoing the credential back must not leak it further.
        echoed = request.headers["Authorization"]
        return httpx.Response(422, json={"errors": [{"code": "bad", "detail": f"got {echoed}"}]})

    config = QontoConfig(base_url="http://127.0.0.1:9", api_key=f"org:{secret}",
                         staging_token="stage-secret-xyz", max_retries=0)
    caplog.set_level(logging.DEBUG, logger="facturflow")
    with QontoClient(config, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(E.ValidationRejectedError) as info:
            c.organization()
        texts = [str(info.value), repr(info.value), json.dumps(info.value.as_dict()),
                 repr(config), repr(c), caplog.text]
    for text in texts:
        assert secret not in text and "stage-secret-xyz" not in text
    assert E.REDACTED in str(info.value)


def test_transport_error_messages_carry_no_secret(sandbox: Sandbox) -> None:
    sandbox.fail_next(1, "drop")
    with make_client(sandbox, max_retries=0) as c, pytest.raises(E.TransportError) as info:
        c.organization()
    assert sandbox.api_key.split(":")[1] not in str(info.value)


# -- the async twin ------------------------------------------------------------------------------


def test_async_client_runs_the_same_flow(sandbox: Sandbox) -> None:
    async def flow() -> tuple[str, int, list[str]]:
        config = QontoConfig(base_url=sandbox.base_url, api_key=sandbox.api_key,
                             backoff_base=0.01)
        async with AsyncQontoClient(config) as c:
            sandbox.fail_next(1, "503")
            (imported,) = await c.import_client_invoices([_xml("A-1")])
            await c.send_by_einvoice(imported.invoice_id)
            invoice = await c.get_client_invoice(imported.invoice_id)
            listed = [i["id"] async for i in c.aiter_client_invoices(per_page=1)]
            with pytest.raises(E.NotFoundError):
                await c.get_client_invoice("missing")
            return str(invoice.number), sandbox.counters()[imported.invoice_id]["submissions"], \
                listed

    number, submissions, listed = asyncio.run(flow())
    assert (number, submissions, len(listed)) == ("A-1", 1, 1)


# -- the sandbox itself --------------------------------------------------------------------------


def test_sandbox_state_survives_a_restart(tmp_path: Path) -> None:
    config = SandboxConfig(state_dir=tmp_path / "sb")
    with Sandbox(config) as box, make_client(box) as c:
        invoice_id = _imported_id(c, "S-1")
        c.send_by_einvoice(invoice_id)
        api_key = box.api_key
    with Sandbox(SandboxConfig(state_dir=tmp_path / "sb")) as box, make_client(box) as c:
        assert box.api_key == api_key
        assert c.get_client_invoice(invoice_id).number == "S-1"
        assert _imported_id(c, "S-1") == invoice_id  # duplicate detection survived too
        assert box.counters()[invoice_id]["submissions"] == 1


def test_http_hooks_drive_the_sandbox_from_outside(sandbox: Sandbox, client: QontoClient) -> None:
    base = sandbox.base_url + "/_sandbox"
    # The hooks need the sandbox's credentials (test_sandbox_edges.py checks the refusals).
    hooks = httpx.Client(headers={"Authorization": sandbox.api_key})
    assert hooks.post(base + "/faults", json={"next": 1, "kind": "503"}).status_code == 200
    raw = httpx.get(sandbox.base_url + "/v2/organization",
                    headers={"Authorization": sandbox.api_key})
    assert raw.status_code == 503 and raw.json()["trace_id"] == raw.headers["X-Tyk-Trace-Id"]
    injected = hooks.post(base + "/supplier_invoices", content=cii_variant("H-1"),
                          headers={"X-File-Name": "h-1.xml"})
    assert injected.status_code == 201
    assert [i["invoice_number"] for i in client.list_supplier_invoices()] == ["H-1"]
    invoice_id = _imported_id(client, "H-2")
    client.send_by_einvoice(invoice_id)
    hooks.post(base + "/clock", json={"advance": 60})
    assert client.get_client_invoice(invoice_id).latest_event.status_code == 202  # type: ignore[union-attr]
    counters = hooks.get(base + "/counters").json()["counters"]
    assert counters[invoice_id]["submissions"] == 1
    assert hooks.post(base + "/settings", json={"sending_status": "disabled"}).json()[
        "sending_status"] == "disabled"
    code = hooks.post(base + "/oauth/code", json={"scopes": ["organization.read"]}).json()["code"]
    assert code
    hooks.close()


def test_sandbox_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    config = SandboxConfig(state_dir=tmp_path / "sb", rate_limits=((3, 60.0),))
    with Sandbox(config) as box:
        headers = {"Authorization": box.api_key}
        codes = [httpx.get(box.base_url + "/v2/organization", headers=headers)
                 for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert int(codes[-1].headers["Retry-After"]) >= 1
        assert codes[-1].json()["errors"][0]["code"] == "too_many_requests"


def test_sandbox_idempotency_key_replays_the_first_answer(sandbox: Sandbox) -> None:
    headers = {"Authorization": sandbox.api_key, "X-Qonto-Idempotency-Key": "k-1"}
    url = sandbox.base_url + "/v2/client_invoices/bulk"
    first = httpx.post(url, headers=headers,
                       files=[("client_invoices", ("a.xml", cii_variant("K-1"), "text/xml"))])
    # Same key, different body: the cached answer comes back, nothing new is created.
    second = httpx.post(url, headers=headers,
                        files=[("client_invoices", ("b.xml", cii_variant("K-2"), "text/xml"))])
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert [i["number"] for i in sandbox.client_invoices()] == ["K-1"]


def test_a_registration_is_not_created_twice_by_a_retry(sandbox: Sandbox) -> None:
    body = {"legal_flow": "existing_company", "partner_user": {"email": "a@example.fr"},
            "organization": {"legal_number": "610732067"}}
    with make_client(sandbox, partner_id=sandbox.config.partner_id,
                     partner_token=sandbox.partner_token) as c:
        sandbox.fail_next(1, "drop_after")  # created, answer lost: repeating would duplicate
        with pytest.raises(E.TransportError):
            c.create_registration(body)
        assert len(c.list_registrations()) == 1
        sandbox.fail_next(1, "429")  # refused before processing: safe to retry
        c.create_registration(body)
        assert len(c.list_registrations()) == 2
