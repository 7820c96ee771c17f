"""`QontoConfig`: where and how to reach Qonto (URLs, credentials, limits), from QONTO_*."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from ..errors import (
    ConfigError,
)

log = logging.getLogger("facturflow.transmit")


PRODUCTION_URL = "https://thirdparty.qonto.com"
SANDBOX_URL = "https://thirdparty-sandbox.staging.qonto.co"
PRODUCTION_TOKEN_URL = "https://oauth.qonto.com/oauth2/token"
SANDBOX_TOKEN_URL = "https://oauth-sandbox.staging.qonto.co/oauth2/token"
PRODUCTION_ONBOARDING_URL = "https://onboarding-partners.qonto.com"

# Bulk import limits (API.md §5.2). "MB" is not defined by Qonto: decimal megabytes are the
# stricter reading, so the client checks against them before sending.
MAX_IMPORT_FILES = 5
MAX_IMPORT_FILE_BYTES = 5_000_000
MAX_IMPORT_TOTAL_BYTES = 15_000_000
_MULTIPART_PART_OVERHEAD = 256

# Published limits are 1000 req / 10 s and 10 000 req / 10 min per IP (API.md §3.4); stay under.
DEFAULT_RATE_LIMITS: tuple[tuple[int, float], ...] = ((900, 10.0), (9000, 600.0))

# OAuth scopes the PA flow needs (write singular, read plural: API.md §2.3).
PA_SCOPES = (
    "offline_access",
    "organization.read",
    "einvoicing.read",
    "client_invoice.write",
    "client_invoices.read",
    "client.read",
    "supplier_invoice.read",
    "attachment.read",
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """Refuse anything but HTTPS, except plain HTTP to a loopback address (the sandbox)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url.rstrip("/")
    raise ValueError(f"{what} must be an https:// URL (plain http only to loopback): {url!r}")


# The numeric settings: field -> (environment variable, kind, smallest allowed value, whether
# the smallest value itself is allowed). Every one is checked finite and in range, with the
# variable named in the message (a keyword argument is reported under its variable's name too).
_NUMBERS: dict[str, tuple[str, type, float, bool]] = {
    "timeout": ("QONTO_TIMEOUT", float, 0.0, False),
    "connect_timeout": ("QONTO_CONNECT_TIMEOUT", float, 0.0, False),
    "deadline": ("QONTO_DEADLINE", float, 0.0, False),
    "max_retries": ("QONTO_MAX_RETRIES", int, 0, True),
    "retry_budget": ("QONTO_RETRY_BUDGET", float, 0.0, True),
    "backoff_base": ("QONTO_BACKOFF_BASE", float, 0.0, True),
    "backoff_max": ("QONTO_BACKOFF_MAX", float, 0.0, True),
    "max_response_bytes": ("QONTO_MAX_RESPONSE_BYTES", int, 1, True),
    "max_download_bytes": ("QONTO_MAX_DOWNLOAD_BYTES", int, 1, True),
}
# Larger values are certainly mistakes (a year of waiting, a million retries, a terabyte).
_NUMBER_MAX = {"max_retries": 1000, "max_response_bytes": 1 << 40, "max_download_bytes": 1 << 40}
_SECONDS_MAX = 365 * 24 * 3600.0

MIB = 1024 * 1024


def _number(name: str, raw: object) -> float | int:
    """`raw` (a string from the environment, or a keyword's value) checked for field `name`."""
    variable, kind, low, low_ok = _NUMBERS[name]
    shown = repr(raw) if isinstance(raw, str) else str(raw)
    text = raw.strip() if isinstance(raw, str) else raw
    value: float | int | None = None
    if isinstance(text, str | int | float) and not isinstance(text, bool):
        with contextlib.suppress(ValueError, OverflowError):
            if kind is float:
                value = float(text)
            elif isinstance(text, float):
                value = int(text) if text.is_integer() else None
            else:
                value = int(text)
    if value is None:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{variable} must be {what}, not {shown}", variable=variable)
    high = _NUMBER_MAX.get(name, _SECONDS_MAX)
    if not math.isfinite(value) or value < low or (value == low and not low_ok) or value > high:
        what = "a whole number" if kind is int else "a finite number"
        bound = f">= {low:g}" if low_ok else f"> {low:g}"
        raise ConfigError(f"{variable} must be {what} {bound} and at most {high:.0f}, "
                          f"not {shown}", variable=variable)
    return value


def check_api_key(key: str, what: str = "QONTO_API_KEY") -> str:
    """`key` if it has the 'login:secret-key' form (API.md §2.1), else a ConfigError."""
    login, sep, secret = key.partition(":")
    if (not sep or not login or not secret or key.startswith(("Basic ", "Bearer "))
            or any(not 0x21 <= ord(ch) <= 0x7E for ch in key)):
        # The value is a secret: never repeat it, describe it.
        raise ConfigError(f"{what} must be 'login:secret-key' (the organisation's login, a "
                          "colon, the secret key; printable ASCII, no spaces, no Basic, no "
                          "Base64)", variable=what)
    return key


