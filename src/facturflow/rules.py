"""Rule sets: which artefacts apply to a document, by name, plus user rule packs.

Built-in rule set names:

    xsd              the schema of the syntax and profile
    en16931          EN 16931 rules (CEN UBL; for CII the Factur-X profile stylesheet, which carries
                     the CEN CII rules); replaced by EXTENDED-CTC-FR when that profile is declared
    facturx          the Factur-X profile rules for CII (same stylesheet as en16931 for CII)
    fr-ctc           the French CTC rules BR-FR (Flux 2), UBL or CII
    extended-ctc-fr  the EXTENDED-CTC-FR rules, applied when that profile is declared
    pdf              Factur-X / ZUGFeRD PDF container checks

The default is what a sender to the French network needs: all of them. A rule pack is a folder with
a `rulepack.toml` naming its XSD and XSLT files and the syntaxes and profiles they apply to; its
name becomes a rule set name, enabled whenever the pack is loaded.

A selection fails closed: an empty one or an unknown name raises UnknownRuleSetError, and a set
the user named that does not apply to a document (`pdf` on an XML file, `extended-ctc-fr` on an
EN 16931 invoice) is reported on that document (see `not_applicable`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .artefacts import Artefact, builtin
from .detect import PROFILES, SYNTAXES, Document
from .errors import ArtefactError, EmptyRuleSelectionError, RulePackError, UnknownRuleSetError

if TYPE_CHECKING:  # only for annotations: importing facturflow.validate here would be circular
    from .validate.report import Layer

BUILTIN_RULE_SETS: tuple[str, ...] = (
    "xsd",
    "en16931",
    "facturx",
    "fr-ctc",
    "extended-ctc-fr",
    "pdf",
)
DEFAULT_RULE_SETS: tuple[str, ...] = BUILTIN_RULE_SETS
ALIASES = {
    "all": BUILTIN_RULE_SETS,
    "default": DEFAULT_RULE_SETS,
    "profile": ("facturx",),
    "br-fr": ("fr-ctc",),
}

_UBL = ("ubl-invoice", "ubl-creditnote")
_FX_PROFILES = ("minimum", "basicwl", "basic", "en16931", "extended")


@dataclass(frozen=True)
class Step:
    """One artefact to apply, and the rule set that asked for it."""

    rule_set: str
    layer: Layer
    artefact: Artefact


@dataclass(frozen=True)
class PackEntry:
    kind: Layer
    path: Path
    syntaxes: tuple[str, ...]
    profiles: tuple[str, ...]


@dataclass(frozen=True)
class RulePack:
    """A user rule pack loaded from its folder.

    Making one checks what its files may do (see facturflow.packguard): a file outside the
    folder, or a stylesheet that could read outside it, reach the environment or write files,
    raises RulePackError.
    """

    name: str
    version: str
    folder: Path
    entries: tuple[PackEntry, ...]

    def __post_init__(self) -> None:
        from .packguard import check_schema, check_stylesheet

        root = Path(self.folder).resolve()
        for entry in self.entries:
            if not entry.path.resolve().is_relative_to(root):
                raise RulePackError(
                    f"{entry.path} is outside the pack's folder", source=str(self.folder)
                )
            if entry.kind == "xsd":
                check_schema(entry.path, root)
            else:
                check_stylesheet(entry.path, root)

    def artefacts_for(self, document: Document) -> list[Step]:
        steps = []
        for entry in self.entries:
            if document.syntax in entry.syntaxes and (
                not entry.profiles or document.profile in entry.profiles
            ):
                artefact = Artefact(
                    key=f"pack:{self.name}:{entry.path.name}",
                    kind="xsd" if entry.kind == "xsd" else "schematron",
                    path=entry.path,
                    title=f"{self.name} ({entry.path.name})",
                    version=self.version,
                    origin=f"rule pack {self.folder}",
                )
                steps.append(Step(self.name, entry.kind, artefact))
        return steps


def load_rule_pack(folder: str | os.PathLike[str]) -> RulePack:
    """Read a rule pack folder; raises RulePackError naming what is wrong."""
    root = Path(folder)
    manifest = root / "rulepack.toml"
    if not manifest.is_file():
        raise RulePackError("no rulepack.toml in the folder", source=str(root))
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulePackError(
            f"rulepack.toml is not valid TOML: {exc}", source=str(manifest)
        ) from None
    name = data.get("name")
    if not isinstance(name, str) or not name or name in BUILTIN_RULE_SETS:
        raise RulePackError(
            "'name' must be a non-empty string that is not a built-in rule set name",
            source=str(manifest),
        )
    entries: list[PackEntry] = []
    for kind, table in (("xsd", "xsd"), ("schematron", "schematron")):
        items = data.get(table, [])
        if not isinstance(items, list):
            raise RulePackError(f"[[{table}]] must be an array of tables", source=str(manifest))
        for item in items:
            file = item.get("file") if isinstance(item, dict) else None
            if not isinstance(file, str):
                raise RulePackError(f"each [[{table}]] needs a 'file'", source=str(manifest))
            path = (root / file).resolve()
            if not path.is_file():
                raise RulePackError(f"{table} file not found: {file}", source=str(manifest))
            if not path.is_relative_to(root.resolve()):
                raise RulePackError(
                    f"{table} file {file} is outside the pack's folder", source=str(manifest)
                )
            syntaxes = tuple(item.get("syntaxes", SYNTAXES))
            profiles = tuple(item.get("profiles", ()))
            unknown = [s for s in syntaxes if s not in SYNTAXES] + [
                p for p in profiles if p not in PROFILES
            ]
            if unknown:
                raise RulePackError(
                    f"unknown syntax or profile in {file}: {', '.join(unknown)} "
                    f"(syntaxes: {', '.join(SYNTAXES)}; profiles: {', '.join(PROFILES)})",
                    source=str(manifest),
                )
            entries.append(PackEntry(kind, path, syntaxes, profiles))  # type: ignore[arg-type]
    if not entries:
        raise RulePackError(
            "the pack names no [[xsd]] or [[schematron]] file", source=str(manifest)
        )
    return RulePack(name, str(data.get("version", "unversioned")), root.resolve(), tuple(entries))


class RuleSelection(tuple[str, ...]):
    """Rule set names in order, and the ones the user named (`explicit`).

    A name implied by the default or by 'all' is not explicit: such a set that does not apply to
    a document is expected and passes in silence, while one the user named is reported.
    """

    explicit: frozenset[str]

    def __new__(cls, names: Iterable[str], explicit: Iterable[str] = ()) -> RuleSelection:
        selection = super().__new__(cls, names)
        selection.explicit = frozenset(explicit)
        return selection

    def __reduce__(self) -> tuple[object, ...]:  # sent to worker processes
        return (RuleSelection, (tuple(self), tuple(sorted(self.explicit))))


def valid_names(packs: Sequence[RulePack] = ()) -> str:
    """The names a selection may use, for error messages."""
    return ", ".join([*BUILTIN_RULE_SETS, *(p.name for p in packs), "all"])


def parse_rule_sets(
    rules: str | Iterable[str] | None, packs: Sequence[RulePack] = ()
) -> RuleSelection:
    """Normalise a user's rule list ("en16931,fr-ctc" or a list) into known rule set names.

    None means the default. An empty selection ("", ",", []) raises EmptyRuleSelectionError, an
    unknown name UnknownRuleSetError (its base class; also a ValueError).
    """
    explicit: set[str] = set()
    if rules is None:
        names: list[str] = list(DEFAULT_RULE_SETS)
    elif isinstance(rules, RuleSelection):
        names, explicit = list(rules), set(rules.explicit)
    else:
        raw = rules.split(",") if isinstance(rules, str) else list(rules)
        names = []
        for item in raw:
            if not isinstance(item, str):
                raise UnknownRuleSetError(
                    f"unknown rule set {item!r} (not a name); valid names: {valid_names(packs)}"
                )
            item = item.strip()
            if not item:
                continue
            expanded = ALIASES.get(item, (item,))
            names.extend(expanded)
            if item not in ("all", "default"):
                explicit.update(expanded)
        if not names:
            raise EmptyRuleSelectionError(
                f"empty rule selection: name at least one rule set; valid names: "
                f"{valid_names(packs)}"
            )
    known = set(BUILTIN_RULE_SETS) | {p.name for p in packs}
    unknown = list(dict.fromkeys(n for n in names if n not in known))
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise UnknownRuleSetError(
            f"unknown rule set{plural} {', '.join(repr(n) for n in unknown)}; "
            f"valid names: {valid_names(packs)}"
        )
    # Loaded packs always run: loading one is how a user asks for it.
    names.extend(p.name for p in packs if p.name not in names)
    return RuleSelection(dict.fromkeys(names), explicit)


def _describe(document: Document) -> str:
    return f"{document.syntax} {(document.profile or 'unknown').upper()}"


def not_applicable(document: Document, rule_set: str, packs: Sequence[RulePack] = ()) -> str | None:
    """Why a rule set does not apply to a document (one short clause), or None when it does.

    A set applies when it gives the document at least one layer to run (an XSD, a stylesheet or
    the PDF rules), as `plan` and the PDF layer decide.
    """
    syntax, profile = document.syntax, document.profile
    if rule_set == "xsd":
        return None
    if rule_set == "en16931":
        if _base_key(document) is None:
            return "no official Schematron exists for ZUGFeRD 1.0"
        return None
    if rule_set == "facturx":
        if syntax != "cii":
            return f"applies to Factur-X CII invoices only (this invoice is {syntax})"
        return None
    if rule_set == "fr-ctc":
        if syntax not in (*_UBL, "cii"):
            return "applies to UBL and CII only, not ZUGFeRD 1.0 (convert it to Factur-X)"
        return None
    if rule_set == "extended-ctc-fr":
        if profile != "extended-ctc-fr":
            return (
                "applies to the EXTENDED-CTC-FR profile only "
                f"(this invoice is {(profile or 'unknown').upper()})"
            )
        return None
    if rule_set == "pdf":
        if document.container != "pdf":
            return (
                "applies to PDF inputs (Factur-X, ZUGFeRD) only "
                f"(this input is {document.container.upper()})"
            )
        return None
    for pack in packs:
        if pack.name == rule_set and not pack.artefacts_for(document):
            scopes = sorted(
                {
                    f"{'/'.join(e.syntaxes)}"
                    + (f" ({'/'.join(p.upper() for p in e.profiles)})" if e.profiles else "")
                    for e in pack.entries
                }
            )
            return f"applies to {'; '.join(scopes)} only (this invoice is {_describe(document)})"
    return None


def _xsd_key(document: Document) -> str:
    if document.syntax == "ubl-invoice":
        return "xsd-ubl-invoice"
    if document.syntax == "ubl-creditnote":
        return "xsd-ubl-creditnote"
    if document.syntax == "zugferd1":
        return "xsd-zugferd1"
    if document.profile in _FX_PROFILES:
        return f"xsd-fx-{document.profile}"
    # EXTENDED-CTC-FR, XRechnung and other CII: the full CII D22B schema.
    return "xsd-cii-d22b"


def _base_key(document: Document) -> str | None:
    """The EN 16931 / profile stylesheet for the document, or None (ZUGFeRD 1.0 has none)."""
    if document.syntax in _UBL:
        return "sch-extfr-ubl" if document.profile == "extended-ctc-fr" else "sch-en16931-ubl"
    if document.syntax == "cii":
        if document.profile == "extended-ctc-fr":
            return "sch-extfr-cii"
        return f"sch-fx-{document.profile if document.profile in _FX_PROFILES else 'en16931'}"
    return None


def plan(
    document: Document, rule_sets: Sequence[str], packs: Sequence[RulePack] = ()
) -> tuple[list[Step], list[str]]:
    """The steps (artefacts in order) to apply to a document, and notes on what does not apply."""
    steps: list[Step] = []
    notes: list[str] = []
    seen: set[str] = set()

    def add(rule_set: str, layer: Layer, key: str) -> None:
        if key not in seen:
            seen.add(key)
            try:
                artefact = builtin(key)
            except ArtefactError as exc:
                # Keep the step: running it fails closed with a LAYER-FAILED finding that
                # names the missing file, instead of silently skipping a required layer.
                artefact = Artefact(
                    key=key,
                    kind="xsd" if layer == "xsd" else "schematron",
                    path=Path(f"<missing artefact {key}: {exc.message}>"),
                    title=key,
                    version="missing",
                    origin="missing",
                )
            steps.append(Step(rule_set, layer, artefact))

    if "xsd" in rule_sets:
        add("xsd", "xsd", _xsd_key(document))
    base = _base_key(document)
    extfr = document.profile == "extended-ctc-fr"
    wants_base = (
        "en16931" in rule_sets
        or ("facturx" in rule_sets and document.syntax == "cii")
        or ("extended-ctc-fr" in rule_sets and extfr)
    )
    if wants_base:
        if base is None:
            notes.append("no official Schematron exists for ZUGFeRD 1.0: only its XSD is checked")
        else:
            name = (
                "extended-ctc-fr" if extfr else ("en16931" if "en16931" in rule_sets else "facturx")
            )
            add(name, "schematron", base)
    if "fr-ctc" in rule_sets:
        if document.syntax in _UBL:
            add("fr-ctc", "schematron", "sch-brfr-ubl")
        elif document.syntax == "cii":
            add("fr-ctc", "schematron", "sch-brfr-cii")
        else:
            notes.append(
                "the French CTC rules (BR-FR) do not apply to ZUGFeRD 1.0; convert it to Factur-X"
            )
    for pack in packs:
        if pack.name in rule_sets:
            steps.extend(pack.artefacts_for(document))
    return steps, notes
