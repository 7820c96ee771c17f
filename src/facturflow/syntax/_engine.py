"""The binding engine: one declaration per business term drives both reading and writing.

A syntax module declares a table of `Bind` rows (business term id -> path, with children for a
business group). Paths are small XPath subsets, relative to the group's element:

    step('/'step)*      step = prefix:Name ('[' predicate ']')* | '@attr' (last only) | '.'
    predicate           = relpath "='" value "'"   (written as a child or attribute)
                        | relpath                  (an existence test; written as an empty child)

Reading evaluates the path as XPath (or `read`, a read-only XPath override). Writing walks the
same path: intermediate steps are found or created (creating satisfies their predicates), the
last step is created anew for each value, except that an empty element made by a predicate is
filled rather than duplicated. Element order is then fixed from the XSD (see _xsdorder.py), so
tables need not follow schema order.

Other row options: `fill` (fixed values the syntax requires with the term: beside a term, inside
a group's element; never written over a value), `null` (a placeholder that reads as absent, e.g.
UBL's order id 'NA'), `codes` (document code <-> model code), `parts` (where the pieces of an
identifier or attachment go) and `custom` (a reader/writer pair for the few terms that are not
one path each).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from lxml import etree

from ..model.errors import ModelError
from ..model.invoice import (
    BinaryObject,
    ClassificationIdentifier,
    ElectronicAddress,
    Identifier,
    Invoice,
    Node,
    business_term,
)
from ..model.serialize import _hints, _unwrap
from ..model.terms import TEXT_TERMS, term_label

Tokens = dict[str, str]
CustomRead = Callable[[etree._Element, Tokens], Any]
CustomWrite = Callable[[etree._Element, Any, Tokens], None]
_T = TypeVar("_T")

VALUE_TYPES: dict[type[Any], tuple[tuple[str, str], ...]] = {
    Identifier: (("value", "."), ("scheme", "@schemeID")),
    ElectronicAddress: (("value", "."), ("scheme", "@schemeID")),
    ClassificationIdentifier: (("value", "."), ("scheme", "@listID"),
                               ("version", "@listVersionID")),
    BinaryObject: (("content", "."), ("mime_code", "@mimeCode"), ("filename", "@filename")),
}


class BindingError(ValueError):
    """A document value cannot be read into the model (bad date, number or code)."""

    def __init__(self, business_term: str, message: str) -> None:
        super().__init__(f"{term_label(business_term)}: {message}")
        self.business_term = business_term


def first_text(
    node: etree._Element, path: str, namespaces: dict[str, str], *, verbatim: bool = False
) -> str | None:
    """The first non-blank text (element or attribute) an XPath finds, stripped (as stated
    when `verbatim`: the Text terms of facturflow.model.terms.TEXT_TERMS), or None."""
    found = node.xpath(path, namespaces=namespaces)
    assert isinstance(found, list)
    for item in found:
        if isinstance(item, str):
            value = str(item)
        elif isinstance(item, etree._Element):
            value = item.text or ""
        else:
            continue
        if value.strip():
            return value if verbatim else value.strip()
    return None


def parse_decimal(term: str, text: str) -> Decimal:
    """The number a business term's text states; BindingError when it is not a finite number
    (custom readers use it too, so that every amount is held to the same rule)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise BindingError(term, f"{text!r} is not a number") from None
    if not number.is_finite():
        raise BindingError(term, f"{text!r} is not a finite number")
    return number


def build_invoice(kwargs: dict[str, Any]) -> Invoice:
    """The Invoice from the terms a binding read; model refusals become BindingErrors."""
    return _built(Invoice, kwargs, "BT-1..BT-5", "a mandatory term is missing")


