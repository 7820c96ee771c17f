"""What a user rule pack may do: no environment, no files written, no reading outside its folder.

Hostile packs try each way in; none loads, and where Saxon itself is the guard (a stylesheet
compiled without the static check), the secret never reaches a report and no file is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facturflow import validate
from facturflow.artefacts import Artefact
from facturflow.detection import detect
from facturflow.errors import RulePackError
from facturflow.rules import load_rule_pack
from facturflow.validation import schematron
from facturflow.validation.report import LAYER_FAILED

from .helpers import VALID_CII

SECRET = "qonto-secret-7f3a9c"
FN = "http://www.w3.org/2005/xpath-functions"
XSL = "http://www.w3.org/1999/XSL/Transform"
XSD = "http://www.w3.org/2001/XMLSchema"


def stylesheet(body: str, *, root_attrs: str = "", prolog: str = "", top: str = "") -> str:
    """A compiled-Schematron-like stylesheet whose one failed assert's text is `body`."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>{prolog}
<xsl:stylesheet version="3.0" xmlns:xsl="{XSL}" xmlns:svrl="http://purl.oclc.org/dsdl/svrl"
    xmlns:f="{FN}" xmlns:xs="http://www.w3.org/2001/XMLSchema" {root_attrs}>
  {top}
  <xsl:template match="/">
    <svrl:schematron-output>
      <svrl:fired-rule context="/*"/>
      <svrl:failed-assert id="LEAK-1" flag="warning" location="/*[1]">
        <svrl:text>{body}</svrl:text>
      </svrl:failed-assert>
    </svrl:schematron-output>
  </xsl:template>
