"""The guards of the stylesheet rewrites (facturflow.validation.derive), on small stylesheets.

The equivalence on the official files is proved by test_derived_equivalence.py; these tests pin
what the rewrites accept and refuse, and that an accepted rewrite gives the same SVRL.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from facturflow.validation import derive as D

_SKELETON = """<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:svrl="http://purl.oclc.org/dsdl/svrl" xmlns:p="urn:p" version="2.0">
  <xsl:template match="text()" priority="-1"/>
  <xsl:template match="/">
    <svrl:schematron-output>
      <xsl:apply-templates/>
      <svrl:active-pattern/>
      <xsl:apply-templates select="/" mode="M1"/>
      <xsl:apply-templates/>
      <svrl:active-pattern/>
      <xsl:apply-templates select="/" mode="M2"/>
    </svrl:schematron-output>
  </xsl:template>
  <xsl:template match="//p:a[@k = 'x|y']" priority="1001" mode="M1">
    <svrl:fired-rule context="a"/>
    <svrl:failed-assert location="{name()}-{@k}"/>
    <xsl:apply-templates select="@*|*" mode="M1"/>
  </xsl:template>
  <xsl:template match="p:b/p:a | @k" priority="1000" mode="M1">
    <svrl:fired-rule context="{name()}"/>
    <xsl:apply-templates select="@*|*" mode="M1"/>
  </xsl:template>
  <xsl:template match="text()" priority="-1" mode="M1"/>
  <xsl:template match="@*|node()" priority="-2" mode="M1">
    <xsl:apply-templates select="@*|*" mode="M1"/>
  </xsl:template>
  <xsl:template match="p:b" priority="1000" mode="M2">
    <svrl:fired-rule context="{name()}-{MARK}"/>
    <xsl:apply-templates select="*" mode="M2"/>
  </xsl:template>
  <xsl:template match="text()" priority="-1" mode="M2"/>
  <xsl:template match="@*|node()" priority="-2" mode="M2">
    <xsl:apply-templates select="*" mode="M2"/>
  </xsl:template>
