"""Renderers: validation Reports as text or HTML for people, and as JSON, JUnit XML or SARIF for
machines.

    >>> from facturflow.reports import render
    >>> print(render(reports, "sarif"))          # doctest: +SKIP

`render` returns a string; `write` also picks colour for text when the stream is a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal, TextIO, get_args

from ..validation.report import Report
from . import html, junit, sarif, text
from . import json as json_report

Format = Literal["text", "json", "junit", "sarif", "html"]
FORMATS: tuple[str, ...] = get_args(Format)

__all__ = ["FORMATS", "Format", "render", "stream_supports_colour", "write"]


def render(
    reports: Iterable[Report],
    fmt: str = "text",
    *,
    colour: bool = False,
    text_mode: str = "full",
    lang: str = "en",
) -> str:
    """Render reports in one of FORMATS; `colour` and `text_mode` ("full", "summary" or
    "quiet", see facturflow.reports.text) and `lang` (of the fix hints: en or fr) only affect
    the text format.

    Raises ValueError for an unknown format.
    """
    batch = list(reports)
    if fmt == "text":
        return text.render(batch, colour=colour, mode=text_mode, lang=lang)
    if fmt == "json":
        return json_report.render(batch)
    if fmt == "junit":
        return junit.render(batch)
    if fmt == "sarif":
        return sarif.render(batch)
    if fmt == "html":
        return html.render(batch, lang=lang)
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def stream_supports_colour(stream: TextIO) -> bool:
    """True when `stream` is a terminal and the user has not asked for no colour (NO_COLOR)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def write(
    reports: Iterable[Report],
    fmt: str,
    stream: TextIO,
    *,
    text_mode: str = "full",
    lang: str = "en",
) -> None:
    """Render reports onto `stream`, in colour only for text on a terminal."""
    colour = fmt == "text" and stream_supports_colour(stream)
    out = render(reports, fmt, colour=colour, text_mode=text_mode, lang=lang)
    if out:  # a quiet report of valid files is empty: no blank line either
        stream.write(out if out.endswith("\n") else out + "\n")
