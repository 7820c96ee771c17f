"""Invoice <-> plain dict keyed by business term ids, driven by the field metadata.

Shape: a group is a dict keyed by its terms' ids ("BT-27", "BG-5", ...); a repeated term or group
is a list; dates are ISO strings, decimals are strings (exact, scale kept), attachments are base64;
compound values (identifiers with a scheme, attachments) are small dicts of their field names.
Absent terms are left out, so the dict of a sparse invoice is small.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import types
import typing
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from .invoice import Invoice, Node


def to_dict(invoice: Invoice) -> dict[str, Any]:
    """The invoice as a JSON-ready dict keyed by BT/BG ids."""
    return _group_to_dict(invoice, None)


def from_dict(data: dict[str, Any]) -> Invoice:
    """Build an Invoice from to_dict() output; ValueError on a malformed dict."""
    result = _group_from_dict(Invoice, data, None, "Invoice")
    assert isinstance(result, Invoice)
    return result


def _key(f: dataclasses.Field[Any], context: str | None) -> str:
    ident = f.metadata.get("bt") or f.metadata.get("bg")
    if isinstance(ident, dict):
        return str(ident.get(context, f.name)) if context else f.name
    return str(ident) if ident else f.name


_VALUE_TYPES = {"Identifier", "ElectronicAddress", "ClassificationIdentifier", "BinaryObject"}


def _group_to_dict(node: Node, context: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    context = type(node).GROUP or context
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        if value is None or value == ():
            continue
        sub_context = f.metadata.get("bg") if isinstance(f.metadata.get("bg"), str) else None
        key = _key(f, context) if type(node).__name__ not in _VALUE_TYPES else f.name
        if isinstance(value, tuple):
            out[key] = [_value_to_json(v, sub_context) for v in value]
        else:
            out[key] = _value_to_json(value, sub_context)
    return out


def _value_to_json(value: Any, context: str | None) -> Any:
    if isinstance(value, Node):
        return _group_to_dict(value, context)
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot serialise {type(value).__name__}")


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


# Field hints unwrapped, per hint: the binding engine and from_dict ask for every field of every
# group they read (typing introspection at each call was ~6 % of reading an invoice).
_UNWRAPPED: dict[Any, tuple[Any, bool]] = {}


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(value type, is a tuple) of a field hint such as `X | None` or `tuple[X, ...]`."""
    try:
        return _UNWRAPPED[hint]
    except KeyError:
        unwrapped = _UNWRAPPED[hint] = _unwrap_hint(hint)
        return unwrapped
    except TypeError:  # an unhashable hint (none in the model): worked out each time
        return _unwrap_hint(hint)


def _unwrap_hint(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True
    return hint, False


def _group_from_dict(cls: type[Any], data: Any, context: str | None, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    context = getattr(cls, "GROUP", None) or context
    value_type = cls.__name__ in _VALUE_TYPES
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    known: set[str] = set()
    for f in dataclasses.fields(cls):
        key = f.name if value_type else _key(f, context)
        known.add(key)
        if key not in data:
            continue
        raw = data[key]
        inner, many = _unwrap(hints[f.name])
        sub_context = f.metadata.get("bg") if isinstance(f.metadata.get("bg"), str) else None
        label = f"{where}.{key}"
        if many:
            if not isinstance(raw, list):
                raise ValueError(f"{label}: expected a list")
            kwargs[f.name] = tuple(
                _value_from_json(inner, item, sub_context, f"{label}[{i}]")
                for i, item in enumerate(raw)
            )
        else:
            kwargs[f.name] = _value_from_json(inner, raw, sub_context, label)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _value_from_json(hint: Any, raw: Any, context: str | None, where: str) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _group_from_dict(hint, raw, context, where)
    if hint is str:
        if not isinstance(raw, str):
            raise ValueError(f"{where}: expected a string")
        return raw
    if hint is bool:
        if not isinstance(raw, bool):
            raise ValueError(f"{where}: expected a boolean")
        return raw
    if hint is Decimal:
        try:
            return Decimal(str(raw))
        except InvalidOperation:
            raise ValueError(f"{where}: {raw!r} is not a decimal number") from None
    if hint is date:
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise ValueError(f"{where}: {raw!r} is not an ISO date") from None
    if hint is bytes:
        try:
            return base64.b64decode(str(raw), validate=True)
        except binascii.Error:
            raise ValueError(f"{where}: not valid base64") from None
    raise TypeError(f"{where}: unsupported type {hint!r}")
