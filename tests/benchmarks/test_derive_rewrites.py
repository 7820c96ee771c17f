"""The guards of the stylesheet rewrites (facturflow.validate.derive), on small stylesheets.

The equivalence on the official files is proved by test_derived_equivalence.py; these tests pin
what the rewrites accept and refuse, and that an accepted rewrite gives the same SVRL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from facturflow.validate import derive as D

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


def _derive(text: str, tmp_path: Path, *, keyed: bool = False) -> D.Derived:
    """derive() on `text`; with descendant-key only if `keyed` (off by default in derive())."""
    path = tmp_path / "s.xslt"
    path.write_text(text, encoding="utf-8")
    return D.derive(path, descendant_key=keyed)


def _svrl(stylesheet: bytes, tmp_path: Path) -> str:
    from facturflow.validate import schematron

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


# descendant-key -------------------------------------------------------------------------------

_NS = {"p": "urn:p", "q": "urn:q", None: "urn:default"}
_P = "{urn:p}"


def _lookups(xpath: str) -> list[str]:
    """The rewritten spans as text, '//p:a' -> '{urn:p}a'."""
    found = D._descendant_lookups(xpath, _NS)
    for start, end, _uri, local in found:
        assert xpath[start:start + 2] == "//" and xpath[start:end].endswith(f":{local}")
    return [f"{{{uri}}}{local}" for _, _, uri, local in found]


@pytest.mark.parametrize(
    ("xpath", "found"),
    [
        ("//p:a", [f"{_P}a"]),
        ("count(//p:a) = 1 and //q:b/p:c", [f"{_P}a", "{urn:q}b"]),
        ("x or //p:a", [f"{_P}a"]),  # "or" is an operator here ...
        ("(or //p:a)", []),  # ... and a name step there: or//p:a is relative
        ("for $x in //p:a return $x", [f"{_P}a"]),
        ("some $x in p:b satisfies //p:a", [f"{_P}a"]),
        ("if (x) then //p:a else //p:b", [f"{_P}a", f"{_P}b"]),
        ("-//p:a", [f"{_P}a"]),
        ("//p:a//p:b", [f"{_P}a"]),  # the second // is relative
        ("a//p:b", []),
        ("$v//p:b", []),
        ("f()//p:b", []),
        (".//p:b", []),
        ("..//p:b", []),
        ("p:x[1]//p:b", []),
        ("'x'//p:b", []),  # (not valid XPath, but never an absolute path)
        ("* //p:b", []),  # a wildcard step, then relative //
        ("2 * //p:b", [f"{_P}b"]),  # multiplication, then an absolute path
        ("@* //p:b", []),
        ("'//p:a' = x", []),  # in a string literal
        ("\"it's //p:a\" = x", []),
        ("'it''s //p:a' = //p:b", [f"{_P}b"]),  # doubled quotes inside a literal
        ("(: //p:a (: nested //p:c :) :) //p:b", [f"{_P}b"]),  # comments
        ("//a", []),  # unprefixed: the XPath default element namespace could apply
        ("//z:a", []),  # unbound prefix
        ("//*", []),
        ("//p:*", []),
        ("//*:a", []),
        ("//@p:a", []),
        ("//text()", []),
        ("//p:a(1)", []),
        ("//node()", []),
        ("//p:a[1]", []),  # the first p:a child of each parent: positional
        ("//p:a[last()]", []),
        ("//p:a[position() = 1]", []),
        ("//p:a[$n]", []),
        ("//p:a[x + 1]", []),
        ("//p:a[count(x)]", []),
        ("//p:a[if (x) then 1 else y = 2]", []),
        ("//p:a[x = 1, 2]", []),
        ("//p:a[normalize-space(.)]", []),  # a string would be fine, but is not in the list
        ("//p:a[@b = '1']", [f"{_P}a"]),
        ("//p:a[@b='1'][p:c]", [f"{_P}a"]),
        ("//p:a[@b = '1'][2]", []),
        ("//p:a[p:c]", [f"{_P}a"]),
        ("//p:a[p:c/q:d/@e]", [f"{_P}a"]),
        ("//p:a[p:c and @d]", [f"{_P}a"]),
        ("//p:a[x eq 'y']", [f"{_P}a"]),
        ("//p:a[not(p:c)]", [f"{_P}a"]),
        ("//p:a[exists(p:c[2])]", [f"{_P}a"]),  # the inner [2] is about p:c
        ("//p:a[not(p:c)][position() > 1]", []),
        ("//p:a[contains(., 'x')]/p:b", [f"{_P}a"]),
        ("//p:a[starts-with(., 'x') or true()]", [f"{_P}a"]),
        ("//p:a[not(x) + 1]", []),  # a call, but not the whole predicate
        ("(//p:a)[1]", [f"{_P}a"]),  # (key(...))[1] is (//p:a)[1]: both in document order
        ("//p:a | //q:b", [f"{_P}a", "{urn:q}b"]),
        ("sum(//(p:a|p:b)/x)", []),
        ("document('x.xml')//p:a | //p:b", []),  # another document: not read at all
        ("$facturflow_codedb/codedb[//p:b]", []),
        ("x instance of element() and //p:a", []),  # not read: the tokeniser gives up
        ("map{1: //p:a}", []),
    ],
)
def test_descendant_lookups(xpath: str, found: list[str]) -> None:
    assert _lookups(xpath) == found


_KEYED = """<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:svrl="http://purl.oclc.org/dsdl/svrl" xmlns:p="urn:p" xmlns:x="urn:x" version="2.0">
  <xsl:variable name="global" select="count(//p:a)"/>
  <xsl:template match="/">
    <svrl:schematron-output>
      <xsl:apply-templates select="//p:b[p:a]" mode="M1"/>
    </svrl:schematron-output>
  </xsl:template>
  <xsl:template match="p:b" mode="M1">
    <xsl:variable name="n" select="2"/>
    <svrl:fired-rule/>
    <xsl:for-each select="//p:a[@k = 'x|y'] | //x:a">
      <svrl:failed-assert test="//p:a[1]" location="{count(//p:a)}">
        <xsl:value-of select="@k"/>/<xsl:value-of select="count(//p:a[$n])"/>
        /<xsl:value-of select="count(//p:a[last()])"/>/<xsl:value-of select="count((//p:a)[1])"/>
        /<xsl:value-of select="string-join(//p:a[not(@k)]/name(), ',')"/>
        /<xsl:value-of select="count(.//p:a)"/>/<xsl:value-of select="$global"/>
      </svrl:failed-assert>
    </xsl:for-each>
    <xsl:if test="//p:c[@k] and not(//p:z)">
      <svrl:successful-report test="{{//p:c}}"/>
    </xsl:if>
  </xsl:template>