</xsl:stylesheet>
"""
_DOC = """<p:b xmlns:p="urn:p" k="root"><p:a k="x|y"/><p:b><p:a k="z">t</p:a><p:a/></p:b>
<!-- c --><p:c k="1"><p:a k="x|y"><p:b k="2"/></p:a></p:c><p:b/></p:b>"""


def _derive(text: str, tmp_path: Path) -> D.Derived:
    path = tmp_path / "s.xslt"
    path.write_text(text, encoding="utf-8")
    return D.derive(path)


def _svrl(stylesheet: bytes, tmp_path: Path) -> str:
    from facturflow.validation import schematron

    engine: Any = schematron._get_engine()
    builder = engine.processor.new_document_builder()
    builder.set_base_uri((tmp_path / "s.xslt").as_uri())
    node = builder.parse_xml(xml_text=stylesheet.decode("utf-8"))
    executable = engine.xslt.compile_stylesheet(stylesheet_node=node)
    return str(executable.transform_to_string(xdm_node=engine.processor.parse_xml(xml_text=_DOC)))


@pytest.mark.parametrize(
    ("pattern", "tests"),
    [
        ("//ram:X[@a='1' or x/y]", [(False, "ram", "X")]),
        ("(a|b)/c[1][d]", [(False, None, "c")]),
        ("a | //@p:b", [(False, None, "a"), (True, "p", "b")]),
        ("x[. = '|/]'] | *", [(False, None, "x"), (False, None, "*")]),
        ("/r/@*", [(True, None, "*")]),
        ("(a|b)", None),
        ("a/text()", None),
        ("a/child::b", None),
        ("p:*", None),
        ("a union b", None),
        ("a[", None),
    ],
)
def test_last_step_tests(pattern: str, tests: list[tuple[bool, str | None, str]] | None) -> None:
    assert D._last_step_tests(pattern) == tests


def test_rule_select_rewrites_and_keeps_the_output(tmp_path: Path) -> None:
    text = _SKELETON.replace("{MARK}", "m")
    derived = _derive(text, tmp_path)
    assert derived.rewrites == ("no-text-walk", "rule-select", "bare-fired-rule")
    root = etree.fromstring(derived.text)
    selects = [a.get("select") for a in root.iter(f"{D._X}apply-templates") if a.get("mode")]
    assert selects == ["//p:a | //@k", "//p:b"]
    official = _svrl(text.encode("utf-8"), tmp_path)
    # 2 + 2 elements and 6 attributes in M1, 4 elements in M2: nesting and attributes exercised
    assert official.count("fired-rule") == 14
    got = _svrl(derived.text, tmp_path)
    assert got != official  # the constant fired-rule context is gone (bare-fired-rule) ...
    assert '<svrl:fired-rule/>' in got and '<svrl:fired-rule context="p:b-m"/>' in got
    assert _bare(got) == _bare(official)  # ... and nothing else changed


def _bare(svrl: str, *also: str) -> bytes:
    root = etree.fromstring(svrl.encode("utf-8"))
    for name in ("fired-rule", *also):
        for element in root.iter(f"{{http://purl.oclc.org/dsdl/svrl}}{name}"):
            element.attrib.clear()
            for child in list(element):
                element.remove(child)
            element.text = None
    return etree.tostring(root)


@pytest.mark.parametrize(
    "change",
    [
        ("{MARK}", "{position()}"),  # the focus of the walk would leak
        ("{MARK}", "{last()}"),
        ('<xsl:apply-templates select="*" mode="M2"/>\n  </xsl:template>\n  <xsl:template '
         'match="text()" priority="-1" mode="M2"/>',
         '<xsl:apply-templates select="*" mode="M2"/>\n  <xsl:next-match/></xsl:template>\n'
         '  <xsl:template match="text()" priority="-1" mode="M2"/>'),
        ('match="p:b" priority="1000" mode="M2"', 'match="p:b/text()" priority="1000" mode="M2"'),
        ('match="p:b" priority="1000" mode="M2"', 'match="(p:b|p:a)" priority="1000" mode="M2"'),
        ('match="p:b" priority="1000" mode="M2"', 'match="@k" priority="1000" mode="M2"'),
        ('<xsl:template match="@*|node()" priority="-2" mode="M2">\n    <xsl:apply-templates '
         'select="*" mode="M2"/>\n  </xsl:template>', ""),  # no catch-all template
        ("</svrl:schematron-output>",
         '<xsl:apply-templates select="//p:c" mode="M2"/></svrl:schematron-output>'),
        ('<svrl:fired-rule context="{name()}-{MARK}"/>',
         '<svrl:fired-rule context="{name()}"/><xsl:call-template name="t"/>'),
    ],
)
def test_rule_select_refuses_a_mode_it_cannot_prove(change: tuple[str, str],
                                                    tmp_path: Path) -> None:
    assert change[0] in _SKELETON
    text = _SKELETON.replace(change[0], change[1]).replace("{MARK}", "m")
    root = etree.fromstring(_derive(text, tmp_path).text)
    starts: dict[str | None, str | None] = {}
    for a in root.iter(f"{D._X}apply-templates"):
        if next(a.iterancestors(f"{D._X}template")).get("match") == "/":
            starts.setdefault(a.get("mode"), a.get("select"))
    assert starts["M2"] == "/", "M2 must keep its walk"
    assert starts["M1"] == "//p:a | //@k"  # the other mode is still rewritten


def test_rule_select_refuses_a_whole_stylesheet_with_imports(tmp_path: Path) -> None:
    text = _SKELETON.replace("{MARK}", "m").replace(
        'version="2.0">', 'version="2.0">\n  <xsl:import href="other.xsl"/>')
    tree = etree.ElementTree(etree.fromstring(text.encode("utf-8")))
    assert not D._select_rule_nodes(tree)


def test_rule_select_visits_every_element_past_a_few_names() -> None:
    few: list[tuple[bool, str | None, str]] = [(False, "p", f"n{i}") for i in range(4)]
    few.append((True, None, "k"))
    assert D._MAX_NAMED == 4
    assert D._union(few) == "//p:n0 | //p:n1 | //p:n2 | //p:n3 | //@k"
    many: list[tuple[bool, str | None, str]] = [(False, "p", f"n{i}") for i in range(5)]
    assert D._union([*many, (False, "p", "n0")]) == "//*"
    assert D._union([]) == "()"


def test_bare_fired_rule_keeps_attribute_value_templates_and_content(tmp_path: Path) -> None:
    text = _SKELETON.replace("{MARK}", "m").replace(
        '<svrl:fired-rule context="a"/>', '<svrl:fired-rule context="a"><x/></svrl:fired-rule>')
    root = etree.fromstring(_derive(text, tmp_path).text)
    kept = [dict(e.attrib) for e in root.iter("{http://purl.oclc.org/dsdl/svrl}fired-rule")]
    assert kept == [{"context": "a"}, {"context": "{name()}"}, {"context": "{name()}-m"}]


_ACTIVE = """<svrl:active-pattern>
        <xsl:attribute name="document"><xsl:value-of select="document-uri(/)"/></xsl:attribute>
        <xsl:attribute name="id">P1</xsl:attribute>
        <xsl:attribute name="name"><xsl:text>Pattern one</xsl:text></xsl:attribute>
      </svrl:active-pattern>"""


@pytest.mark.parametrize(
    ("content", "emptied"),
    [
        (_ACTIVE, True),
        (_ACTIVE.replace("document-uri(/)", "base-uri(/)"), False),
        (_ACTIVE.replace('name="id">P1', 'name="{local-name(/*)}">P1'), False),
        (_ACTIVE.replace("<svrl:active-pattern>", '<svrl:active-pattern id="{name(/*)}">'),
         False),
        (_ACTIVE.replace("</xsl:attribute>\n      </svrl", "</xsl:attribute>text</svrl"), False),
        (_ACTIVE.replace("<xsl:text>Pattern one</xsl:text>", '<xsl:sequence select="1"/>'),
         False),
    ],
)
def test_bare_active_pattern(content: str, emptied: bool, tmp_path: Path) -> None:
    assert content != _ACTIVE or emptied
    text = _SKELETON.replace("{MARK}", "m").replace("<svrl:active-pattern/>", content, 1)
    derived = _derive(text, tmp_path)
    assert ("bare-active-pattern" in derived.rewrites) == emptied
    root = etree.fromstring(derived.text)
    first = next(root.iter("{http://purl.oclc.org/dsdl/svrl}active-pattern"))
    assert (len(first) == 0 and not first.attrib) == emptied
    official, got = _svrl(text.encode("utf-8"), tmp_path), _svrl(derived.text, tmp_path)
    if emptied:
        assert 'id="P1" name="Pattern one"' in official
        assert got.count("<svrl:active-pattern/>") == 2
    assert _bare(got, "active-pattern") == _bare(official, "active-pattern")


# --- path-dispatch ---------------------------------------------------------------------------

_PATHS = """<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:svrl="http://purl.oclc.org/dsdl/svrl" xmlns:p="urn:p" version="2.0">
  <xsl:template match="text()" priority="-1"/>
  <xsl:template match="/">
    <svrl:schematron-output>
      <svrl:active-pattern/>
      <xsl:apply-templates select="/" mode="M1"/>
    </svrl:schematron-output>
  </xsl:template>
  {RULES}
  <xsl:template match="text()" priority="-1" mode="M1"/>
  <xsl:template match="@*|node()" priority="-2" mode="M1">
    <xsl:apply-templates select="*" mode="M1"/>
  </xsl:template>
