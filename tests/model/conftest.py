"""Prints the corpus fidelity table at the end of a session that measured it."""

from __future__ import annotations

from typing import Any

from .fidelity import RESULTS, table


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("EN 16931 model fidelity over the corpus")
    terminalreporter.write_line(table(RESULTS))