</xsl:stylesheet>
"""


def test_descendant_key_rewrites_and_keeps_the_output(tmp_path: Path) -> None:
    derived = _derive(_KEYED, tmp_path, keyed=True)
    assert derived.rewrites == ("descendant-key",)
    root = etree.fromstring(derived.text)
    (key,) = [k for k in root.iter(f"{D._X}key")]
    assert key.get("name") == D.DESCENDANT_KEY
    # one index for every name: in p, and x bound on the key itself
    assert {(key.nsmap[p], local) for p, local in
            (n.split(":") for n in (key.get("match") or "").split("|"))} == {
        ("urn:p", "b"), ("urn:p", "a"), ("urn:x", "a"), ("urn:p", "c"), ("urn:p", "z")}
    texts = etree.tostring(root).decode()
    assert '<xsl:variable name="global" select="count(//p:a)"/>' in texts  # global: kept
    assert 'test="//p:a[1]" location="{count(//p:a)}"' in texts  # output, not code: kept
    assert 'test="{{//p:c}}"' in texts
    assert "count(//p:a[$n])" in texts and "count(//p:a[last()])" in texts
    assert "count(.//p:a)" in texts
    assert "count((key('facturflow-descendants', '{urn:p}a'))[1])" in texts
    assert "key('facturflow-descendants', '{urn:p}a')[@k = 'x|y'] | key(" in texts
    official, got = _svrl(_KEYED.encode("utf-8"), tmp_path), _svrl(derived.text, tmp_path)
    assert official.count("<svrl:failed-assert") == 2 * 2  # two p:b with a p:a child
    assert "successful-report" in official
    assert got == official


def test_descendant_key_needs_a_qualifying_path_and_a_free_key_name(tmp_path: Path) -> None:
    plain = _KEYED.replace("//", "/descendant::")
    assert "//" not in plain.replace("{{", "").replace("location=", "")
    assert "descendant-key" not in _derive(plain, tmp_path, keyed=True).rewrites
    taken = _KEYED.replace(
        '<xsl:template match="/">',
        f'<xsl:key name="{D.DESCENDANT_KEY}" match="p:a" use="@k"/>\n  <xsl:template match="/">')
    derived = _derive(taken, tmp_path, keyed=True)
    assert derived.rewrites == ()


def test_descendant_key_is_off_by_default(tmp_path: Path) -> None:
    assert "descendant-key" not in _derive(_KEYED, tmp_path).rewrites
    path = tmp_path / "s.xslt"
    assert "descendant-key" not in D.derive(path).rewrites  # the file _derive wrote


def test_descendant_key_after_rule_select_keeps_the_output(tmp_path: Path) -> None:
    text = _SKELETON.replace("{MARK}", "m")
    derived = _derive(text, tmp_path, keyed=True)
    assert derived.rewrites == ("no-text-walk", "rule-select", "bare-fired-rule", "descendant-key")
    root = etree.fromstring(derived.text)
    selects = [a.get("select") for a in root.iter(f"{D._X}apply-templates") if a.get("mode")]
    assert selects == ["key('facturflow-descendants', '{urn:p}a') | //@k",
                       "key('facturflow-descendants', '{urn:p}b')"]
    official = _svrl(text.encode("utf-8"), tmp_path)
    assert _bare(_svrl(derived.text, tmp_path)) == _bare(official)
