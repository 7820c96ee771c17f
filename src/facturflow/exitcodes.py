"""The exit codes of every facturflow command, in one place so that scripts can rely on them.

    0   OK            every input valid / sent / converted; the command did what was asked
    1   INVALID       an invoice is invalid, was rejected by validation, refused or rejected
                      downstream, or failed to send
    2   USAGE         a usage error (wrong option, empty or unknown rule set, unwritable output)
                      or an input that cannot be read as an invoice
    3   CONFIG        configuration or authentication: missing or malformed settings
                      (QONTO_*, FACTURFLOW_*), 401/403 answers, an organisation that cannot be read
    4   SERVICE       Qonto (or the sandbox) unreachable, timing out or answering with a server
                      error after the retries
    5   PENDING       `--wait` gave up: some invoices have not reached a final outcome yet
    6   STATE         the local state folder cannot be used: corrupt or truncated outbox, blobs
                      without their outbox, locked by another process, read-only, disk full;
                      or the outbox database (postgresql://) is unreachable or failing
    130 INTERRUPTED   stopped by Ctrl-C (SIGINT) or SIGTERM; what had finished is reported
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
INVALID: Final = 1
USAGE: Final = 2
CONFIG: Final = 3
SERVICE: Final = 4
PENDING: Final = 5
STATE: Final = 6
INTERRUPTED: Final = 130

__all__ = ["CONFIG", "INTERRUPTED", "INVALID", "OK", "PENDING", "SERVICE", "STATE", "USAGE"]