</xsl:stylesheet>
"""


def make_pack(folder: Path, xslt: str, extra: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rulepack.toml").write_text(
        'name = "hostile"\n[[schematron]]\nfile = "rules.xslt"\n', encoding="utf-8"
    )
    (folder / "rules.xslt").write_text(xslt, encoding="utf-8")
    for name, text in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


HOSTILE = {
    "environment-variable": stylesheet(
        "<xsl:value-of select=\"environment-variable('QONTO_API_KEY')\"/>"
    ),
    "fn-prefix": stylesheet("<xsl:value-of select=\"f:environment-variable('QONTO_API_KEY')\"/>"),
    "eqname": stylesheet(
        f"<xsl:value-of select=\"Q{{{FN}}}environment-variable('QONTO_API_KEY')\"/>"
    ),
    "comment-before-paren": stylesheet(
        "<xsl:value-of select=\"environment-variable (: hidden :) ('QONTO_API_KEY')\"/>"
    ),
    "function-reference": stylesheet(
        "<xsl:value-of select=\"environment-variable#1('QONTO_API_KEY')\"/>"
    ),
    "function-lookup": stylesheet(
        "<xsl:value-of select=\"function-lookup(xs:QName('f:environment-'||'variable'), 1)"
        "('QONTO_API_KEY')\"/>"
    ),
    "all-variables": stylesheet(
        "<xsl:value-of select=\"available-environment-variables()\"/>"
    ),
    "other-xslt-prefix": stylesheet(
        f"<t:value-of xmlns:t=\"{XSL}\" select=\"environment-variable('QONTO_API_KEY')\"/>"
    ),
    "attribute-value-template": stylesheet(
        "<out note=\"{environment-variable('QONTO_API_KEY')}\"/>"
    ),
    "avt-brace-in-literal": stylesheet(
        "<out note=\"it's {concat('}', environment-variable('QONTO_API_KEY'))}\"/>"
    ),
    "text-value-template": stylesheet(
        "<xsl:text expand-text=\"yes\">{environment-variable('QONTO_API_KEY')}</xsl:text>"
    ),
    "shadow-expand-text": stylesheet(
        "<xsl:text _expand-text=\"{'yes'}\">{unparsed-text('/etc/hostname')}</xsl:text>"
    ),
    "java-reflexive": stylesheet(
        "<xsl:value-of xmlns:sys=\"java:java.lang.System\" select=\"sys:getenv('QONTO_API_KEY')\"/>"
    ),
    "java-eqname": stylesheet(
        "<xsl:value-of select=\"Q{java:java.lang.System}getenv('QONTO_API_KEY')\"/>"
    ),
    "saxon-extension": stylesheet(
        "<xsl:value-of xmlns:sx=\"http://saxon.sf.net/\" select=\"sx:system-id()\"/>"
    ),
    "use-when": stylesheet(
        "<xsl:value-of use-when=\"environment-variable('X')\" select=\"1\"/>"
    ),
    "result-document": stylesheet(
        '<xsl:result-document href="file:///tmp/pwned.txt" method="text">x</xsl:result-document>'
    ),
    "result-document-other-prefix": stylesheet(
        f'<r:result-document xmlns:r="{XSL}" href="pwned.txt">x</r:result-document>'
    ),
    "unparsed-text-absolute": stylesheet(
        "<xsl:value-of select=\"unparsed-text('/etc/hostname')\"/>"
    ),
    "unparsed-text-file-uri": stylesheet(
        "<xsl:value-of select=\"unparsed-text('file:///etc/hostname')\"/>"
    ),
    "doc-parent-folder": stylesheet("<xsl:value-of select=\"doc('../outside.xml')\"/>"),
    "document-computed": stylesheet(
        "<xsl:value-of select=\"document(concat('/et', 'c/hosts'))\"/>"
    ),
    "unparsed-text-lines": stylesheet(
        "<xsl:value-of select=\"unparsed-text-lines(('/etc/hostname'))\"/>"
    ),
    "collection": stylesheet("<xsl:value-of select=\"count(collection('/etc'))\"/>"),
    "transform": stylesheet(
        "<xsl:value-of select=\"transform(map{'stylesheet-location': '/x.xsl'})\"/>"
    ),
    "evaluate": stylesheet("<xsl:evaluate xpath=\"'1'\"/>"),
    "import-outside": stylesheet("1", top='<xsl:import href="../outside.xslt"/>'),
    "xml-base": stylesheet(
        "<xsl:value-of select=\"unparsed-text('hostname')\"/>", root_attrs='xml:base="/etc/"'
    ),
    "doctype-entity": stylesheet(
        "&secret;", prolog='<!DOCTYPE xsl:stylesheet [<!ENTITY secret SYSTEM "/etc/hostname">]>'
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_pack_is_refused_naming_file_line_and_construct(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QONTO_API_KEY", SECRET)
    (tmp_path / "outside.xml").write_text(f"<s>{SECRET}</s>")
    pack = make_pack(tmp_path / "pack", HOSTILE[case])
    with pytest.raises(RulePackError) as caught:
        load_rule_pack(pack)
    message = str(caught.value)
    assert "rules.xslt" in message and SECRET not in message
    if case != "doctype-entity":
        assert ", line " in message
    assert not (tmp_path / "pack" / "pwned.txt").exists()


def test_an_imported_stylesheet_is_checked_too(tmp_path: Path) -> None:
    inner = stylesheet("<xsl:value-of select=\"environment-variable('QONTO_API_KEY')\"/>")
    pack = make_pack(
        tmp_path / "pack",
        stylesheet("1", top='<xsl:import href="lib/inner.xslt"/>'),
        {"lib/inner.xslt": inner},
    )
    with pytest.raises(RulePackError, match=r"lib/inner\.xslt, line \d+: the function "
                       r"environment-variable\(\) is not allowed"):
        load_rule_pack(pack)


def test_a_pack_file_outside_its_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.xslt").write_text(stylesheet("1"))
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "rulepack.toml").write_text(
        'name = "p"\n[[schematron]]\nfile = "../elsewhere.xslt"\n'
    )
    with pytest.raises(RulePackError, match="outside the pack's folder"):
        load_rule_pack(pack)


def test_a_pack_xsd_may_not_include_files_outside_its_folder(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (tmp_path / "other.xsd").write_text(f'<xs:schema xmlns:xs="{XSD}"/>')
    (pack / "extra.xsd").write_text(
        f'<xs:schema xmlns:xs="{XSD}">\n<xs:include schemaLocation="../other.xsd"/></xs:schema>'
    )
    (pack / "rulepack.toml").write_text('name = "p"\n[[xsd]]\nfile = "extra.xsd"\n')
    with pytest.raises(RulePackError, match=r"extra\.xsd, line 2: xs:include of '\.\./other"):
        load_rule_pack(pack)


def test_a_pack_reads_its_own_files_by_literal_name(tmp_path: Path) -> None:
    xslt = stylesheet(
        "<xsl:value-of select=\"document('codes/list.xml')/codes/code[1]\"/>|"
        "<xsl:value-of select=\"normalize-space(unparsed-text('notes.txt'))\"/>|"
        "<xsl:value-of select=\"system-property('xsl:version')\"/>"
    )
    pack = make_pack(
        tmp_path / "pack",
        xslt,
        {"codes/list.xml": "<codes><code>EUR</code></codes>", "notes.txt": "hello pack"},
    )
    report = validate(VALID_CII, rule_packs=[pack])
    (finding,) = [f for f in report if f.rule == "LEAK-1"]
    assert finding.message == "EUR|hello pack|3.0"


def _artefact(path: Path) -> Artefact:
    return Artefact(
        key=f"pack:raw:{path.name}",
        kind="schematron",
        path=path,
        title=path.name,
        version="1",
        origin="test",
    )


def test_saxon_itself_gives_a_stylesheet_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beneath the static check: a stylesheet compiled directly still sees no variable."""
    monkeypatch.setenv("QONTO_API_KEY", SECRET)
    path = tmp_path / "env.xslt"
    path.write_text(
        stylesheet(
            "[<xsl:value-of select=\"environment-variable('QONTO_API_KEY')\"/>]"
            "[<xsl:value-of select=\"available-environment-variables()\"/>]"
            "[<xsl:value-of select=\"system-property('user.home')\"/>]"
        )
    )
    document = detect(VALID_CII)
    findings, ran = schematron.run(
        _artefact(path), schematron.SaxonDocument(document.xml), document.tree
    )
    assert ran and [f.message for f in findings] == ["[][][]"]


def test_saxon_itself_writes_no_result_document(tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    path = tmp_path / "write.xslt"
    path.write_text(
        stylesheet(
            f'<xsl:result-document href="{target.as_uri()}" method="text">x'
            "</xsl:result-document>"
        )
    )
    document = detect(VALID_CII)
    findings, ran = schematron.run(
        _artefact(path), schematron.SaxonDocument(document.xml), document.tree
    )
    assert not ran and [f.rule for f in findings] == [LAYER_FAILED]
    assert "result-document" in findings[0].message
    assert not target.exists()


def test_cli_refuses_a_hostile_pack_in_one_line_and_leaks_nothing(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "pack", HOSTILE["eqname"])
    out = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", "validate", "--rule-pack", str(pack),
         "--format", "json", "--output", str(out), str(VALID_CII)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "QONTO_API_KEY": SECRET},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "rules.xslt, line" in lines[0] and "environment-variable() is not allowed" in lines[0]
    assert SECRET not in result.stdout + result.stderr
    assert not out.exists()