</xsl:stylesheet>
"""
_RULE = """<xsl:template match="{match}" priority="{priority}" mode="M1">
    <svrl:fired-rule context="{tag}"/>
    <xsl:if test="@k"><svrl:successful-report location="{tag}:{{@k}}"/></xsl:if>
    <xsl:apply-templates select="*" mode="M1"/>
  </xsl:template>"""
_PATH_RULES = [
    ("/p:r", 1010, "r"),
    ("/p:r/p:a[@k = '1']", 1009, "a1"),  # beats the next one on a k=1 element
    ("/p:r/p:a", 1008, "a"),
    ("/p:r/p:a[@k = '2']/p:b", 1007, "b-under-a2"),  # a predicate on an ancestor step
    ("/p:r/p:a/p:b[@k]", 1006, "b-with-k"),
    ("/p:r/p:x/p:y/p:z", 1005, "z"),  # nothing fires on x or y: the descent goes through
    ("/p:r/p:a/p:b/p:c[../@k = '3' or not(@k)]", 1004, "c"),
]
_PATH_DOC = """<p:r xmlns:p="urn:p"><p:a k="1"><p:b k="b1"><p:c/><p:c k="c"/></p:b></p:a>
<p:a k="2"><p:b/><p:b k="b2"/></p:a><p:a><p:b k="3"><p:c/></p:b><p:u><p:a/></p:u></p:a>
<p:x><p:y><p:z k="z1"/><p:z/></p:y><p:z/></p:x><p:u><p:v><p:a k="deep"/></p:v></p:u><p:a/></p:r>"""


def _paths_stylesheet(rules: list[tuple[str, int, str]]) -> str:
    body = "\n  ".join(_RULE.format(match=m, priority=p, tag=t) for m, p, t in rules)
    return _PATHS.replace("{RULES}", body)


def _svrl_of(stylesheet: bytes, document: str, tmp_path: Path) -> str:
    from facturflow.validation import schematron

    engine: Any = schematron._get_engine()
    builder = engine.processor.new_document_builder()
    builder.set_base_uri((tmp_path / "s.xslt").as_uri())
    node = builder.parse_xml(xml_text=stylesheet.decode("utf-8"))
    executable = engine.xslt.compile_stylesheet(stylesheet_node=node)
    node = engine.processor.parse_xml(xml_text=document)
    return str(executable.transform_to_string(xdm_node=node))


@pytest.mark.parametrize(
    ("pattern", "names", "last", "plain"),
    [
        ("/p:a/p:b", ["a", "b"], "p:b", True),
        ("/p:a/p:b[@k]", ["a", "b"], "p:b[@k]", True),
        ("/p:a[@k = 'x/y|z']/p:b[q]", ["a", "b"], "p:b[q]", False),
        (" /p:a ", ["a"], "p:a", True),
        ("//p:a", None, "", False),
        ("/p:a | /p:b", None, "", False),
        ("/p:a//p:b", None, "", False),
        ("/p:*", None, "", False),
        ("/a", None, "", False),  # unprefixed: a default namespace would change its meaning
        ("/q:a", None, "", False),  # unbound prefix
        ("p:a/p:b", None, "", False),  # relative
        ("/p:a/@k", None, "", False),
        ("/p:a/child::p:b", None, "", False),
        ("/p:a/text()", None, "", False),
        ("/p:a[", None, "", False),
    ],
)
def test_absolute_name_path(pattern: str, names: list[str] | None, last: str, plain: bool) -> None:
    found = D._absolute_name_path(pattern, {"p": "urn:p", "xsl": D.XSL})
    if names is None:
        assert found is None
        return
    assert found is not None
    assert found.names == [f"{{urn:p}}{n}" for n in names]
    assert (found.last_step, found.plain_ancestors) == (last, plain)


def test_path_dispatch_rewrites_and_keeps_the_output(tmp_path: Path) -> None:
    text = _paths_stylesheet(_PATH_RULES)
    derived = _derive(text, tmp_path)
    assert derived.rewrites == ("rule-select", "path-dispatch", "bare-fired-rule")
    root = etree.fromstring(derived.text)
    assert not [t for t in root.iter(f"{D._X}template") if t.get("mode") == "M1"]
    start = [a for a in root.iter(f"{D._X}apply-templates") if a.get("select") == "/*"]
    assert len(start) == 1
    matches = {t.get("match") for t in root.iter(f"{D._X}template")}
    assert "p:b[@k]" in matches  # plain ancestors: the last step alone
    assert "/p:r/p:a[@k = '2']/p:b" in matches  # an ancestor predicate: the whole pattern
    official = _svrl_of(text.encode("utf-8"), _PATH_DOC, tmp_path)
    got = _svrl_of(derived.text, _PATH_DOC, tmp_path)
    for tag in ("r", "a1", "a", "b-under-a2", "b-with-k", "z", "c"):
        assert f'context="{tag}"' in official, tag  # every rule fires somewhere
    # r; a1, b-with-k, c (the c with @k fails its predicate); a, b-under-a2 twice (it outranks
    # b-with-k); a, b-with-k, c; z twice (not p:x/p:z); the last a: 13.
    assert official.count("fired-rule") == 13
    assert "deep" not in official  # p:a under p:u/p:v is on no rule's path
    assert _bare(got) == _bare(official)


def test_path_dispatch_refuses_a_mode_with_a_relative_rule(tmp_path: Path) -> None:
    text = _paths_stylesheet([*_PATH_RULES, ("p:u/p:a", 1003, "ua")])
    derived = _derive(text, tmp_path)
    assert derived.rewrites == ("rule-select", "bare-fired-rule")
    official = _svrl_of(text.encode("utf-8"), _PATH_DOC, tmp_path)
    assert 'context="ua"' in official
    assert _bare(_svrl_of(derived.text, _PATH_DOC, tmp_path)) == _bare(official)


def test_path_dispatch_keeps_a_walk_that_rules_stop(tmp_path: Path) -> None:
    # A rule without the recursion stops the walk below its element (Factur-X EXTENDED's
    # shape): rule-select refuses the mode, path-dispatch keeps the stop.
    stop = '<xsl:apply-templates select="*" mode="M1"/>\n  </xsl:template>'
    rules = "\n  ".join(_RULE.format(match=m, priority=p, tag=t) for m, p, t in _PATH_RULES)
    first_a1 = rules.index('context="a1"')
    cut = rules.index(stop, first_a1)
    rules = rules[:cut] + "</xsl:template>" + rules[cut + len(stop):]
    text = _PATHS.replace("{RULES}", rules)
    derived = _derive(text, tmp_path)
    assert derived.rewrites == ("path-dispatch", "bare-fired-rule")
    official = _svrl_of(text.encode("utf-8"), _PATH_DOC, tmp_path)
    assert 'location="b-with-k:b1"' not in official  # below the stopped a (k=1)
    assert 'location="b-with-k:3"' in official
    assert _bare(_svrl_of(derived.text, _PATH_DOC, tmp_path)) == _bare(official)


def test_derived_text_does_not_depend_on_the_process() -> None:
    # The derived text is cached on disk and shared: it must not vary with hash seeds.
    import os
    import subprocess
    import sys

    code = (
        "import hashlib; from facturflow.validation.derive import derive; "
        "from facturflow.artefacts import builtin; "
        "print(hashlib.sha256(derive(builtin('sch-fx-basic').path).text).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1


def test_derive_can_leave_out_named_rewrites() -> None:
    from facturflow.artefacts import builtin

    path = builtin("sch-fx-minimum").path
    full = D.derive(path)
    assert "path-dispatch" in full.rewrites
    partial = D.derive(path, skip=("path-dispatch", "codedb-param"))
    assert partial.rewrites == tuple(
        r for r in full.rewrites if r not in ("path-dispatch", "codedb-param")
    )
    assert partial.documents == () and partial.text != full.text
    with pytest.raises(ValueError):
        D.derive(path, skip=("no-such-rewrite",))


# --- code-list-map --------------------------------------------------------------------------------

_CODES = " " + " ".join(f"C{i}" for i in range(20)) + " C3 "  # 21 tokens, one repeated
_CODE_LIST = """<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    version="{version}">
  <xsl:template match="/">
    <out>
      <xsl:for-each select="//v">
        <xsl:choose>
          <xsl:when test="{test}"><ok n="{{position()}}"/></xsl:when>
          <xsl:otherwise><no n="{{position()}}" test="{test}"/></xsl:otherwise>
        </xsl:choose>
      </xsl:for-each>
    </out>
  </xsl:template>