@dataclass(frozen=True)
class QontoConfig:
    """Everything a client needs; secrets are excluded from repr.

    `timeout` bounds each network operation (the longest silence tolerated); `deadline`
    bounds one whole attempt (connect, send, headers and the full body), so a server that
    drips one byte at a time cannot hold a request forever; `max_response_bytes` caps an API
    answer, `max_download_bytes` an attachment download. Bad values raise ConfigError.
    """

    base_url: str = PRODUCTION_URL
    api_key: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    staging_token: str | None = field(default=None, repr=False)
    token_url: str | None = None
    token_store: Path | None = None
    onboarding_url: str | None = None
    partner_id: str | None = None
    partner_token: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    connect_timeout: float = 10.0
    deadline: float = 120.0
    max_retries: int = 5
    retry_budget: float = 120.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_response_bytes: int = 32 * MIB
    max_download_bytes: int = 256 * MIB
    rate_limits: tuple[tuple[int, float], ...] = DEFAULT_RATE_LIMITS
    verify: bool | str = True
    prefer: Literal["oauth", "api_key"] = "oauth"
    # Marking a supplier invoice paid is not documented beyond "mark-paid exists" (API.md §5.9):
    # the path ({id} is the invoice) and the body field carrying the date are settings.
    supplier_paid_path: str = "/v2/supplier_invoices/{id}/mark_as_paid"
    supplier_paid_field: str = "payment_date"

    def __post_init__(self) -> None:
        for name, variable in (("base_url", "QONTO_BASE_URL"), ("token_url", "QONTO_TOKEN_URL"),
                               ("onboarding_url", "QONTO_ONBOARDING_URL")):
            value = getattr(self, name)
            if value:
                try:
                    check_url(value, variable)
                except ValueError as exc:
                    raise ConfigError(str(exc), variable=variable) from None
        if self.api_key is not None:
            check_api_key(self.api_key)
        if not (self.supplier_paid_path.startswith("/") and "{id}" in self.supplier_paid_path):
            raise ConfigError("QONTO_SUPPLIER_PAID_PATH must be a path starting with / and "
                              "containing {id}", variable="QONTO_SUPPLIER_PAID_PATH")
        if not self.supplier_paid_field.replace("_", "").isalnum():
            raise ConfigError("QONTO_SUPPLIER_PAID_FIELD must be a field name (letters, digits, "
                              "underscores)", variable="QONTO_SUPPLIER_PAID_FIELD")
        for name in _NUMBERS:
            object.__setattr__(self, name, _number(name, getattr(self, name)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> QontoConfig:
        """Read the QONTO_* variables; keyword arguments that are not None win.

        A malformed value raises ConfigError (a ValueError) naming the variable.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "base_url": env.get("QONTO_BASE_URL") or PRODUCTION_URL,
            "api_key": env.get("QONTO_API_KEY") or None,
            "access_token": env.get("QONTO_ACCESS_TOKEN") or None,
            "refresh_token": env.get("QONTO_REFRESH_TOKEN") or None,
            "client_id": env.get("QONTO_CLIENT_ID") or None,
            "client_secret": env.get("QONTO_CLIENT_SECRET") or None,
            "staging_token": env.get("QONTO_STAGING_TOKEN") or None,
            "token_url": env.get("QONTO_TOKEN_URL") or None,
            "token_store": Path(env["QONTO_TOKEN_FILE"]) if env.get("QONTO_TOKEN_FILE") else None,
            "onboarding_url": env.get("QONTO_ONBOARDING_URL") or None,
            "partner_id": env.get("QONTO_PARTNER_ID") or None,
            "partner_token": env.get("QONTO_PARTNER_TOKEN") or None,
            "supplier_paid_path": env.get("QONTO_SUPPLIER_PAID_PATH") or None,
            "supplier_paid_field": env.get("QONTO_SUPPLIER_PAID_FIELD") or None,
        }
        values = {k: v for k, v in values.items()
                  if v is not None or k not in ("supplier_paid_path", "supplier_paid_field")}
        for name, (variable, _kind, _low, _ok) in _NUMBERS.items():
            if env.get(variable, "").strip():  # empty means unset, like the other variables
                values[name] = _number(name, env[variable])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def configured(self) -> bool:
        """True when some Business API credential is set."""
        return bool(self.api_key or self.access_token or self.refresh_token)

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (
            self.api_key,
            self.access_token,
            self.refresh_token,
            self.client_secret,
            self.staging_token,
            self.partner_token,
        )

    @property
    def resolved_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        if self.base_url == PRODUCTION_URL:
            return PRODUCTION_TOKEN_URL
        if self.base_url == SANDBOX_URL:
            return SANDBOX_TOKEN_URL
        return self.base_url + "/oauth2/token"

    @property
    def resolved_onboarding_url(self) -> str:
        if self.onboarding_url:
            return self.onboarding_url
        if self.base_url == PRODUCTION_URL:
            return PRODUCTION_ONBOARDING_URL
        return self.base_url  # the sandbox shares its host with the Business API sandbox

    @property
    def organization_hint(self) -> str:
        """A stable label for the organisation before asking Qonto (API key login or host)."""
        if self.api_key:
            return self.api_key.split(":", 1)[0]
        return urlsplit(self.base_url).netloc
