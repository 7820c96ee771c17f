"""The model's one error: a value that is not what its business term holds."""

from __future__ import annotations

from ..errors import FacturflowError
from .terms import term_label


class ModelError(FacturflowError, TypeError, ValueError):
    """A model value has the wrong type, precision or code for its business term.

    It is both a TypeError (a float where a Decimal is expected, a str where a date is) and a
    ValueError (a code outside its list, an amount with too many decimals), so that callers may
    catch either; `business_term` names the term ('BT-2', or 'Class.field' for a class shared by
    several groups).
    """

    def __init__(self, business_term: str, message: str) -> None:
        super().__init__(f"{term_label(business_term)}: {message}")
        self.business_term = business_term
        self.detail = message  # the message without the term's label
