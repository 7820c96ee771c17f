"""`facturflow register` and `register status` against the sandbox: a registration created
through the Onboarding API, its redirection link, its states on the sandbox clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from facturflow import exitcodes
from facturflow.cli import main
from facturflow.transmit.cli import state_dir
from facturflow.transmit.qonto import AsyncQontoClient, QontoConfig
from facturflow.transmit.sandbox import Sandbox, SandboxConfig

from .transmit_helpers import make_client

QONTO_VARS = ("QONTO_BASE_URL", "QONTO_API_KEY", "QONTO_ACCESS_TOKEN", "QONTO_REFRESH_TOKEN",
              "QONTO_CLIENT_ID", "QONTO_CLIENT_SECRET", "QONTO_STAGING_TOKEN", "QONTO_TOKEN_FILE",
              "QONTO_PARTNER_ID", "QONTO_PARTNER_TOKEN", "QONTO_ONBOARDING_URL",
              "FACTURFLOW_STATE")


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in QONTO_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACTURFLOW_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("QONTO_BACKOFF_BASE", "0.01")
    return tmp_path / "state"


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(state_dir=tmp_path / "sandbox")) as sandbox:
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)
        yield sandbox


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def test_register_prints_the_link_and_status_follows_the_registration(box: Sandbox) -> None:
    created = run("register", "--email", "marie@example.fr", "--siren", "123 456 789",
                  "--first-name", "Marie", "--last-name", "Curie")
    assert created.exit_code == 0, created.output
    (registration,) = box.state.data["registrations"].values()
    link = registration["redirection_link"]
    assert f"send the user to: {link}" in created.stdout
    assert registration["organization"]["legal_number"] == "123456789"
    assert registration["partner_user"] == {"email": "marie@example.fr", "first_name": "Marie",
                                            "last_name": "Curie"}

    def status() -> dict[str, Any]:
        result = run("register", "status", "--format", "json")  # the latest one, remembered
        assert result.exit_code == 0, result.output
        return dict(as_json(result))

    assert status()["status"] == "pending"
    box.advance(61)
    assert status()["status"] == "user_started"
    box.advance(600)
    assert status()["status"] == "contract_signed"
    box.advance(3600)
    done = status()
    assert done["status"] == "completed" and done["organization"]["id"] == box.organization_id
    text = run("register", "status", str(registration["id"])).stdout
    assert "completed" in text and box.organization_id in text


def test_status_wait_gives_up_with_exit_5_then_ends_when_completed(box: Sandbox) -> None:
    reg_id = as_json(run("register", "--email", "a@b.fr", "--siren", "123456789",
                         "--format", "json"))["id"]
    pending = run("register", "status", reg_id, "--wait", "--timeout", "0.3",
                  "--poll-interval", "0.05")
    assert pending.exit_code == exitcodes.PENDING and "pending" in pending.stdout
    box.advance(4000)
    done = run("register", "status", reg_id, "--wait", "--timeout", "5")
    assert done.exit_code == 0 and "completed" in done.stdout


def test_register_status_all_lists_every_registration_created_here(box: Sandbox) -> None:
    for siren in ("111111111", "222222222"):
        assert run("register", "--email", "x@y.fr", "--siren", siren).exit_code == 0
    rows = as_json(run("register", "status", "--all", "--format", "json"))
    assert [r["organization"]["legal_number"] for r in rows] == ["111111111", "222222222"]


@pytest.mark.parametrize(("args", "needle"), [
    (("register",), "--email"),
    (("register", "--email", "a@b.fr"), "--siren"),
    (("register", "--email", "a@b.fr", "--siren", "12345"), "not a SIREN"),
    (("register", "status"), "no registration created"),
    # Accepted before: a registration whose link goes nowhere, a redirect to javascript:.
    (("register", "--email", "marie.example.fr", "--siren", "123456789"),
     "'marie.example.fr' is not an e-mail address"),
    (("register", "--email", "a@b.fr", "--siren", "123456789", "--redirect-url",
      "javascript:alert(1)"), "'javascript:alert(1)' is not an http(s) URL"),
    (("register", "--email", "a@b.fr", "--siren", "123456789", "--redirect-url",
      "app.example.com/back"), "is not an http(s) URL"),
])
def test_register_usage_errors(box: Sandbox, args: tuple[str, ...], needle: str) -> None:
    state_dir(None).mkdir(parents=True)  # a state folder, with no registration in it
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == exitcodes.USAGE and needle in result.output
    assert not box.state.data["registrations"]


def test_an_http_redirect_url_and_a_spaced_email_are_passed_on(box: Sandbox) -> None:
    created = run("register", "--email", " marie@example.fr ", "--siren", "123456789",
                  "--redirect-url", "https://app.example.com/back?x=1")
    assert created.exit_code == 0, created.output
    (registration,) = box.state.data["registrations"].values()
    assert registration["partner_redirect_url"] == "https://app.example.com/back?x=1"
    assert registration["partner_user"] == {"email": "marie@example.fr"}


def test_register_needs_partner_credentials(box: Sandbox,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QONTO_PARTNER_TOKEN")
    result = run("register", "--email", "a@b.fr", "--siren", "123456789")
    assert result.exit_code == exitcodes.CONFIG
    assert result.stderr.startswith("error: ") and "QONTO_PARTNER_TOKEN" in result.stderr
    monkeypatch.setenv("QONTO_PARTNER_TOKEN", "wrong")
    refused = run("register", "--email", "a@b.fr", "--siren", "123456789")
    assert refused.exit_code == exitcodes.CONFIG and "401" in refused.stderr
    unknown = run("register", "status", "00000000-0000-4000-8000-000000000000")
    assert unknown.exit_code == exitcodes.CONFIG
    assert not box.state.data["registrations"]


def test_unknown_registration_is_exit_3(box: Sandbox) -> None:
    result = run("register", "status", "00000000-0000-4000-8000-000000000000")
    assert result.exit_code == exitcodes.CONFIG and "no registration" in result.stderr


def test_without_any_configuration_register_uses_a_local_sandbox(clean_env: Path) -> None:
    created = run("register", "--email", "a@b.fr", "--siren", "123456789")
    assert created.exit_code == 0, created.output
    assert "local sandbox" in created.stderr and "/onboarding/" in created.stdout
    followed = run("register", "status")  # the same sandbox state, a new server
    assert followed.exit_code == 0 and "pending" in followed.stdout


def test_library_registrations_sync_and_async(box: Sandbox) -> None:
    with make_client(box, partner_id=box.config.partner_id,
                     partner_token=box.partner_token) as client:
        reg = client.create_registration({"legal_flow": "qonto_invoicing",
                                          "partner_user": {"email": "a@b.fr"}})
        assert reg["status"] == "pending" and reg["redirection_link"]
        box.advance(3600)
        assert client.get_registration(reg["id"])["status"] == "completed"

    async def follow() -> str:
        config = QontoConfig(base_url=box.base_url, partner_id=box.config.partner_id,
                             partner_token=box.partner_token)
        async with AsyncQontoClient(config) as c:
            return str((await c.get_registration(reg["id"]))["status"])

    assert asyncio.run(follow()) == "completed"


def test_options_before_status_apply_and_create_options_are_refused_there(
    box: Sandbox, tmp_path: Path
) -> None:
    other = tmp_path / "other-state"
    assert run("register", "--state", str(other), "--email", "a@b.fr", "--siren",
               "123456789").exit_code == 0
    assert json.loads((other / "registrations.json").read_text())
    followed = run("register", "--state", str(other), "--format", "json", "status")
    assert followed.exit_code == 0 and as_json(followed)["status"] == "pending"
    wrong = CliRunner().invoke(main, ["register", "--email", "a@b.fr", "status"])
    assert wrong.exit_code == exitcodes.USAGE and "--email" in wrong.output
