"""A local Qonto PA emulator: a real HTTP server on loopback speaking the contract of API.md.

    with facturflow.sandbox() as sb:            # ephemeral port on 127.0.0.1
        client = QontoClient(base_url=sb.base_url, api_key=sb.api_key)
        ...
        sb.counters()                           # send_by_einvoice calls and submissions

State (organisations, invoices, files, tokens, registrations, idempotency cache) lives in a
folder and survives a restart. Fault injection (5xx, 429, dropped connections, stalls) is seeded
so that a failing test replays. Test hooks are Python methods and, for out-of-process users,
`/_sandbox/...` routes.

The package, by concern: `core` (`Sandbox`: the emulated organisation and its Python test
hooks), `handler` (HTTP plumbing and route table), `endpoints` (the API's routes), `hooks` (the
`/_sandbox/...` routes), `state` (persistence and locking), `faults` (fault injection), `config`
(`SandboxConfig`), `wire` (bodies, dates, error replies), `emitter` (the lifecycle webhooks).
"""

from __future__ import annotations

from ..fields import read_invoice_fields
from .config import OUTCOMES as OUTCOMES
from .config import SandboxConfig
from .core import Sandbox, sandbox
from .faults import FAULT_KINDS, FaultPlan
from .state import _State as _State  # tests reach the journal's threshold
from .wire import parse_multipart as parse_multipart

__all__ = ["FAULT_KINDS", "FaultPlan", "Sandbox", "SandboxConfig", "read_invoice_fields",
           "sandbox"]