def _built(cls: Callable[..., _T], kwargs: dict[str, Any], term: str, missing: str) -> _T:
    """cls(**kwargs), the model's refusals as BindingErrors: one it names a term in, or a
    missing argument (then `term`, `missing`: what Python says)."""
    try:
        return cls(**kwargs)
    except ModelError as exc:
        raise BindingError(exc.business_term, exc.detail) from None
    except TypeError as exc:
        raise BindingError(term, f"{missing}: {exc}") from None


@dataclass(frozen=True)
class Bind:
    """One business term (or group) of a syntax binding."""

    term: str
    path: str
    children: tuple[Bind, ...] = ()
    parts: tuple[tuple[str, str], ...] = ()
    read: str | None = None
    fill: tuple[tuple[str, str], ...] = ()
    null: str | None = None
    codes: tuple[tuple[str, str], ...] = ()
    date_ns: str | None = None
    custom: tuple[CustomRead, CustomWrite] | None = None


def B(term: str, path: str, **options: Any) -> Bind:
    """A business term row."""
    return Bind(term, path, **options)


def G(term: str, path: str, *children: Bind, **options: Any) -> Bind:
    """A business group row with its members."""
    return Bind(term, path, tuple(children), **options)


def model_rows(model: type[Any], group: str, paths: dict[str, str]) -> tuple[Bind, ...]:
    """Term rows of the fields of a model class shared by several groups (field name → path,
    in document order), each with the business term id the model gives it in `group`."""
    return tuple(B(business_term(model, name, group), path) for name, path in paths.items())


# -- field lookup ----------------------------------------------------------------------------

_FIELDS: dict[tuple[type[Any], str | None], dict[str, dataclasses.Field[Any]]] = {}


def _fields_by_term(cls: type[Any], context: str | None) -> dict[str, dataclasses.Field[Any]]:
    key = (cls, context)
    if key not in _FIELDS:
        table: dict[str, dataclasses.Field[Any]] = {}
        for f in dataclasses.fields(cls):
            ident = f.metadata.get("bt") or f.metadata.get("bg")
            if isinstance(ident, dict):
                ident = ident.get(context) if context else None
            if ident:
                table[str(ident)] = f
        _FIELDS[key] = table
    return _FIELDS[key]


def _field(cls: type[Any], context: str | None, term: str) -> dataclasses.Field[Any]:
    try:
        return _fields_by_term(cls, context)[term]
    except KeyError:
        raise KeyError(f"binding names {term}, which {cls.__name__} ({context}) lacks") from None


# What reading a group needs of each row, worked out once per (rows, class, context) rather than
# at every group of every invoice: the field's name, whether it repeats, its value type, the path
# to read and the sub-group's context. Keyed by the rows' identity; the entry holds the rows, so
# the identity cannot be reused while it is cached.
_Plan = tuple[tuple[Bind, str, bool, Any, str, str | None], ...]
_PLANS: dict[tuple[int, type[Any], str | None], tuple[Iterable[Bind], _Plan]] = {}


def _reading_plan(cls: type[Any], binds: Iterable[Bind], context: str | None) -> _Plan:
    key = (id(binds), cls, context)
    cached = _PLANS.get(key)
    if cached is not None and cached[0] is binds:
        return cached[1]
    hints = _hints(cls)
    plan = []
    for bind in binds:
        f = _field(cls, context, bind.term)
        bg = f.metadata.get("bg")
        inner = None if bind.custom else _unwrap(hints[f.name])[0]
        plan.append((bind, f.name, bool(f.metadata.get("many")), inner,
                     bind.read or bind.path, bg if isinstance(bg, str) else None))
    result = tuple(plan)
    if isinstance(binds, tuple):  # a list could change in place: worked out each time
        _PLANS[key] = (binds, result)
    return result


# -- the engine -------------------------------------------------------------------------------


