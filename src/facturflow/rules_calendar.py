"""Rules that know their dates: which build of the French rules (BR-FR) is in force on a day.

The table ships in the package (`rules_calendar.toml`); users extend it in their configuration
file, `$FACTURFLOW_CONFIG` when set, else `config.toml` in the user configuration folder
(platformdirs: `~/.config/facturflow/config.toml` on Linux), under

    [[rules_calendar.french]]
    from = 2027-09-01          # a TOML date, or "YYYY-MM-DD"
    build = "fatal"            # "fatal" or "warning"
    note = "why"               # optional

A user entry on the same date as a built-in one replaces it. A malformed file or entry raises
RulesConfigError naming the file and the entry (the CLI exits with code 3, CONFIG).
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, cast

from .errors import FacturflowError

Build = Literal["fatal", "warning"]
BUILDS: tuple[Build, ...] = ("fatal", "warning")
CONFIG_ENV = "FACTURFLOW_CONFIG"
_TABLE = Path(__file__).with_name("rules_calendar.toml")
_KEYS = {"from", "build", "note"}


class RulesConfigError(FacturflowError):
    """The rules calendar (built in or in the user's configuration file) is malformed."""


@dataclass(frozen=True)
class CalendarEntry:
    """From `start` on, the French rules come in `build`."""

    start: dt.date
    build: Build
    note: str
    origin: str  # "built-in" or the configuration file's path


@dataclass(frozen=True)
class FrenchRules:
    """The build of the French rules a validation uses, and how it was chosen."""

    build: Build
    as_of: dt.date | None  # None when --french-rules named the build
    source: str  # "--french-rules", or the calendar entry that decided

    def as_dict(self) -> dict[str, str | None]:
        return {
            "build": self.build,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "source": self.source,
        }

    def describe(self) -> str:
        when = f" as of {self.as_of.isoformat()}" if self.as_of else ""
        return f"French rules: {self.build} build{when} ({self.source})"


def config_path() -> Path:
    """The user's configuration file: $FACTURFLOW_CONFIG, else the platform's config folder."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    import platformdirs

    return Path(platformdirs.user_config_dir("facturflow", appauthor=False)) / "config.toml"


def parse_date(value: object, where: str) -> dt.date:
    """A TOML date or an ISO `YYYY-MM-DD` string; RulesConfigError otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RulesConfigError(f"{where}: {value!r} is not a date (write YYYY-MM-DD)")


def _entries(data: object, origin: str) -> list[CalendarEntry]:
    if not isinstance(data, list):
        raise RulesConfigError(f"{origin}: the French rules calendar must be an array of tables")
    entries: list[CalendarEntry] = []
    for number, item in enumerate(data, 1):
        where = f"{origin}: rules_calendar.french entry {number}"
        if not isinstance(item, dict):
            raise RulesConfigError(f"{where}: must be a table with 'from' and 'build'")
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise RulesConfigError(
                f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(_KEYS))})"
            )
        if "from" not in item or "build" not in item:
            raise RulesConfigError(f"{where}: needs both 'from' (a date) and 'build'")
        build = item["build"]
        if build not in BUILDS:
            raise RulesConfigError(f"{where}: build {build!r} is not one of {', '.join(BUILDS)}")
        note = item.get("note", "")
        if not isinstance(note, str):
            raise RulesConfigError(f"{where}: 'note' must be a string")
        entries.append(
            CalendarEntry(parse_date(item["from"], where), cast(Build, build), note, origin)
        )
    return entries


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise RulesConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


@cache
def _builtin() -> tuple[CalendarEntry, ...]:
    return tuple(_entries(_read_toml(_TABLE).get("french"), "built-in"))


def _user(path: Path) -> list[CalendarEntry]:
    if not path.exists():
        if os.environ.get(CONFIG_ENV):
            raise RulesConfigError(f"{path}: no such file (named by ${CONFIG_ENV})")
        return []
    section = _read_toml(path).get("rules_calendar", {})
    if not isinstance(section, dict):
        raise RulesConfigError(f"{path}: [rules_calendar] must be a table")
    unknown = sorted(set(section) - {"french"})
    if unknown:
        raise RulesConfigError(
            f"{path}: unknown rules_calendar key {', '.join(unknown)} (known: french)"
        )
    return _entries(section.get("french", []), str(path))


def calendar(path: Path | None = None) -> list[CalendarEntry]:
    """The built-in table merged with the user's entries (a user entry replaces a built-in one
    on the same date), by date."""
    merged = {entry.start: entry for entry in _builtin()}
    for entry in _user(config_path() if path is None else path):
        merged[entry.start] = entry
    return [merged[day] for day in sorted(merged)]


def french_rules(
    build: str | None = None, as_of: dt.date | str | None = None, *, path: Path | None = None
) -> FrenchRules:
    """The build to use: `build` when given, else the calendar's on `as_of` (default: today).

    Raises RulesConfigError for a malformed calendar, ValueError for an unknown build or a
    malformed date, and ValueError when both are given.
    """
    if build is not None and as_of is not None:
        raise ValueError("choose either a French rules build or an --as-of date, not both")
    if build is not None:
        if build not in BUILDS:
            raise ValueError(f"unknown French rules build {build!r}; choose {' or '.join(BUILDS)}")
        return FrenchRules(build, None, "--french-rules")
    if isinstance(as_of, str):
        try:
            day = dt.date.fromisoformat(as_of.strip())
        except ValueError:
            raise ValueError(f"{as_of!r} is not a date (write YYYY-MM-DD)") from None
    else:
        day = as_of or dt.date.today()
    entries = calendar(path)
    chosen = entries[0]
    for entry in entries:
        if entry.start <= day:
            chosen = entry
    origin = "built-in calendar" if chosen.origin == "built-in" else f"calendar in {chosen.origin}"
    return FrenchRules(chosen.build, day, f"{origin}: from {chosen.start.isoformat()}")
