"""Property tests through the builder: every built invoice passes XSD, EN 16931 and the Factur-X
profile rules (and BR-FR for French parties) in CII, UBL and Factur-X, and reads back equal.

`facturflow.convert(invoice, to=...)` validates its output and raises on any fatal finding, so
a conversion that returns is a valid one; reading its output back must give the same invoice.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

import facturflow
from facturflow.model import Invoice

from .build_strategies import built_invoices

# Validation costs a few ms per invoice once the stylesheets are compiled (about 1 s each, once
# per process), a rendered Factur-X page some more: modest example counts keep the suite fast.
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PDF_SETTINGS = settings(SETTINGS, max_examples=12)
# The rules for an invoice between non-French parties (BR-FR is for the French network).
CORE_RULES = "xsd,en16931,facturx"


def _round_trip(invoice: Invoice, to: str, rules: str | None = None) -> None:
    result = facturflow.convert(invoice, to=to, rules=rules)  # type: ignore[arg-type]
    assert result.report.ok and not result.dropped
    assert facturflow.read(result.data) == invoice


@SETTINGS
@given(built_invoices())
def test_built_french_invoices_are_valid_cii_and_read_back_equal(invoice: Invoice) -> None:
    _round_trip(invoice, "cii")


@SETTINGS
@given(built_invoices())
def test_built_french_invoices_are_valid_ubl_and_read_back_equal(invoice: Invoice) -> None:
    _round_trip(invoice, "ubl")


@PDF_SETTINGS
@given(built_invoices())
def test_built_french_invoices_are_valid_factur_x_and_read_back_equal(invoice: Invoice) -> None:
    _round_trip(invoice, "facturx")


@PDF_SETTINGS
@given(built_invoices(french=False))
def test_built_non_french_invoices_pass_the_core_rules_in_cii(invoice: Invoice) -> None:
    _round_trip(invoice, "cii", CORE_RULES)


@PDF_SETTINGS
@given(built_invoices(french=False))
def test_built_non_french_invoices_pass_the_core_rules_in_ubl(invoice: Invoice) -> None:
    _round_trip(invoice, "ubl", CORE_RULES)
