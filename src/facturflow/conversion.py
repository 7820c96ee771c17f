"""Convert an invoice between CII, UBL and Factur-X PDF, through the EN 16931 model, validated.

    convert(source, to="facturx")  ->  ConversionResult(data, syntax, profile, report, dropped)

The path: detect the input; read it into the model (facturflow.Invoice) unless the input
already is the target (a CII headed for CII or Factur-X in the same profile keeps its bytes);
write the target syntax; for Factur-X, render or wrap a PDF and embed the CII; validate the
output. Two checks gate the result:

- fidelity: the output is read back into the model and compared with the input, business
  term by business term; a term that is missing or changed is "dropped";
- validity: the output's validation report must have no fatal finding.

A dropped term raises ConversionRejected (a ConversionError) naming the terms, unless
`lossy=True`, in which case the result lists them in `dropped`. An invalid output always
raises, naming the rules and the business terms they concern.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from .detection import Document, Source, detect_bytes, read_source
from .errors import ConversionError, FacturflowError
from .facturx import CONFORMANCE_LEVELS, build_facturx, facturx_profile, unembedded_fonts
from .validation import validate
from .validation.report import Report
from .xmlsafe import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .model import Invoice
    from .render import Language
    from .rules import RuleSelection

Target = Literal["cii", "ubl", "facturx"]
TARGETS: Final[tuple[str, ...]] = get_args(Target)

# The specification identifier (BT-24) written for a target profile.
SPECIFICATION_IDS: Final[dict[str, str]] = {
    "en16931": "urn:cen.eu:en16931:2017",
    "extended": "urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended",
    "extended-ctc-fr": "urn:cen.eu:en16931:2017#conformant#urn.cpro.gouv.fr:1p0:extended-ctc-fr",
}
# Profiles whose documents may carry the extension terms (BT-X-…) beyond the EN 16931 core.
_EXTENDED_PROFILES: Final = frozenset({"extended", "extended-ctc-fr"})
# Extension terms: the French EXTENDED-CTC-FR ones (EXT-FR-…) and Factur-X EXTENDED's (BT-X-…).
_EXTENSION_ID = re.compile(r"^(EXT-|B[GT]-X-)")
_UBL_SYNTAXES: Final = ("ubl-invoice", "ubl-creditnote")
_UBL_PROFILES: Final = frozenset({"en16931", "extended-ctc-fr", "xrechnung", "peppol"})
# The BT-24 values the Factur-X / EXTENDED-CTC-FR CII Schematron accepts for a profile.
_CII_ACCEPTED: Final[dict[str, tuple[str | None, ...]]] = {
    "en16931": ("urn:cen.eu:en16931:2017",),
    "extended": (
        "urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended",
        "urn:cen.eu:en16931:2017#conformant#urn:zugferd.de:2p0:extended",
    ),
    "extended-ctc-fr": (SPECIFICATION_IDS["extended-ctc-fr"],),
}


@dataclass(frozen=True)
class ConversionResult:
    """A validated conversion: the output bytes and what was checked and lost on the way."""

    data: bytes
    syntax: str  # 'cii', 'ubl-invoice', 'ubl-creditnote' or 'facturx'
    profile: str
    report: Report
    dropped: tuple[str, ...] = ()
    source: str = "<bytes>"
    warnings: tuple[str, ...] = ()
    xml: bytes = b""  # the XML written: for Factur-X, the CII embedded as factur-x.xml

    @property
    def suffix(self) -> str:
        """The file extension the output wants: .pdf for Factur-X, .xml otherwise."""
        return ".pdf" if self.syntax == "facturx" else ".xml"


class ConversionRejected(ConversionError):
    """A conversion refused: its output would drop business terms or be invalid.

    `business_terms` names the terms concerned. When the refusal comes from validation,
    `report` is the output's validation report and `result` the refused output itself (to
    inspect, never to send); both are None when terms would be dropped. The failing rules are
    told apart: `source_defects` fail on the source document too (the input was already
    wrong), `conversion_defects` fail on the output only (the conversion made them).
    """

    def __init__(
        self,
        message: str,
        *,
        business_terms: Iterable[str] = (),
        report: Report | None = None,
        result: ConversionResult | None = None,
        source: str | None = None,
        source_defects: Iterable[str] = (),
        conversion_defects: Iterable[str] = (),
    ) -> None:
        super().__init__(message, source=source)
        self.business_terms = tuple(business_terms)
        self.report = report
        self.result = result
        self.source_defects = tuple(source_defects)
        self.conversion_defects = tuple(conversion_defects)


class VisualPDFError(ConversionError):
    """The visual PDF given to wrap (`pdf=`, `--pdf`) is not a usable PDF; the invoice is not at
    fault."""


# -- the model side ------------------------------------------------------------------------


def _read(document: Document, warnings: list[str] | None = None) -> Invoice:
    from .reading import read_with_mapping

    # Code lists are the validator's to judge (with the official, versioned artefacts); the
    # model's own lists must not refuse a value the target's rules would accept.
    invoice, mapping = read_with_mapping(document, check_codes=False)
    if mapping is not None and warnings is not None:
        warnings.extend(mapping.warnings())  # ZUGFeRD 1.0: what was completed or not carried
    return invoice


def _write(invoice: Invoice, syntax: Literal["cii", "ubl"]) -> bytes:
    from .syntax import to_xml

    return to_xml(invoice, syntax)


def _term_id(f: dataclasses.Field[Any]) -> list[str]:
    ident = f.metadata.get("bt") or f.metadata.get("bg")
    if isinstance(ident, dict):
        return [str(v) for v in ident.values()]
    return [str(ident)] if ident else []


def _prune_extensions(node: Any, dropped: set[str]) -> Any:
    """A copy of a model node without the extension terms (BT-X-…) the core cannot carry."""
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return node
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if value is None or value == ():
            continue
        ids = _term_id(f)
        if ids and all(_EXTENSION_ID.match(i) for i in ids):
            dropped.update(ids)
            changes[f.name] = () if isinstance(value, tuple) else None
        elif isinstance(value, tuple):
            pruned = tuple(_prune_extensions(v, dropped) for v in value)
            if pruned != value:
                changes[f.name] = pruned
        elif dataclasses.is_dataclass(value):
            pruned_one = _prune_extensions(value, dropped)
            if pruned_one is not value:
                changes[f.name] = pruned_one
    return dataclasses.replace(node, **changes) if changes else node


def _flatten(data: Any, key: str, out: Counter[tuple[str, str]]) -> None:
    """Count (business term, normalised value) pairs of an Invoice.to_dict() tree."""
    if isinstance(data, list):
        for item in data:
            _flatten(item, key, out)
    elif isinstance(data, dict) and (key == "" or key.startswith("BG-") or not _is_value(data)):
        for sub_key, value in data.items():
            _flatten(value, sub_key, out)
    else:
        out[(key, _normalise(data))] += 1


def _is_value(data: dict[str, Any]) -> bool:
    # Compound values (an identifier with its scheme...) are keyed by field names, not term ids.
    return not any(k.startswith(("BT-", "BG-")) for k in data)


def _normalise(value: Any) -> str:
    if isinstance(value, dict):
        return repr(sorted((k, _normalise(v)) for k, v in value.items()))
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        # Amounts may change scale across syntaxes (100.0000 -> 100.00), not value.
        return str(number.normalize()) if number.is_finite() else value
    return repr(value)


def lost_terms(before: Invoice, after: Invoice, *, ignore: Iterable[str] = ()) -> tuple[str, ...]:
    """Business terms of `before` that `after` lacks or carries with another value, sorted.

    Both are compared in canonical form (facturflow.model.implied): a term one syntax makes
    explicit and another leaves implicit (BT-148 beside BT-147, BT-110 beside a VAT breakdown,
    a BT-6 equal to BT-5) is not lost."""
    from .model.implied import canonical

    counts_before: Counter[tuple[str, str]] = Counter()
    counts_after: Counter[tuple[str, str]] = Counter()
    _flatten(canonical(before).to_dict(), "", counts_before)
    _flatten(canonical(after).to_dict(), "", counts_after)
    skipped = set(ignore)
    missing = {term for (term, _), _n in (counts_before - counts_after).items()}
    return tuple(sorted(missing - skipped, key=_term_sort_key))


def _term_sort_key(term: str) -> tuple[str, int, str]:
    match = re.match(r"^(B[GT])-(\d+)(.*)$", term)
    if match:
        return match.group(1), int(match.group(2)), match.group(3)
    return "~", 0, term


# -- conversion ----------------------------------------------------------------------------


def _target_profile(document: Document, to: str, profile: str | None) -> str:
    if profile is None and document.syntax == "zugferd1":
        # ZUGFeRD 1.0 BASIC/COMFORT/EXTENDED map to the EN 16931 terms, not to the Factur-X
        # levels of the same names: the output is an EN 16931 invoice.
        return "en16931"
    if profile is not None:
        if profile not in SPECIFICATION_IDS and profile != document.profile:
            raise ConversionError(
                f"cannot convert to the {profile!r} profile (choose one of "
                f"{', '.join(SPECIFICATION_IDS)}, or the input's own profile)",
                source=document.name,
            )
        return profile
    if to == "ubl":
        carried = _UBL_PROFILES
    elif to == "cii":
        carried = frozenset(CONFORMANCE_LEVELS)
    else:
        # An XRechnung is an EN 16931 invoice; Factur-X's EN 16931 rules admit only their own
        # BT-24, so it travels as EN 16931 rather than under the XRECHNUNG level.
        carried = frozenset(CONFORMANCE_LEVELS) - {"xrechnung"}
    if document.profile in carried:
        return document.profile
    return "en16931"


def convert(
    source: Source | Document | Invoice,
    to: Target = "facturx",
    profile: str | None = None,
    pdf: bytes | None = None,
    lossy: bool = False,
    *,
    lang: Language = "fr",
    rules: str | Iterable[str] | None = None,
    french_rules: str | None = None,
    as_of: date | str | None = None,
    timestamp: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ConversionResult:
    """Convert one invoice (path, bytes, file object, detected Document, or an `Invoice` built
in code, e.g. with facturflow.model.build) to `to`.

    `profile` picks the target profile ('en16931', 'extended', 'extended-ctc-fr'); by default
    the input's profile is kept when the target syntax has it, else EN 16931. `pdf` is the
    visual PDF to wrap for Factur-X (default: a page rendered from the model in `lang`).
    The output is checked with the rules `validate` would choose (`rules`, `french_rules` and
    `as_of` as in facturflow.validate): by default XSD, EN 16931 and the target's profile rules,
    plus the regional rules the invoice is in the scope of. The French scope is the source's
    (the seller and process terms travel, a French CIUS identifier may not); the XRechnung and
    Peppol rules apply to the output when it still declares that CIUS in BT-24 (an XRechnung
    converted to CII or UBL keeps it; Factur-X carries it as EN 16931, so they do not apply).
    `timestamp` dates a Factur-X (default: the invoice's issue date at 00:00:00 UTC).
    `limits` bounds the input read and the output validated (facturflow.Limits; the safe
    defaults refuse over 100 MB or a million markup items: raise them for a very large invoice).

    The output depends on the input's bytes and these options only (not on the clock, chance,
    the time zone, the locale or the input's file name): converting again gives the same bytes.

    Raises InputError subclasses for unreadable input, ConversionRejected (a ConversionError)
    for an output that would drop terms (unless `lossy`) or be invalid, ConversionError for an
    impossible request, UnknownRuleSetError (a ValueError) for a bad `rules`.
    """
    from .rules import parse_rule_sets

    # Parsed once, before any work: a bad name fails fast, and the French rules build is fixed
    # for both the output and the source check.
    selection = parse_rule_sets(rules, french_build=french_rules, as_of=as_of)
    if to not in TARGETS:
        raise ConversionError(f"unknown target {to!r} (choose one of {', '.join(TARGETS)})")
    if pdf is not None and to != "facturx":
        raise ConversionError("a visual PDF can only be given for a Factur-X conversion")
    from .model import Invoice

    if isinstance(source, Invoice):
        return _convert_invoice(source, to, profile, pdf, lossy, lang, selection, timestamp,
                                limits)
    raw: bytes | None = None
    if isinstance(source, Document):
        document = source
    else:
        raw, label = read_source(source, limits=limits)
        document = detect_bytes(raw, name=label, limits=limits)
    name = document.name
    target_profile = _target_profile(document, to, profile)
    warnings: list[str] = list(document.warnings)

    invoice: Invoice | None = None
    written: Document | None = None  # the output XML detected (None: the input's own bytes)
    dropped: tuple[str, ...] = ()
    passthrough = (
        to in ("cii", "facturx")
        and document.syntax == "cii"
        and target_profile == document.profile
    )
    if passthrough:
        xml = _original_xml(document, raw)
    else:
        try:
            invoice = _read(document, warnings)
        except FacturflowError as exc:
            exc.source = exc.source or name
            raise
        xml, dropped = _model_xml(invoice, to, target_profile, document.profile, name, lossy,
                                  limits)
        written = detect_bytes(xml, name="<output>", limits=_output_limits(limits, xml))
        written_id = written.spec_id
        if written_id != document.spec_id:
            warnings.append(
                f"specification identifier (BT-24) changed from {document.spec_id!r} to "
                f"{written_id!r}"
            )

    if to == "facturx":
        given = pdf is not None
        if pdf is None and document.pdf_bytes is not None:
            pdf = document.pdf_bytes  # a Factur-X/ZUGFeRD input keeps its own visual
        data = _wrap(xml, pdf, given, invoice, lang, timestamp, name, warnings, limits)
        syntax = "facturx"
    else:
        data = xml
        syntax = detect_bytes(xml, name="<output>", limits=_output_limits(limits, xml)).syntax
    return _checked_result(data, syntax, target_profile, dropped, name, warnings, xml, to,
                           _as_source_scope(selection, document, written),
                           origin=_origin(document, raw), source_rules=selection, limits=limits)


def _output_limits(limits: Limits, data: bytes) -> Limits:
    """The limits an output is read back and validated under. Its size is not bounded: the
    bytes are already in memory, written here (a Factur-X outgrows its XML, a UBL its CII);
    the markup bounds still apply, as they did to the source."""
    if len(data) <= limits.max_bytes:
        return limits
    return dataclasses.replace(limits, max_bytes=len(data))


def _as_source_scope(
    selection: RuleSelection, document: Document, written: Document | None
) -> RuleSelection:
    """The selection for the output, its French scope aligned with the source's.

    The scope-aware default judges each document by its own terms; the output carries the
    seller and process terms, but not always a French CIUS identifier (BT-24), so the output of
    a French invoice could fall out of the French scope, or (a source without BT-40 left out of
    it on purpose) fall in. The French sets follow the source; XRechnung and Peppol follow
    what the output declares (their CIUS travels only where the target profile carries it).
    """
    from .rules import SCOPED_RULE_SETS, RuleSelection
    from .scope import scope_of

    french = {n for n in selection.scoped if SCOPED_RULE_SETS.get(n) == "french"}
    if written is None or not french or document.syntax not in ("cii", *_UBL_SYNTAXES):
        return selection  # (the input's own bytes are in the input's own scope)
    source_french = scope_of(document).french
    if scope_of(written).french == source_french:
        return selection
    if source_french:  # forced on the output: it is a French invoice
        return RuleSelection(selection, selection.explicit, selection.scoped - french,
                             selection.french, selection.artefact_root)
    return selection.narrowed(n for n in selection if n not in french)


def _checked_result(
    data: bytes,
    syntax: str,
    target_profile: str,
    dropped: tuple[str, ...],
    name: str,
    warnings: list[str],
    xml: bytes,
    to: str,
    rules: RuleSelection,
    *,
    origin: bytes | Document | None = None,
    source_rules: RuleSelection | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ConversionResult:
    """Validate the output; the result, or ConversionRejected naming the failing rules (and,
    given the `origin` document, which of them fail on it too, judged by `source_rules`)."""
    report = validate(data, rules, limits=_output_limits(limits, data))
    result = ConversionResult(
        data=data,
        syntax=syntax,
        profile=target_profile,
        report=dataclasses.replace(report, path=name),
        dropped=dropped,
        source=name,
        warnings=tuple(warnings),
        xml=xml,
    )
    if not report.ok:
        fatal = report.fatal
        terms = sorted({t for f in fatal for t in f.business_terms}, key=_term_sort_key)
        rules_fired = sorted({f.rule for f in fatal})
        detail = report.error or "; ".join(f"{f.rule}: {_clip(f.message)}" for f in fatal[:3])
        source_defects, conversion_defects = _blame(rules_fired, origin, source_rules or rules,
                                                    limits)
        raise ConversionRejected(
            f"the {to} output would be invalid ({len(fatal)} fatal finding(s): "
            f"{_blamed(rules_fired, source_defects, origin is not None)}"
            + (f"; business terms {', '.join(terms)}" if terms else "")
            + f"): {detail}"
            + _hints(to, conversion_defects),
            business_terms=terms,
            report=result.report,
            result=result,
            source=name,
            source_defects=source_defects,
            conversion_defects=conversion_defects,
        )
    return result


# Conversion defects no writer can avoid: a rule of the target syntax asks for what the source
# syntax's rules let the source leave out. (target, rule name prefix) -> what to do.
_CROSS_SYNTAX_HINTS: Final[dict[tuple[str, str], str]] = {
    ("ubl", "BR-FR-CO-10"): (
        "a party identifier without a scheme (CII ram:ID; BT-29, BT-46 or BT-60 with no -1) has "
        "no UBL form the French rules accept: give it its scheme in the source (a SIRET is "
        "ram:GlobalID schemeID=\"0009\", a SIREN \"0002\"), or check the output with "
        "--french-rules warning"
    ),
}


def _hints(to: str, conversion_defects: tuple[str, ...]) -> str:
    said = dict.fromkeys(
        hint for (target, prefix), hint in _CROSS_SYNTAX_HINTS.items()
        if target == to and any(r.startswith(prefix) for r in conversion_defects)
    )
    return "".join(f" (why: {hint})" for hint in said)


def _origin(document: Document, raw: bytes | None) -> bytes | Document | None:
    """The source to validate when telling source defects from conversion defects; None for
    ZUGFeRD 1.0, which the EN 16931 rules do not apply to (no comparison is possible)."""
    if document.syntax == "zugferd1":
        return None
    return raw if raw is not None else document


def _blame(
    fired: list[str], origin: bytes | Document | None, rules: RuleSelection,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(rules that fail on the source too, rules that fail on the output only)."""
    if origin is None:
        return (), tuple(fired)
    # Validating the source costs one more run, paid only by a refused conversion.
    source_report = validate(origin, rules, limits=limits)
    on_source = {rule_family(f.rule) for f in source_report.fatal}
    return (tuple(r for r in fired if rule_family(r) in on_source),
            tuple(r for r in fired if rule_family(r) not in on_source))


# The French rules are named per syntax and per case ('BR-FR-05_BT-22_AAB' in UBL,
# 'BR-FR-05_BT-22-1' in CII; 'BR-FR-32-ID' / 'BR-FR-32-GLOBALID'): one business rule each.
_FRENCH_RULE = re.compile(r"^BR-FR-(?:[A-Z]+-)?\d+")


def rule_family(rule: str) -> str:
    """One name per business rule across syntaxes: 'BR-FR-05' for 'BR-FR-05_BT-22_AAB' and
    'BR-FR-05_BT-22-1', 'BR-FR-CO-10' for 'BR-FR-CO-10_BT-29-1'; other rules are their name."""
    match = _FRENCH_RULE.match(rule)
    return match.group(0) if match else rule


def _blamed(fired: list[str], source_defects: tuple[str, ...], known: bool) -> str:
    shown = fired[:10]
    if not known:
        return ", ".join(shown)
    parts = []
    on_source = [r for r in shown if r in source_defects]
    on_output = [r for r in shown if r not in source_defects]
    if on_output:
        verb = "fails" if len(on_output) == 1 else "fail"
        parts.append(f"{', '.join(on_output)} {verb} on the output only: a conversion defect")
    if on_source:
        verb = "fails" if len(on_source) == 1 else "fail"
        parts.append(f"{', '.join(on_source)} {verb} on the source too: a source defect")
    return "; ".join(parts)


def _model_xml(invoice: Invoice, to: str, profile: str, own_profile: str, name: str,
               lossy: bool, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, tuple[str, ...]]:
    """The invoice written in the target syntax and profile, and the business terms dropped;
    refused (ConversionRejected) when terms would be dropped and not `lossy`."""
    try:
        xml, dropped = _convert_model(invoice, to, profile, own_profile, name, limits)
    except FacturflowError as exc:
        exc.source = exc.source or name
        raise
    if dropped and not lossy:
        raise ConversionRejected(
            f"converting to {to} ({profile}) would drop business terms "
            f"{', '.join(dropped)}; use lossy=True (--lossy) to convert anyway",
            business_terms=dropped,
            source=name,
        )
    return xml, dropped


def _convert_invoice(
    invoice: Invoice,
    to: str,
    profile: str | None,
    pdf: bytes | None,
    lossy: bool,
    lang: Language,
    rules: RuleSelection,
    timestamp: datetime | None,
    limits: Limits = DEFAULT_LIMITS,
) -> ConversionResult:
    """convert() of a model Invoice: write it, check it reads back whole, validate it."""
    from .detection import profile_from_spec_id

    name = f"<invoice {invoice.number}>"
    own_profile = profile_from_spec_id(invoice.specification_id)
    if profile is None:
        profile = own_profile if own_profile in SPECIFICATION_IDS else "en16931"
    elif profile not in SPECIFICATION_IDS:
        raise ConversionError(
            f"cannot convert to the {profile!r} profile (choose one of "
            f"{', '.join(SPECIFICATION_IDS)})", source=name,
        )
    xml, dropped = _model_xml(invoice, to, profile, own_profile, name, lossy, limits)
    warnings: list[str] = []
    if to == "facturx":
        data = _wrap(xml, pdf, pdf is not None, invoice, lang, timestamp, name, warnings, limits)
        syntax = "facturx"
    else:
        data = xml
        syntax = detect_bytes(xml, name="<output>", limits=_output_limits(limits, xml)).syntax
    return _checked_result(data, syntax, profile, dropped, name, warnings, xml, to, rules,
                           limits=limits)


def _wrap(
    xml: bytes,
    pdf: bytes | None,
    given: bool,
    invoice: Invoice | None,
    lang: Language,
    timestamp: datetime | None,
    name: str,
    warnings: list[str],
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """The Factur-X PDF: `pdf` (the caller's visual when `given`) or a rendered page."""
    if pdf is not None:
        with _blaming_the_visual(given, name):
            fonts = unembedded_fonts(pdf)
        if fonts:
            warnings.append(
                "the visual PDF uses fonts it does not embed (" + ", ".join(fonts[:5])
                + "): the result is not PDF/A-3 conformant; embed them or let facturflow "
                "render the page"
            )
    with _blaming_the_visual(given, name, keep=(ConversionError,)):
        return build_facturx(xml, pdf=pdf, invoice=invoice, lang=lang, timestamp=timestamp,
                             limits=_output_limits(limits, xml))


@contextmanager
def _blaming_the_visual(given: bool, name: str,
                        keep: tuple[type[FacturflowError], ...] = ()) -> Iterator[None]:
    """A FacturflowError inside is blamed on the caller's own visual PDF (pdf=, --pdf) when one
    was `given`, but for the kinds in `keep`; otherwise it is raised naming the input."""
    try:
        yield
    except FacturflowError as exc:
        if given and not isinstance(exc, keep):
            raise VisualPDFError(
                f"the visual PDF to wrap (pdf=, --pdf) cannot be used: {exc.message}",
                source=name,
            ) from None
        exc.source = exc.source or name
        raise


def _clip(message: str, limit: int = 160) -> str:
    # XSD messages spell namespaces out in full; keep the summary line readable.
    message = re.sub(r"\{[^}]*\}", "", " ".join(message.split()))
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _original_xml(document: Document, raw: bytes | None) -> bytes:
    """The CII exactly as the input carried it (the attachment's own bytes for a PDF)."""
    if document.pdf is not None and document.attachment_name is not None:
        for attachment in document.pdf.attachments:
            if attachment.name == document.attachment_name:
                return attachment.data
    if document.container == "xml" and raw is not None:
        return raw
    return document.xml


def _convert_model(
    invoice: Invoice, to: str, profile: str, source_profile: str, name: str,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[bytes, tuple[str, ...]]:
    """Write `invoice` in the target syntax and profile; return (xml, dropped terms)."""
    from .model.codelists import unchecked_codes

    # The invoice was read leniently (_read): copies made of it here (pruned, another BT-24,
    # canonical forms) must not re-check its codes and fail where the read did not.
    with unchecked_codes():
        return _convert_checked(invoice, to, profile, source_profile, name, limits)


def _convert_checked(
    invoice: Invoice, to: str, profile: str, source_profile: str, name: str,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[bytes, tuple[str, ...]]:
    pruned: set[str] = set()
    target = invoice
    if profile not in _EXTENDED_PROFILES:
        target = _prune_extensions(invoice, pruned)
    ignore: set[str] = set()
    canonical = SPECIFICATION_IDS.get(profile)
    # Factur-X's Schematron admits only its own BT-24 values in CII (a CIUS id such as the
    # French en16931-ctc-fr is refused), so CII gets the canonical id of its profile.
    needs_canonical = to != "ubl" and invoice.specification_id not in _CII_ACCEPTED.get(
        profile, (invoice.specification_id,)
    )
    if canonical and (profile != source_profile or needs_canonical):
        target = dataclasses.replace(target, specification_id=canonical)
        ignore.add("BT-24")
    if to == "facturx" and profile not in CONFORMANCE_LEVELS:
        raise ConversionError(f"{profile!r} is not a Factur-X profile")
    xml = _write(target, "ubl" if to == "ubl" else "cii")
    written = detect_bytes(xml, name="<output>", limits=_output_limits(limits, xml))
    if to == "facturx":
        facturx_profile(written)  # the written BT-24 must name a Factur-X profile
    try:
        back = _read(written)
    except FacturflowError as exc:
        # The input was fine; it is our output that cannot be read back: a refused conversion.
        raise ConversionRejected(
            f"the written {to} cannot be read back into the model: {exc.message}",
            source=name,
        ) from None
    lost = set(lost_terms(invoice, back, ignore=ignore)) | pruned
    return xml, tuple(sorted(lost, key=_term_sort_key))


__all__ = [
    "SPECIFICATION_IDS",
    "TARGETS",
    "ConversionRejected",
    "ConversionResult",
    "Target",
    "VisualPDFError",
    "convert",
    "lost_terms",
]
