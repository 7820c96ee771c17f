"""Who may call the service: loopback binds are open; any other bind needs a bearer token."""

from __future__ import annotations

import hmac
import ipaddress
import socket

TOKEN_ENV = "FACTURFLOW_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address ("localhost", 127.0.0.1, ::1).

    A name that does not resolve is not loopback (the bind would fail anyway); "" and "0.0.0.0"
    mean every interface, which is not loopback.
    """
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in addresses
    )


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token`, compared in constant time."""
    if header is None:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # compare_digest takes as long whatever the first differing byte: no timing oracle.
    return hmac.compare_digest(given.strip().encode(), token.encode())