</xsl:stylesheet>
"""
# Values on both sides of the rewrite's split: no space (the map) and inner spaces (the search),
# a run of tokens (a match only the substring search makes), empty, tabs, affixes, case.
_CODE_VALUES = [
    "C0", "C19", "C3", "C20", "c1", "", "C1 C2", "C1  C2", "C1 C3 C2", " C1", "C1 ", "C",
    "1", "C1\tC2", "C1C2", "C19 ", "é",
]
_CODE_DOC = "<r>" + "".join(f"<v a='{v}'>{v}</v>" for v in _CODE_VALUES) + "<v/></r>"


def _code_list(test: str, version: str = "2.0") -> str:
    return _CODE_LIST.format(version=version, test=test)


@pytest.mark.parametrize(
    "test",
    [
        f"contains('{_CODES}', concat(' ', @a, ' '))",
        f"contains(&quot;{_CODES}&quot; , concat( ' ' ,normalize-space(.), ' ' ) )",
        f"not(contains('{_CODES}', concat(' ', string(@a), ' '))) or @a = 'C1'",
    ],
)
def test_code_list_map_keeps_every_answer(test: str, tmp_path: Path) -> None:
    text = _code_list(test)
    derived = _derive(text, tmp_path)
    assert derived.rewrites == ("code-list-map",)
    assert b"map{" in derived.text and b"$facturflow_w" in derived.text
    official = _svrl_of(text.encode("utf-8"), _CODE_DOC, tmp_path)
    assert official.count("<ok") and official.count("<no")  # both answers occur
    assert _svrl_of(derived.text, _CODE_DOC, tmp_path) == official


@pytest.mark.parametrize(
    "test",
    [
        f"contains('{_CODES.replace(' C5 ', '  C5 ')}', concat(' ', @a, ' '))",  # double space
        f"contains('{_CODES.strip()} ', concat(' ', @a, ' '))",  # no leading space
        f"contains('{_CODES}', concat(' ', @a, ' ', @b))",  # another concat
        f"contains('{_CODES}', concat(' ', @a, '  '))",
        f"contains('{_CODES}', concat('', @a, ' '))",
        f"contains('{_CODES}', concat(' ', @a (: x, :), ' '))",  # a comment: not parsed
        "contains(' C1 C2 C3 ', concat(' ', @a, ' '))",  # a short list
        f"contains('{_CODES}', @a)",
        # the call's text inside a string literal is data, not a call
        f"@a = &quot;contains('{_CODES}', concat(' ', @a, ' '))&quot;",
    ],
)
def test_code_list_map_refuses_what_it_cannot_prove(test: str, tmp_path: Path) -> None:
    assert _derive(_code_list(test), tmp_path).rewrites == ()


def test_code_list_map_leaves_xpath_1_stylesheets(tmp_path: Path) -> None:
    test = f"contains('{_CODES}', concat(' ', @a, ' '))"
    assert _derive(_code_list(test, version="1.0"), tmp_path).rewrites == ()


def test_code_list_map_keeps_errors(tmp_path: Path) -> None:
    # concat() of two values is an error before and after: the argument is evaluated as before.
    text = _code_list(f"contains('{_CODES}', concat(' ', (@a, @a), ' '))")
    derived = _derive(text, tmp_path)
    assert derived.rewrites == ("code-list-map",)
    for stylesheet in (text.encode("utf-8"), derived.text):
        with pytest.raises(Exception, match="more than one item"):
            _svrl_of(stylesheet, _CODE_DOC, tmp_path)


@pytest.mark.parametrize(
    ("text", "top"),
    [
        ("a[b]/c", "a[  /c"),
        ("f('x,y', (: a, (: b :) c :) z)", "f("),
        ("p:a/Q{u/v}b", "p:a/Q{    b"),
        ("'it''s'|x", "       |x"),
    ],
)
def test_one_lexer_for_the_rewrites(text: str, top: str) -> None:
    mask = D._top_level(text)
    assert "".join(c if ok else " " for c, ok in zip(text, mask, strict=True)) == top.ljust(
        len(text)
    )
    for bad in ("a[b", "'x", "(: c", "a)"):
        with pytest.raises(ValueError):
            D.xpath_scan(bad)


# --- root-call, root-path, sibling-position (issue 19: linear large invoices) -----------------

_PER_LINE = """<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:svrl="http://purl.oclc.org/dsdl/svrl"
    xmlns:p="urn:p" version="2.0">
  <xsl:function name="p:special" as="xs:boolean">
    <xsl:param name="c" as="element()?"/>
    <xsl:sequence select="normalize-space($c/p:head/p:k) = 'S8'"/>
  </xsl:function>
  <xsl:template match="*" mode="schematron-select-full-path">
    <xsl:apply-templates select="." mode="schematron-get-full-path"/>
  </xsl:template>
  <xsl:template match="*" mode="schematron-get-full-path">
    <xsl:apply-templates select="parent::*" mode="schematron-get-full-path"/>
    <xsl:text>/</xsl:text>
    <xsl:value-of select="local-name()"/>
    <xsl:variable name="preceding"
        select="count(preceding-sibling::*[local-name()=local-name(current())
                                   and namespace-uri() = namespace-uri(current())])"/>
    <xsl:text>[</xsl:text><xsl:value-of select="1+ $preceding"/><xsl:text>]</xsl:text>
  </xsl:template>
  <xsl:template match="/">
    <svrl:schematron-output>
      <xsl:apply-templates select="//p:line" mode="M1"/>
    </svrl:schematron-output>
  </xsl:template>
  <xsl:template match="p:line" priority="1000" mode="M1">
    <svrl:fired-rule/>
    <xsl:if test="p:special(/p:doc) or /p:doc/p:head/p:k[@t = 'a'] or @n = '1'">
      <svrl:failed-assert id="A" location="{{schematron-select-full-path}}">
        <xsl:attribute name="location">
          <xsl:apply-templates select="p:v" mode="schematron-select-full-path"/>
        </xsl:attribute>
      </svrl:failed-assert>
    </xsl:if>
    <xsl:if test="p:v[p:special(/p:doc)] or (/p:doc/p:head/p:k[number(.) gt 1] and false())">
      <svrl:failed-assert id="B"/>
    </xsl:if>
    <xsl:for-each select="p:v"><xsl:if test="p:special(/p:doc)"><C/></xsl:if></xsl:for-each>
  </xsl:template>
  <xsl:template match="text()" priority="-1" mode="M1"/>
  <xsl:template match="@*|node()" priority="-2" mode="M1"/>
