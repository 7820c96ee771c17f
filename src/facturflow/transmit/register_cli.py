"""`facturflow register` (a Qonto PA account through the Onboarding API) and `facturflow doctor`
(pre-flight checks before sending or receiving).

register: 0 created / followed (with --wait: completed); 2 usage; 3 configuration (partner
credentials missing or refused, unknown registration id); 4 Qonto unreachable or failing;
5 --wait gave up before the registration completed.

doctor: 0 every check ok; 3 a configuration or authentication problem (no or refused
credentials, e-invoicing sending or receiving not enabled, the local clock off); 4 Qonto
unreachable, or the --recipient is not reachable on the e-invoicing network (or unknown to
Qonto). Each check prints one line: `ok` or `FAIL` and what to do.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click

from .. import exitcodes
from ..clitypes import FiniteFloatRange
from .cli import CommandError, command_errors, env_config, existing_state_dir, state_dir
from .errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    QontoError,
    StagingTokenError,
    TransportError,
)
from .qonto import QontoClient, QontoConfig

_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                       help="text for people; json for scripts (one document).")
_STATE = click.option("--state", "state", type=click.Path(path_type=Path), default=None,
                      help="State folder (default $FACTURFLOW_STATE, else the user's); the "
                      "registrations created are remembered there.")
REGISTRATIONS = "registrations.json"


@contextmanager
def onboarding_client(folder: Path) -> Iterator[QontoClient]:
    """A client for the Onboarding API: QONTO_PARTNER_ID and QONTO_PARTNER_TOKEN; with no
    Qonto setting at all, one on the local sandbox kept in <state>/sandbox."""
    config = env_config(folder)
    if config.partner_token and config.partner_id:
        with QontoClient(config) as client:
            yield client
        return
    if config.configured or config.partner_token or config.partner_id:
        raise ConfigError("the Onboarding API needs QONTO_PARTNER_ID and QONTO_PARTNER_TOKEN "
                          "(your partner credentials from Qonto)", variable="QONTO_PARTNER_TOKEN")
    from .sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(state_dir=folder / "sandbox")) as box:
        click.echo(f"No Qonto configuration: using a local sandbox at {box.base_url} (state in "
                   f"{folder / 'sandbox'}); nothing reaches Qonto.", err=True)
        local = QontoConfig.from_env({}, base_url=box.base_url, partner_id=box.config.partner_id,
                                     partner_token=box.partner_token)
        with QontoClient(local) as client:
            yield client


def _remember(folder: Path, registration: dict[str, Any]) -> None:
    from ..outputs import write_private_atomically

    folder.mkdir(parents=True, exist_ok=True)
    known = _known(folder)
    known = [r for r in known if r.get("id") != registration.get("id")]
    known.append({"id": registration.get("id"), "created_at": registration.get("created_at"),
                  "legal_number": (registration.get("organization") or {}).get("legal_number")})
    write_private_atomically(folder / REGISTRATIONS, json.dumps(known, indent=1).encode())


def _known(folder: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((folder / REGISTRATIONS).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def _line(reg: dict[str, Any]) -> str:
    org = reg.get("organization") or {}
    done = f", organisation {org.get('id')}" if org.get("id") else ""
    return (f"registration {reg.get('id')}: {reg.get('status')} (SIREN "
            f"{org.get('legal_number') or '-'}, updated {reg.get('updated_at')}){done}")


def _siren(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    compact = value.replace(" ", "")
    if not re.fullmatch(r"\d{9}", compact):
        raise click.BadParameter(f"{value!r} is not a SIREN (9 digits)")
    return compact


def _email(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # The link goes to this address: a typo would create a registration nobody can follow.
    if value is not None and value.strip() and not re.fullmatch(
            r"[^@\s]+@[^@\s]+\.[^@\s.]+", value.strip()):
        raise click.BadParameter(f"{value!r} is not an e-mail address")
    return value.strip() if value is not None else None


def _redirect_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # Where Qonto sends the user back: only a web address (not javascript:, not a typo).
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc or " " in value.strip():
        raise click.BadParameter(f"{value!r} is not an http(s) URL")
    return value.strip()


@click.group("register", invoke_without_command=True)
@click.option("--email", callback=_email, default=None,
              help="The user who will sign up (partner_user.email).")
@click.option("--siren", callback=_siren, default=None, help="The company's SIREN.")
@click.option("--first-name", default=None, help="First name of the user who will sign up.")
@click.option("--last-name", default=None, help="Last name of the user who will sign up.")
@click.option("--locale", type=click.Choice(["fr", "en", "it", "de", "es", "pt"]), default="fr",
              show_default=True, help="Language of the registration (Qonto's locale).")
@click.option("--legal-flow", default="existing_company", show_default=True,
              help="Qonto's legal_flow; the value of the PA/invoicing flow is not documented "
              "(API.md §10 Q4), so any word is passed through.")
@click.option("--redirect-url", callback=_redirect_url, default=None,
              help="partner_redirect_url (embedded apps): an http(s) URL.")
@_STATE
@_FORMAT
@click.pass_context
def register_group(ctx: click.Context, email: str | None, siren: str | None,
                   first_name: str | None, last_name: str | None, locale: str,
                   legal_flow: str, redirect_url: str | None, state: Path | None,
                   fmt: str) -> None:
    """Create a Qonto PA registration and print the link the user follows to sign up
    (`register status` follows it)."""
    if ctx.invoked_subcommand is not None:
        given = [f"--{name.replace('_', '-')}" for name in ("email", "siren", "first_name",
                                                            "last_name", "redirect_url")
                 if ctx.params.get(name) is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} create a registration: not with "
                                   f"`register {ctx.invoked_subcommand}`")
        return
    if not email:
        raise click.UsageError("--email is required to create a registration (or use "
                               "`facturflow register status`)")
    if legal_flow == "existing_company" and not siren:
        raise click.UsageError("--siren is required for an existing company")
    folder = state_dir(state)
    user = {k: v for k, v in (("email", email), ("first_name", first_name),
                              ("last_name", last_name)) if v}
    body: dict[str, Any] = {"legal_flow": legal_flow, "locale": locale, "partner_user": user}
    if siren:
        body["organization"] = {"legal_number": siren}
    if redirect_url:
        body["partner_redirect_url"] = redirect_url
    with command_errors(fmt, folder), onboarding_client(folder) as client:
        registration = client.create_registration(body)
        _remember(folder, registration)
    if fmt == "json":
        click.echo(json.dumps(registration, indent=2, ensure_ascii=False))
    else:
        click.echo(_line(registration))
        click.echo(f"send the user to: {registration.get('redirection_link')}")
        click.echo("follow it with: facturflow register status "
                   f"{registration.get('id')}")
    sys.exit(exitcodes.OK)


@register_group.command("status")
@click.argument("registration_id", required=False)
@click.option("--all", "show_all", is_flag=True, help="Every registration this state folder "
              "created (default: the one named, else the latest).")
@click.option("--wait", is_flag=True, help="Poll until completed (exit 5 if --timeout runs "
              "out first), printing each change.")
@click.option("--timeout", "wait_timeout", type=FiniteFloatRange(0, 30 * 86400), default=600.0,
              show_default=True, help="With --wait: give up after this many seconds (exit 5).")
@click.option("--poll-interval", type=FiniteFloatRange(0.01, 3600), default=10.0,
              show_default=True, help="With --wait: seconds between two polls of Qonto.")
@_STATE
@_FORMAT
def register_status_command(registration_id: str | None, show_all: bool, wait: bool,
                            wait_timeout: float, poll_interval: float, state: Path | None,
                            fmt: str) -> None:
    """Where a registration stands (pending, user_started, contract_signed, completed)."""
    from .inbox_cli import _inherit

    state, fmt, _ = _inherit(state, fmt, "fr")
    # Without an id, the registrations this state folder created: it must exist.
    folder = state_dir(state) if registration_id else existing_state_dir(state, fmt)
    if registration_id:
        ids = [registration_id]
    else:
        known = _known(folder)
        if not known:
            raise click.UsageError("no registration created from this state folder: give its "
                                   "id, or create one with `facturflow register --email ...`")
        ids = [str(r["id"]) for r in known] if show_all else [str(known[-1]["id"])]
    rows: list[dict[str, Any]] = []
    with command_errors(fmt, folder), onboarding_client(folder) as client:
        for reg_id in ids:
            try:
                reg = client.get_registration(reg_id)
                deadline = time.monotonic() + wait_timeout
                last = reg.get("status")
                while wait and reg.get("status") != "completed" and (
                        time.monotonic() < deadline):
                    time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
                    reg = client.get_registration(reg_id)
                    if fmt == "text" and reg.get("status") != last:
                        click.echo(_line(reg))
                    last = reg.get("status")
            except NotFoundError as exc:
                raise CommandError(exitcodes.CONFIG, "not_found", f"no registration {reg_id!r} "
                                   f"for these partner credentials ({exc.message})",
                                   type(exc).__name__) from None
            except ValueError as exc:  # an id that cannot go into a path
                raise CommandError(exitcodes.USAGE, "usage", str(exc)) from None
            rows.append(reg)
    if fmt == "json":
        click.echo(json.dumps(rows if show_all else rows[0], indent=2, ensure_ascii=False))
    else:
        for reg in rows:
            click.echo(_line(reg))
            if reg.get("status") != "completed" and reg.get("redirection_link"):
                click.echo(f"  the user continues at: {reg.get('redirection_link')}")
    pending = wait and any(r.get("status") != "completed" for r in rows)
    sys.exit(exitcodes.PENDING if pending else exitcodes.OK)


# ---------------------------------------------------------------------------------------------
# doctor


@dataclass
class Check:
    name: str
    ok: bool
    message: str
    exit_code: int = exitcodes.OK  # what a failure means

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.message}"


def _failure(name: str, exc: QontoError, base_url: str) -> Check:
    if isinstance(exc, StagingTokenError):
        return Check(name, False, f"{exc.message}: Qonto's sandbox needs its staging token in "
                     "QONTO_STAGING_TOKEN", exitcodes.CONFIG)
    if isinstance(exc, AuthenticationError):
        return Check(name, False, f"Qonto refused the credentials ({exc.message}): check "
                     "QONTO_API_KEY (login:secret-key) or the OAuth tokens, and that they are "
                     "for this environment (QONTO_BASE_URL)", exitcodes.CONFIG)
    if isinstance(exc, PermissionDeniedError):
        return Check(name, False, f"permission denied ({exc.message}): grant the missing "
                     "OAuth scope or use the organisation's API key", exitcodes.CONFIG)
    if isinstance(exc, TransportError):
        return Check(name, False, f"Qonto unreachable at {base_url} ({exc.message}): check "
                     "the network, a proxy, QONTO_BASE_URL", exitcodes.SERVICE)
    return Check(name, False, f"Qonto answered with an error ({exc.message}): try again "
                 "later", exitcodes.SERVICE)


def run_checks(config: QontoConfig, recipient: str | None = None,
               max_skew: float = 60.0) -> list[Check]:
    """The doctor's checks, in order; after a failure that stops the rest, they are skipped."""
    checks: list[Check] = []
    if not config.configured:
        checks.append(Check("credentials", False, "no Qonto credentials: set QONTO_API_KEY "
                            "(login:secret-key) or QONTO_ACCESS_TOKEN / QONTO_REFRESH_TOKEN "
                            "(with QONTO_CLIENT_ID and QONTO_CLIENT_SECRET)", exitcodes.CONFIG))
        return checks
    scheme = "API key" if (config.api_key and config.prefer == "api_key") or not (
        config.access_token or config.refresh_token) else "OAuth"
    checks.append(Check("credentials", True, f"{scheme} set for {config.base_url}"))
    # A diagnosis answers in seconds: one retry at most, not the sending commands' patience.
    quick = replace(config, max_retries=min(config.max_retries, 1),
                    retry_budget=min(config.retry_budget, 10.0))
    with QontoClient(quick) as client:
        try:
            org = client.organization()
        except QontoError as exc:
            checks.append(_failure("organisation", exc, config.base_url))
            return checks
        name = org.get("legal_name") or org.get("name") or org.get("slug") or "?"
        checks.append(Check("organisation", True, f"{name} ({org.get('id')})"))
        try:
            settings = client.einvoicing_settings()
        except QontoError as exc:
            checks.append(_failure("e-invoicing settings", exc, config.base_url))
        else:
            checks.append(_sending(settings.sending_status))
            checks.append(_receiving(settings.receiving_status))
        try:
            clock = client.server_clock()
        except QontoError as exc:
            checks.append(_failure("clock", exc, config.base_url))
        else:
            checks.append(_clock(clock.skew, max_skew))
        if recipient is not None:
            try:
                found = client.find_clients(recipient)
            except QontoError as exc:
                checks.append(_failure(f"recipient {recipient}", exc, config.base_url))
            else:
                checks.append(_recipient(recipient, found))
    return checks


