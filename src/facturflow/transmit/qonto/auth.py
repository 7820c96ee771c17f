"""Auth: OAuth tokens kept on disk (atomic, 0600) and the refresh/exchange of `_Core`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ...outputs import write_private_atomically
from ..errors import (
    AuthenticationError,
)
from .config import QontoConfig, log
from .ops import _json, _Op


@dataclass
class TokenState:
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # wall-clock seconds


def load_tokens(path: Path) -> TokenState | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return TokenState(data.get("access_token"), data.get("refresh_token"), data.get("expires_at"))


def save_tokens(path: Path, state: TokenState) -> None:
    """Write atomically with mode 0600: a rotated refresh token must never be lost half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_atomically(path, json.dumps({
        "access_token": state.access_token,
        "refresh_token": state.refresh_token,
        "expires_at": state.expires_at,
    }).encode("utf-8"))


class _OAuth:
    """The OAuth half of `_Core`: when to refresh, the token requests, storing the answer."""

    config: QontoConfig
    tokens: TokenState
    use_oauth: bool

    # -- OAuth --------------------------------------------------------------------------------
    def can_refresh(self) -> bool:
        return bool(
            self.use_oauth and self.tokens.refresh_token and self.config.client_id
            and self.config.client_secret
        )

    def needs_refresh(self) -> bool:
        if not self.use_oauth:
            return False
        if not self.tokens.access_token:
            return self.can_refresh()
        exp = self.tokens.expires_at
        return exp is not None and time.time() >= exp and self.can_refresh()

    def refresh_op(self) -> _Op[None]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.tokens.refresh_token or "",
            "client_id": self.config.client_id or "",
            "client_secret": self.config.client_secret or "",
        }
        return _Op("POST", self.config.resolved_token_url, self._store_tokens, auth="none",
                   form=form, replay_safe=False)

    def exchange_code_op(self, code: str, redirect_uri: str) -> _Op[None]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.config.client_id or "",
            "client_secret": self.config.client_secret or "",
        }
        return _Op("POST", self.config.resolved_token_url, self._store_tokens, auth="none",
                   form=form, replay_safe=False)

    def _store_tokens(self, response: httpx.Response) -> None:
        body = _json(response)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise AuthenticationError("token endpoint answer lacks access_token",
                                      status=response.status_code)
        expires_in = body.get("expires_in")
        self.tokens = TokenState(
            body["access_token"],
            # Refresh tokens rotate: the old one is dead now, keep the new one.
            body.get("refresh_token") or self.tokens.refresh_token,
            time.time() + float(expires_in) - 30 if isinstance(expires_in, int | float) else None,
        )
        self.use_oauth = True
        if self.config.token_store is not None:
            save_tokens(self.config.token_store, self.tokens)
        elif body.get("refresh_token"):
            log.warning("the refresh token rotated but no token store is set (token_store= or "
                        "QONTO_TOKEN_FILE): the new one lives only in this process")