</xsl:stylesheet>
"""


def _per_line_doc(lines: int, head: str) -> str:
    body = "".join(f'<p:line n="{i % 3}"><p:v/><p:w/><p:v/></p:line><p:x/>'
                   for i in range(lines))
    return f'<p:doc xmlns:p="urn:p"><p:head>{head}</p:head>{body}</p:doc>'


def _apply(stylesheet: bytes, tmp_path: Path, doc: str) -> str:
    from facturflow.validation import schematron

    engine: Any = schematron._get_engine()
    builder = engine.processor.new_document_builder()
    builder.set_base_uri((tmp_path / "s.xslt").as_uri())
    executable = engine.xslt.compile_stylesheet(
        stylesheet_node=builder.parse_xml(xml_text=stylesheet.decode("utf-8")))
    node = engine.processor.parse_xml(xml_text=doc)
    try:
        return str(executable.transform_to_string(xdm_node=node))
    except Exception as exc:
        return f"error {exc}".split(" on line")[0].split(" in ")[0][:120]


def test_per_line_rewrites_hoist_only_what_they_can_prove(tmp_path: Path) -> None:
    derived = _derive(_PER_LINE, tmp_path)
    assert {"root-call", "root-path", "sibling-position"} <= set(derived.rewrites)
    text = derived.text.decode("utf-8")
    root = etree.fromstring(derived.text)
    globals_ = {v.get("name"): v.get("select") for v in root.iterchildren(f"{D._X}variable")
                if "root" in (v.get("name") or "")}
    assert root.find(f"{D._X}variable[@name='facturflow-sibling-positions']") is not None
    assert globals_ == {"facturflow-root-call-1": "p:special(/p:doc)",
                        "facturflow-root-path-1": "/p:doc/p:head/p:k[@t = 'a']"}
    assert ("$facturflow-root-call-1 or $facturflow-root-path-1 or @n = '1'" in text)
    # Refused: a call inside a predicate (another focus), a predicate that can raise, a call
    # inside xsl:for-each.
    assert "p:v[p:special(/p:doc)] or (/p:doc/p:head/p:k[number(.) gt 1]" in text
    assert '<xsl:if test="p:special(/p:doc)"><C/>' in text


@pytest.mark.parametrize(
    ("lines", "head"),
    [
        (3, "<p:k>S1</p:k>"),
        (3, "<p:k>S8</p:k>"),
        (150, "<p:k>S8</p:k>"),  # a failure on every line, 149 line siblings: the key's branch
        (150, "<p:k t='a'>S1</p:k>"),
        (70, "<p:k>S1</p:k>"),  # no failure but n = 1
        (70, "<p:k>S8</p:k><p:k>S8</p:k>"),  # the function raises: the same error
        (0, "<p:k>S8</p:k>"),
    ],
)
def test_per_line_rewrites_keep_the_output(lines: int, head: str, tmp_path: Path) -> None:
    doc = _per_line_doc(lines, head)
    derived = _derive(_PER_LINE, tmp_path)
    want = _apply(_PER_LINE.encode("utf-8"), tmp_path, doc)
    got = _apply(derived.text, tmp_path, doc)
    if not want.startswith("error"):
        assert _bare(got) == _bare(want)
        assert want.count("failed-assert") >= (lines if "S8" in head else 0)
    else:
        assert got == want


def test_sibling_position_counts_same_names_only(tmp_path: Path) -> None:
    # Past 64 siblings, positions come from the map: names interleaved and namespaces mixed.
    derived = _derive(_PER_LINE, tmp_path)
    body = "".join('<p:line n="1"><p:v/></p:line><q:line xmlns:q="urn:q" n="1"/><p:v/>'
                   for _ in range(80))
    doc = f'<p:doc xmlns:p="urn:p"><p:head/>{body}</p:doc>'
    want = _apply(_PER_LINE.encode("utf-8"), tmp_path, doc)
    assert 'location="/doc[1]/line[80]/v[1]"' in want
    assert _bare(_apply(derived.text, tmp_path, doc)) == _bare(want)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('as="xs:boolean">', 'as="element()?">'),  # a node: identity could differ per call
        ('<xsl:param name="c" as="element()?"/>',
         '<xsl:param name="c" as="element()?"/><xsl:variable name="n"><n/></xsl:variable>'),
        ("normalize-space($c/p:head/p:k) = 'S8'",
         "normalize-space($c/p:head/p:k) = 'S8' and generate-id($c) != ''"),
        ('<xsl:apply-templates select="//p:line" mode="M1"/>',  # the mode may see another tree
         '<xsl:apply-templates select="//p:line" mode="M1"/>'
         '<xsl:apply-templates select="document(\'x.xml\')//p:line" mode="M1"/>'),
    ],
)
def test_root_call_refuses_what_it_cannot_prove(old: str, new: str, tmp_path: Path) -> None:
    assert old in _PER_LINE
    derived = _derive(_PER_LINE.replace(old, new), tmp_path)
    assert "root-call" not in derived.rewrites


def test_linear_rewrites_apply_to_the_default_stylesheets() -> None:
    from facturflow.artefacts import builtin

    expected = {
        "sch-brfr-ubl": {"root-call", "sibling-lookup", "filter-key", "prefix-key",
                         "parent-child", "preceding-key", "root-predicate", "sibling-position"},
        "sch-brfr-cii": {"root-call", "sibling-lookup", "filter-key", "prefix-key",
                         "parent-child", "preceding-key", "root-predicate", "sibling-position"},
        "sch-fx-en16931": {"root-path", "sibling-position"},
        "sch-en16931-ubl": {"sibling-position"},
        "sch-extfr-ubl": {"root-path", "parent-child", "sibling-position"},
    }
    for key, rewrites in expected.items():
        assert rewrites <= set(D.derive(builtin(key).path).rewrites), key


def test_a_taken_name_is_skipped_and_every_substitution_declared(tmp_path: Path) -> None:
    # The stylesheet already has the first name a rewrite would give: the rewrite takes the
    # next free one (it used to stop half-way, leaving substituted references undeclared).
    own = '<xsl:variable name="facturflow-root-call-1" select="\'mine\'"/>'
    official = re.sub(r"(<xsl:stylesheet[^>]*>)", lambda m: m[1] + own, _PER_LINE, count=1)
    assert own in official
    derived = _derive(official, tmp_path)
    assert "root-call" in derived.rewrites
    root = etree.fromstring(derived.text)
    names = [v.get("name") for v in root.iterchildren(f"{D._X}variable")]
    assert names.count("facturflow-root-call-1") == 1 and "facturflow-root-call-2" in names
    assert "$facturflow-root-call-2" in derived.text.decode("utf-8")
    doc = _per_line_doc(5, '<p:k t="a"/>')
    assert _apply(derived.text, tmp_path, doc) == _apply(official.encode(), tmp_path, doc)


@pytest.mark.parametrize("key", ["sch-brfr-ubl", "sch-brfr-cii"])
def test_group_sums_are_keyed_with_the_original_as_fallback(key: str) -> None:
    # BR-FR-MV-05 (sub-line sums) and BR-FR-MV-09 (VAT breakdowns of a sub-invoice): a key
    # lookup per GROUP line instead of a scan of every line or breakdown, the original
    # expression kept whole where a variable or a tested value could raise.
    from facturflow.artefacts import builtin

    root = etree.fromstring(D.derive(builtin(key).path).text)
    selects = {v.get("name"): v.get("select") or "" for v in root.iter(f"{D._X}variable")
               if v.get("name") in ("sumsubline", "numberline", "sumvat")}
    assert set(selects) == {"sumsubline", "numberline", "sumvat"}
    for name, select in selects.items():
        assert select.startswith("if (exists(("), name
        keyed = select.split(" else (", 1)[1]
        lookup = "facturflow-prefix-" if name == "sumvat" else "facturflow-filter-"
        assert f"key('{lookup}" in keyed, name
    assert "key('facturflow-prefix-1', '')" in selects["sumvat"]


def test_keyed_filters_refuse_a_default_collation() -> None:
    # key() and = / starts-with compare by codepoints only without a default collation.
    from facturflow.artefacts import builtin

    official = builtin("sch-brfr-ubl").path.read_text(encoding="utf-8")
    changed = re.sub(r"(<xsl:stylesheet\b)", r'\1 default-collation='
                     r'"http://www.w3.org/2005/xpath-functions/collation/codepoint"', official,
                     count=1)
    assert changed != official
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.xslt"
        path.write_text(changed, encoding="utf-8")
        rewrites = set(D.derive(path).rewrites)
    assert not rewrites & {"filter-key", "prefix-key", "preceding-key"}
    assert "root-call" in rewrites


_NS = {"a": "urn:a", "b": "urn:b"}


@pytest.mark.parametrize(
    ("pattern", "levels"),
    [
        ("a:x/a:y[a:z = 'q']", [{"{urn:a}x"}, {"{urn:a}y"}]),
        ("(a:x/a:l | b:x/b:l)/a:y[p]", [{"{urn:a}x", "{urn:b}x"}, {"{urn:a}l", "{urn:b}l"},
                                        {"{urn:a}y"}]),
        ("(a:x | b:x)[a:t = ('1', '2')]/a:y", [{"{urn:a}x", "{urn:b}x"}, {"{urn:a}y"}]),
        ("/a:x/a:y", None),  # absolute
        ("a:x//a:y", None),
        ("(a:x/a:l | b:l)/a:y", None),  # branches of two lengths
        ("a:x | a:y", None),
        ("c:x/a:y", None),  # unbound prefix
    ],
)
def test_pattern_levels(pattern: str, levels: list[set[str]] | None) -> None:
    assert D._pattern_levels(pattern, dict(_NS)) == levels


@pytest.mark.parametrize(
    ("select", "path"),
    [
        ("normalize-space(../a:id)", "../a:id"),
        ("normalize-space(./a:r[(a:t = 'AFL') and (a:c = '130')]/a:id)",
         "./a:r[(a:t = 'AFL') and (a:c = '130')]/a:id"),
        ("normalize-space(../a:id[@s = 'x'])", "../a:id[@s = 'x']"),
        ("normalize-space(a:id[1])", None),  # a numeric predicate: not plain
        ("normalize-space(a:id[number(.) > 1])", None),  # a predicate that could raise
        ("normalize-space($v/a:id)", None),
        ("normalize-space(/a:x/a:id)", None),  # absolute
        ("string(../a:id)", None),
        ("normalize-space(a:id) = normalize-space(a:x)", None),
    ],
)
def test_string_path_variable(select: str, path: str | None) -> None:
    template = etree.fromstring(
        f'<xsl:template xmlns:xsl="{D.XSL}" match="a:x" xmlns:a="urn:a">'
        f'<xsl:variable name="v" select="{select.replace(chr(39), "&apos;")}"/></xsl:template>')
    stylesheet = etree.Element(f"{D._X}stylesheet", nsmap={"xsl": D.XSL})
    stylesheet.append(template)
    assert D._string_path_variable(template, "v") == path
    # Bound in a for-each, the path would not mean the same where the filter is.
    inner = etree.SubElement(etree.SubElement(template, f"{D._X}for-each", select="*"),
                             f"{D._X}variable", name="w", select=select)
    assert inner is not None and D._string_path_variable(template, "w") is None


_PRECEDING = """<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="2.0"
  xmlns:p="urn:p" xmlns:svrl="http://purl.oclc.org/dsdl/svrl">
