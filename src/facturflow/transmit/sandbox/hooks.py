"""The `/_sandbox/...` test hook routes: the Python test hooks for out-of-process users."""

from __future__ import annotations

import re
from typing import Any

from .config import ALL_SCOPES
from .endpoints import _Request
from .faults import FAULT_KINDS, FaultPlan
from .wire import _fail, _iso


class _HookRoutes(_Request):
    """The test hook routes: one `r_hook_<name>` method per `/_sandbox/...` route."""

    # -- test hooks ---------------------------------------------------------------------------
    def r_hook_counters(self) -> tuple[int, Any]:
        return 200, {"counters": self.sandbox.counters()}

    def _hook_body(self, allowed: tuple[str, ...]) -> dict[str, Any]:
        body = self._json_body()
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise _fail(400, "invalid_body", f"unknown field {unknown[0]!r} (expected: "
                        f"{', '.join(allowed)})", pointer=f"/{unknown[0]}")
        return body

    def r_hook_clock(self) -> tuple[int, Any]:
        body = self._hook_body(("advance",))
        try:
            self.sandbox.advance(body.get("advance", 0))
        except ValueError as exc:
            raise _fail(400, "invalid_parameter", str(exc), pointer="/advance") from None
        return 200, {"now": _iso(self.sandbox.now())}

    def r_hook_faults(self) -> tuple[int, Any]:
        body = self._hook_body(("next", "kind", "rate", "kinds", "stall_seconds", "seed"))
        sb = self.sandbox
        try:
            plan = None
            if "rate" in body:
                kinds = body.get("kinds", list(FAULT_KINDS))
                if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
                    raise ValueError("kinds must be a list of fault kinds")
                plan = FaultPlan(rate=body["rate"], kinds=tuple(kinds),
                                 stall_seconds=body.get("stall_seconds", 2.0),
                                 seed=body.get("seed"))
            if "next" in body:
                kind = body.get("kind", "500")
                if not isinstance(kind, str):
                    raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
                sb.fail_next(body["next"], kind)
        except ValueError as exc:
            raise _fail(400, "invalid_parameter", str(exc)) from None
        if plan is not None:
            plan.forced = sb.config.faults.forced  # faults already queued stay queued
            sb.set_faults(plan)
        return 200, {"ok": True}

    def r_hook_supplier(self) -> tuple[int, Any]:
        name = self.headers.get("X-File-Name") or "invoice.pdf"
        if len(name) > 255 or any(ch in name for ch in "/\\\0") or name in (".", ".."):
            raise _fail(400, "invalid_parameter", "X-File-Name must be a plain file name",
                        parameter="X-File-Name")
        if not self.body:
            raise _fail(400, "invalid_body", "the body must be the invoice file")
        return 201, {"supplier_invoice": self.sandbox.inject_supplier_invoice(self.body, name)}

    def r_hook_client(self) -> tuple[int, Any]:
        body = self._hook_body(("name", "siren", "reachable"))
        siren = body.get("siren")
        if not isinstance(siren, str) or not re.fullmatch(r"\d{9}", siren):
            raise _fail(400, "invalid_parameter", "siren must be 9 digits", pointer="/siren")
        return 201, {"client": self.sandbox.add_client(
            str(body.get("name") or f"Client {siren}"), siren, bool(body.get("reachable", True)))}

    def r_hook_code(self) -> tuple[int, Any]:
        scopes = self._hook_body(("scopes",)).get("scopes") or list(ALL_SCOPES)
        if not isinstance(scopes, list) or not all(s in ALL_SCOPES for s in scopes):
            raise _fail(400, "invalid_parameter", "scopes must be a list of known scopes: "
                        + " ".join(ALL_SCOPES), pointer="/scopes")
        return 200, {"code": self.sandbox.authorization_code(tuple(scopes))}

    def r_hook_settings(self) -> tuple[int, Any]:
        body = self._hook_body(("sending_status", "receiving_status"))
        for key, value in body.items():
            # Any short word: clients must tolerate enum values they do not know (API.md §3.1).
            if not isinstance(value, str) or not re.fullmatch(r"[a-z_]{1,64}", value):
                raise _fail(400, "invalid_parameter", f"{key} must be a status word such as "
                            "'enabled' or 'disabled'", pointer=f"/{key}")
        self.sandbox.state.data["settings"].update(body)
        return 200, dict(self.sandbox.state.data["settings"])
