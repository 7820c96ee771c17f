"""The direct walk of SVRL locations (schematron._walk_location) finds what XPath finds."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from facturflow.validation import schematron

CORPUS = Path(__file__).parents[3] / "shared" / "corpus"
_DOC = b"""<r:Invoice xmlns:r="urn:r" xmlns:c="http://example.com/c/2" xmlns:n="urn:n" a="1">
  <c:Line id="1"><c:ID>1</c:ID></c:Line>
  <!-- between --><c:Line id="2" n:x="y"><c:ID>2</c:ID><c:ID>3</c:ID></c:Line>
  <Plain b="2"><c:Line/></Plain>
</r:Invoice>"""


def _skeleton_location(node: etree._Element, attribute: str | None = None) -> str:
    """The location the Schematron skeleton writes for an element (or one of its attributes)."""
    steps = []
    element: etree._Element | None = node
    while element is not None:
        q = etree.QName(element)
        parent = element.getparent()
        siblings = [element] if parent is None else list(parent.iterchildren(element.tag))
        steps.append(f"*:{q.localname}[namespace-uri()='{q.namespace or ''}']"
                     f"[{siblings.index(element) + 1}]")
        element = element.getparent()
    path = "/" + "/".join(reversed(steps))
    if attribute is not None:
        path += f"/@*[local-name()='{attribute}' and namespace-uri()='']"
    return path


def _locations(tree: etree._ElementTree) -> list[str]:
    out = []
    for element in tree.getroot().iter():
        if isinstance(element.tag, str):
            out.append(_skeleton_location(element))
            out += [_skeleton_location(element, str(a)) for a in element.attrib if "{" not in a]
    return out


def _by_xpath(tree: etree._ElementTree, xpath: str, monkeypatch: pytest.MonkeyPatch) -> int | None:
    with monkeypatch.context() as m:
        m.setattr(schematron, "_walk_location", lambda *_: schematron._NOT_WALKED)
        return schematron._line_of(tree, xpath)


def test_walk_matches_xpath_on_every_node(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = etree.ElementTree(etree.fromstring(_DOC))
    paths = _locations(tree)
    odd = [  # not found, or not of the skeleton's shape (XPath decides)
        paths[3].replace("[2]", "[3]"), paths[1] + "/@id", paths[1] + "/text()",
        paths[0] + "/@*[local-name()='a']", "/*:Other[namespace-uri()='urn:r'][1]",
        paths[0].replace("[1]", "[2]"), paths[0] + "/@zz",
    ]
    lines = [schematron._line_of(tree, p) for p in paths + odd]
    assert lines == [_by_xpath(tree, p, monkeypatch) for p in paths + odd]
    assert all(isinstance(line, int) for line in lines[: len(paths)])
    assert {line for line in lines[: len(paths)]} == {1, 2, 3, 4}


@pytest.mark.corpus
def test_walk_matches_xpath_on_corpus_invoices(monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(CORPUS.glob("cii/*.xml"))[:3] + sorted(CORPUS.glob("ubl/*.xml"))[:3]
    if not files:
        pytest.skip("corpus not found")
    for file in files:
        tree = etree.parse(str(file))
        paths = _locations(tree)
        assert [schematron._line_of(tree, p) for p in paths] == [
            _by_xpath(tree, p, monkeypatch) for p in paths
        ], file


def test_memoised_walks_give_the_lines_of_fresh_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    # One memo for many paths of one tree (as parse_svrl uses it): shared leading steps are
    # walked once, and a cached miss ([3] of two siblings) must stay a miss for longer paths.
    tree = etree.ElementTree(etree.fromstring(_DOC))
    paths = _locations(tree)
    missing = paths[3].replace("[2]", "[3]")
    queries = [*paths, missing, missing + "/*:ID[namespace-uri()='http://example.com/c/2'][1]"]
    queries += list(reversed(paths))
    memo: dict[str, etree._Element | None] = {}
    memoised = [schematron._line_of(tree, p, memo) for p in queries]
    assert memoised == [_by_xpath(tree, p, monkeypatch) for p in queries]
    assert memo  # the memo was used
    locator = schematron._Locator(tree)
    assert [locator.line(p) for p in queries] == memoised
    assert locator.line(None) is None