class Engine:
    """Reads and writes model groups through Bind tables, for one syntax dialect."""

    def __init__(self, namespaces: dict[str, str], dialect: str) -> None:
        self.ns = namespaces
        self.dialect = dialect  # "cii" or "ubl": decides date and amount encodings
        # Reading paths compiled once (per thread: a compiled XPath is not shared across
        # threads): lxml compiles a string path at every call, which was most of the time
        # spent reading an invoice.
        self._local = threading.local()

    def _xpath(self, node: Any, path: str) -> list[Any]:
        cache: dict[str, etree.XPath] | None = getattr(self._local, "compiled", None)
        if cache is None:
            cache = self._local.compiled = {}
        compiled = cache.get(path)
        if compiled is None:
            compiled = cache[path] = etree.XPath(path, namespaces=self.ns)
        found = compiled(node)
        assert isinstance(found, list)
        return found

    # reading ---------------------------------------------------------------------------------

    def read_group(
        self, element: etree._Element, cls: type[Any], binds: Iterable[Bind], context: str | None,
        tokens: Tokens,
    ) -> dict[str, Any]:
        """The constructor arguments of `cls` found under `element`."""
        context = getattr(cls, "GROUP", None) or context
        kwargs: dict[str, Any] = {}
        for bind, name, many, inner, path, sub_context in _reading_plan(cls, binds, context):
            if bind.custom:
                value = bind.custom[0](element, tokens)
                if value is not None and value != ():
                    kwargs[name] = value
                continue
            xpath = _for_reading(path.format_map(tokens) if "{" in path else path)
            found = self._xpath(element, xpath)
            values = []
            for node in found:
                value = self._read_value(node, inner, bind, sub_context, tokens)
                if value is not None:
                    values.append(value)
                    if not many:
                        break
            if values:
                kwargs[name] = tuple(values) if many else values[0]
        return kwargs

    def _read_value(
        self, node: Any, hint: Any, bind: Bind, context: str | None, tokens: Tokens
    ) -> Any:
        if isinstance(hint, type) and hint in VALUE_TYPES:
            return self._read_compound(node, hint, bind)
        if isinstance(hint, type) and issubclass(hint, Node):
            kwargs = self.read_group(node, hint, bind.children, context, tokens)
            if not kwargs:
                return None
            return _built(hint, kwargs, bind.term, "incomplete group")
        return self._scalar(node, hint, bind)

    def _read_compound(self, node: Any, hint: type[Any], bind: Bind) -> Any:
        kwargs: dict[str, Any] = {}
        for name, rel in bind.parts or VALUE_TYPES[hint]:
            if rel == ".":
                target: Any = node
            else:
                found = self._xpath(node, rel)
                if not found:
                    continue
                target = found[0]
            text = _text(target)
            if text is None:
                continue
            if name == "content":
                try:
                    kwargs[name] = base64.b64decode("".join(text.split()), validate=True)
                except binascii.Error:
                    raise BindingError(bind.term, "attachment is not valid base64") from None
            else:
                kwargs[name] = text
        first = (bind.parts or VALUE_TYPES[hint])[0][0]
        if first not in kwargs:
            return None
        if hint is BinaryObject:
            kwargs.setdefault("filename", "")
        return _built(hint, kwargs, bind.term, "incomplete value")

    def _scalar(self, node: Any, hint: Any, bind: Bind) -> Any:
        if hint is date:
            return self._read_date(node, bind)
        text = _text(node)
        if text is None or text == bind.null:
            return None
        if bind.term in TEXT_TERMS and not bind.codes:
            # Text is kept as stated, line breaks included (a blank one still counts as absent).
            return _raw_text(node)
        for doc_code, model_code in bind.codes:
            if text == doc_code:
                text = model_code
                break
        if hint is Decimal:
            return parse_decimal(bind.term, text)
        return text

    def _read_date(self, node: Any, bind: Bind) -> date | None:
        if self.dialect == "cii" and isinstance(node, etree._Element):
            inner = node.find("{*}DateTimeString")
            if inner is None:
                return None
            node = inner
        text = _text(node)
        if text is None:
            return None
        try:
            if self.dialect == "cii":
                if not re.fullmatch(r"\d{8}", text):
                    raise ValueError
                return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
            return date.fromisoformat(text[:10])
        except ValueError:
            raise BindingError(bind.term, f"{text!r} is not a date this binding reads") from None

    # writing ---------------------------------------------------------------------------------

    def write_group(
        self, element: etree._Element, node: Node, binds: Iterable[Bind], context: str | None,
        tokens: Tokens,
    ) -> None:
        """Write the terms of `node` under `element`."""
        cls = type(node)
        context = getattr(cls, "GROUP", None) or context
        hints = _hints(cls)
        for bind in binds:
            f = _field(cls, context, bind.term)
            value = getattr(node, f.name)
            if value is None or value == ():
                continue
            if bind.custom:
                bind.custom[1](element, value, tokens)
                continue
            inner, many = _unwrap(hints[f.name])
            sub_context = f.metadata.get("bg") if isinstance(f.metadata.get("bg"), str) else None
            for item in value if many else (value,):
                self._write_value(element, bind, inner, item, many, sub_context, tokens)

    def _write_value(
        self, element: etree._Element, bind: Bind, hint: Any, value: Any, many: bool,
        context: str | None, tokens: Tokens,
    ) -> None:
        path = bind.path.format_map(tokens)
        if isinstance(hint, type) and issubclass(hint, Node) and hint not in VALUE_TYPES:
            target = self._walk(element, path, reuse_last=not many)
            assert isinstance(target, etree._Element)
            self._fill(target, bind, tokens)  # a group's fills are inside its element
            self.write_group(target, value, bind.children, context, tokens)
            return
        self._fill(element, bind, tokens)  # a term's fills are beside it, in its group
        if isinstance(hint, type) and hint in VALUE_TYPES:
            target = self._walk(element, path, reuse_last=False)
            for name, rel in bind.parts or VALUE_TYPES[hint]:
                part = getattr(value, name)
                if part is None:
                    continue
                if name == "content":
                    part = base64.b64encode(part).decode("ascii")
                where = target if rel == "." else self._walk(target, rel, reuse_last=True)
                self._set(where, part)
            return
        target = self._walk(element, path, reuse_last=False)
        if isinstance(value, date):
            self._write_date(target, value, bind)
            return
        text = format(value, "f") if isinstance(value, Decimal) else str(value)
        for doc_code, model_code in bind.codes:
            if text == model_code:
                text = doc_code
                break
        self._set(target, text)
        if isinstance(value, Decimal) and self.dialect == "ubl" and isinstance(
            target, etree._Element
        ) and self._is_amount(bind):
            target.set("currencyID", tokens["tax_currency" if bind.term == "BT-111"
                                             else "currency"])

    def _fill(self, element: etree._Element, bind: Bind, tokens: Tokens) -> None:
        """Write the fixed values a syntax requires with this term (never over a value)."""
        for rel, fixed in bind.fill:
            where = self._walk(element, rel.format_map(tokens), reuse_last=True)
            current = where[0].get(where[1]) if isinstance(where, tuple) else where
            if _text(current) is None:
                self._set(where, fixed.format_map(tokens))

    @staticmethod
    def _is_amount(bind: Bind) -> bool:
        return bind.term in AMOUNT_TERMS

    def _write_date(self, target: Any, value: date, bind: Bind) -> None:
        if self.dialect == "cii":
            ns = self.ns[bind.date_ns or "udt"]
            inner = etree.SubElement(target, f"{{{ns}}}DateTimeString", format="102")
            inner.text = value.strftime("%Y%m%d")
        else:
            self._set(target, value.isoformat())

    # path walking ----------------------------------------------------------------------------

    def _walk(self, element: etree._Element, path: str, *, reuse_last: bool) -> Any:
        """Find or create the node at `path`; return an element or an (element, attr) pair."""
        steps = _split(path, "/")
        current = element
        for index, step in enumerate(steps):
            last = index == len(steps) - 1
            if step == ".":
                continue
            if step == "..":
                parent = current.getparent()
                assert parent is not None
                current = parent
                continue
            if step.startswith("@"):
                return (current, step[1:])
            matches = current.xpath(step, namespaces=self.ns)
            assert isinstance(matches, list)
            elements = [m for m in matches if isinstance(m, etree._Element)]
            if not last or reuse_last:
                if elements:
                    current = elements[0]
                    continue
            else:
                empty = [m for m in elements if _is_empty(m)]
                if empty:
                    current = empty[0]
                    continue
            current = self._create(current, step)
        return current

    def _create(self, parent: etree._Element, step: str) -> etree._Element:
        name, predicates = _parse_step(step)
        prefix, local = name.split(":")
        child = etree.SubElement(parent, f"{{{self.ns[prefix]}}}{local}")
        for predicate in predicates:
            if "(" in predicate or "!=" in predicate:
                continue  # a read-only condition
            if "=" in predicate:
                rel, _, quoted = predicate.partition("=")
                self._set(self._walk(child, rel.strip(), reuse_last=True), quoted.strip()[1:-1])
            else:
                self._walk(child, predicate.strip(), reuse_last=True)
        return child

    @staticmethod
    def _set(target: Any, text: str) -> None:
        if isinstance(target, tuple):
            target[0].set(target[1], text)
        else:
            target.text = text


