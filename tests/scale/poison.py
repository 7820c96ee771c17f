"""Work functions for the cluster tests, importable by the Dask worker processes (they are
spawned with the test process's sys.path)."""

from __future__ import annotations

import os
import signal
from typing import Any


def poison_work(name: str, source: Any, log: str) -> str:
    """Kill the worker process on a file named '*poison*' (a native crash), after noting the
    death in `log`; any other file gives its name and content."""
    data = source.read()
    if "poison" in name:
        with open(log, "a", encoding="utf-8") as stream:
            stream.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return f"{name}:{data.decode()}"


def poison_failed(name: str, why: str) -> str:
    return f"FAILED {name}: {why}"