def _sending(status: str) -> Check:
    if status == "enabled":
        return Check("sending", True, "e-invoice sending enabled (French companies must also "
                     "be registered in the Annuaire, which this status does not show)")
    return Check("sending", False, f"e-invoice sending is {status!r}: enable e-invoicing in "
                 "Qonto (Settings > E-invoicing) or finish the registration (`facturflow "
                 "register status`) before `facturflow send`", exitcodes.CONFIG)


def _receiving(status: str) -> Check:
    if status == "enabled":
        return Check("receiving", True, "e-invoice receiving enabled")
    if status == "pending_creation":
        return Check("receiving", False, "e-invoice receiving is being set up "
                     "(pending_creation): wait for Qonto to finish, then run doctor again",
                     exitcodes.CONFIG)
    return Check("receiving", False, f"e-invoice receiving is {status!r}: enable it in Qonto "
                 "(Settings > E-invoicing); every French company must be able to receive "
                 "e-invoices", exitcodes.CONFIG)


def _clock(skew: float | None, max_skew: float) -> Check:
    if skew is None:
        return Check("clock", True, "Qonto sent no usable Date header: skew not checked")
    side = "ahead of" if skew > 0 else "behind"
    if abs(skew) <= max_skew:
        return Check("clock", True, f"local clock within {abs(skew):.1f} s of Qonto's")
    return Check("clock", False, f"local clock is {abs(skew):.0f} s {side} Qonto's (more than "
                 f"{max_skew:g} s): synchronise it (NTP); token expiry and webhook timestamps "
                 "depend on it", exitcodes.CONFIG)