<xsl:template match="/"><svrl:schematron-output>
  <xsl:apply-templates select="/" mode="M1"/></svrl:schematron-output></xsl:template>
<xsl:template match="p:doc" priority="1000" mode="M1">
  <svrl:fired-rule/>
  <xsl:if test="p:line/p:ref[p:k/p:t = 'a']/p:id[. = preceding::p:ref[p:k/p:t = 'a']/p:id]">
    <svrl:failed-assert id="DUP"/></xsl:if>
  <xsl:apply-templates select="@*|*" mode="M1"/>
</xsl:template>
<xsl:template match="text()" priority="-1" mode="M1"/>
<xsl:template match="@*|node()" priority="-2" mode="M1">
  <xsl:apply-templates select="@*|*" mode="M1"/></xsl:template>
</xsl:stylesheet>"""


@pytest.mark.parametrize(
    ("lines", "duplicate"),
    [
        # Two equal ids, both under a reference of kind a: a duplicate.
        ('<p:line><p:ref><p:k><p:t>a</p:t></p:k><p:id>1</p:id></p:ref></p:line>'
         '<p:line><p:ref><p:k><p:t>a</p:t></p:k><p:id>1</p:id></p:ref></p:line>', True),
        # The earlier one is not of kind a: no duplicate.
        ('<p:line><p:ref><p:k><p:t>b</p:t></p:k><p:id>1</p:id></p:ref></p:line>'
         '<p:line><p:ref><p:k><p:t>a</p:t></p:k><p:id>1</p:id></p:ref></p:line>', False),
        # Two references of one line.
        ('<p:line><p:ref><p:k><p:t>a</p:t></p:k><p:id>2</p:id></p:ref>'
         '<p:ref><p:k><p:t>a</p:t></p:k><p:id>2</p:id></p:ref></p:line>', True),
        ('<p:line><p:ref><p:k><p:t>a</p:t></p:k><p:id>3</p:id></p:ref></p:line>', False),
    ],
)
def test_preceding_key_keeps_the_answer(lines: str, duplicate: bool, tmp_path: Path) -> None:
    derived = _derive(_PRECEDING, tmp_path)
    assert "preceding-key" in derived.rewrites
    assert "facturflow-values-" in derived.text.decode("utf-8")
    doc = f'<p:doc xmlns:p="urn:p">{lines}</p:doc>'
    want = _apply(_PRECEDING.encode("utf-8"), tmp_path, doc)
    assert ('id="DUP"' in want) is duplicate
    assert _bare(_apply(derived.text, tmp_path, doc)) == _bare(want)
