"""Qonto Business API client (sync and async twins sharing one core) for the PA-as-a-Service flow.

The two clients only differ in how they wait and send; everything else (configuration, auth
headers, request building, answer interpretation, retry decisions, rate limiting, OAuth refresh
with rotating refresh tokens, pagination rules) lives in `_Core` and the `_Op` descriptions.

The package, by concern: `clients` (`QontoClient`, `AsyncQontoClient`), `core` (`_Core`: requests,
answers, errors, retries), `auth` (OAuth tokens), `ops` (the endpoints as `_Op` descriptions),
`transport` (rate limiter, deadlines, capped reads), `config` (`QontoConfig`), `values` (the
values taken and returned).
"""

from __future__ import annotations

from .auth import TokenState as TokenState
from .auth import load_tokens as load_tokens
from .auth import save_tokens as save_tokens
from .clients import AsyncQontoClient, QontoClient
from .config import (
    DEFAULT_RATE_LIMITS,
    MAX_IMPORT_FILE_BYTES,
    MAX_IMPORT_FILES,
    MAX_IMPORT_TOTAL_BYTES,
    PA_SCOPES,
    PRODUCTION_URL,
    SANDBOX_URL,
    QontoConfig,
)
from .config import check_api_key as check_api_key
from .core import _Core as _Core  # tests build one to check its retry policy
from .ops import check_import_limits, client_matches
from .transport import RateLimiter
from .values import (
    ClientInvoice,
    EInvoicingSettings,
    ImportedInvoice,
    LifecycleEvent,
    ServerClock,
    UploadFile,
)
from .values import content_type_for as content_type_for

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "MAX_IMPORT_FILES",
    "MAX_IMPORT_FILE_BYTES",
    "MAX_IMPORT_TOTAL_BYTES",
    "PA_SCOPES",
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "AsyncQontoClient",
    "ClientInvoice",
    "EInvoicingSettings",
    "ImportedInvoice",
    "LifecycleEvent",
    "QontoClient",
    "QontoConfig",
    "RateLimiter",
    "ServerClock",
    "UploadFile",
    "check_import_limits",
    "client_matches",
]
