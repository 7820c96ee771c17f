"""Fix hints: one data file (data/hints.json, rule id -> {"en", "fr"}), shown beside the
official message, which stays as published."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Literal, get_args

Lang = Literal["en", "fr"]
LANGS: tuple[str, ...] = get_args(Lang)


@cache
def hints() -> dict[str, dict[str, str]]:
    """Every hint, by rule id."""
    text = resources.files(__package__).joinpath("data", "hints.json").read_text("utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)
    return {rule: entry for rule, entry in data.items() if not rule.startswith("_")}


def hint(rule: str, lang: str = "en") -> str | None:
    """The hint for a rule id in `lang` (en or fr), or None."""
    entry = hints().get(rule)
    return entry.get(lang) if entry else None