def _recipient(siren: str, found: list[dict[str, Any]]) -> Check:
    name = f"recipient {siren}"
    if not found:
        return Check(name, False, "no Qonto client has this SIREN, so its reachability is "
                     "unknown: create the client in Qonto (or send it an invoice, which "
                     "creates it) and check again", exitcodes.SERVICE)
    reachable = [c for c in found if c.get("e_invoicing_reachable")]
    client = (reachable or found)[0]
    label = f"{client.get('name') or '?'} (client {client.get('id')})"
    if reachable:
        return Check(name, True, f"{label} is reachable on the e-invoicing network at "
                     f"{client.get('e_invoicing_address') or siren}")
    return Check(name, False, f"{label} is not reachable on the e-invoicing network: the "
                 "company must be registered in the Annuaire through its own PA (ask it), "
                 "or check its e-invoicing address in Qonto", exitcodes.SERVICE)


@click.command("doctor")
@click.option("--recipient", callback=_siren, default=None, metavar="SIREN",
              help="Also say whether the client with this SIREN is reachable on the network.")
@click.option("--max-skew", type=FiniteFloatRange(0, 86400), default=60.0, show_default=True,
              help="Largest clock difference with Qonto tolerated, in seconds.")
@click.option("--state", "state", type=click.Path(path_type=Path), default=None,
              help="State folder (where the OAuth tokens are kept; default $FACTURFLOW_STATE, "
              "else the user's).")
@_FORMAT
def doctor_command(recipient: str | None, max_skew: float, state: Path | None,
                   fmt: str) -> None:
    """Check the Qonto configuration before sending or receiving: credentials, organisation,
    e-invoicing settings, clock skew (and, with --recipient, a client's reachability)."""
    folder = state_dir(state)
    try:
        config = env_config(folder)
    except ValueError as exc:  # ConfigError: a malformed QONTO_* setting
        checks = [Check("credentials", False, f"configuration: {exc}", exitcodes.CONFIG)]
    else:
        checks = run_checks(config, recipient, max_skew)
    failed = [c for c in checks if not c.ok]
    code = (exitcodes.CONFIG if any(c.exit_code == exitcodes.CONFIG for c in failed)
            else exitcodes.SERVICE if failed else exitcodes.OK)
    if fmt == "json":
        click.echo(json.dumps({"ok": not failed, "exit_code": code,
                               "checks": [asdict(c) for c in checks]}, indent=2,
                              ensure_ascii=False))
    else:
        for check in checks:
            click.echo(check.line())
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    sys.exit(code)


__all__ = ["Check", "doctor_command", "onboarding_client", "register_group",
           "register_status_command", "run_checks"]