# Amount terms: UBL writes them with a currencyID (BT-111 in the VAT accounting currency).
AMOUNT_TERMS = frozenset(
    {f"BT-{n}" for n in (*range(92, 94), *range(99, 101), *range(106, 118), 131,
                         136, 137, 141, 142, 146, 147, 148)}
    | {"EXT-FR-FE-181"}
)


_SIMPLE_PREDICATE = re.compile(r"^([\w:@/.]+)='([^']*)'$")


@functools.cache
def _for_reading(path: str) -> str:
    """The path with its fixed-value predicates compared whitespace-insensitively
    (`cbc:ID='VAT'` also matches `<cbc:ID> VAT</cbc:ID>`, which schemas accept)."""
    if "[" not in path:
        return path
    if "|" in path:
        return " | ".join(_for_reading(part.strip()) for part in _split(path, "|"))
    steps = []
    for step in _split(path, "/"):
        name, predicates = _parse_step(step)
        rewritten = []
        for predicate in predicates:
            match = _SIMPLE_PREDICATE.match(predicate.strip())
            rewritten.append(
                f"normalize-space({match.group(1)})='{match.group(2)}'" if match else predicate
            )
        steps.append(name + "".join(f"[{p}]" for p in rewritten))
    return "/".join(steps)


def _text(node: Any) -> str | None:
    if isinstance(node, str):
        text = str(node)
    elif isinstance(node, etree._Element):
        text = node.text or ""
    else:
        return None
    text = text.strip()
    return text or None


def _raw_text(node: Any) -> str:
    return str(node) if isinstance(node, str) else (node.text or "")


def _is_empty(element: Any) -> bool:
    return isinstance(element, etree._Element) and not (element.text or "").strip() and not len(
        element
    )


def _split(path: str, sep: str) -> list[str]:
    """Split on `sep` outside brackets and quotes."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for char in path:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "[":
            depth += 1
        elif not quoted and char == "]":
            depth -= 1
        if char == sep and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_step(step: str) -> tuple[str, list[str]]:
    name, bracket, rest = step.partition("[")
    predicates: list[str] = []
    if bracket:
        depth = 0
        quoted = False
        current: list[str] = []
        for char in "[" + rest:
            if char == "'":
                quoted = not quoted
            if not quoted and char == "[":
                depth += 1
                if depth == 1:
                    continue
            if not quoted and char == "]":
                depth -= 1
                if depth == 0:
                    predicates.append("".join(current))
                    current = []
                    continue
            current.append(char)
    return name, predicates
