"""What a user rule pack's files may do, checked before they are compiled.

Saxon's own configuration (validation/schematron.py) already keeps every stylesheet from the
environment and from writing files: with `allow-external-functions` off, `environment-variable()`
and `available-environment-variables()` answer nothing, `system-property()` tells no Java
property, and `xsl:result-document` does not compile. What Saxon cannot restrict is which local
files a stylesheet reads (only the URI scheme). So a pack's stylesheet (and every stylesheet it
imports) is refused when it could read outside the pack's folder or reach past the document:

- a call to doc(), document(), doc-available(), unparsed-text(), unparsed-text-lines(),
  unparsed-text-available() or json-doc() whose argument is not one string literal naming a file
  inside the pack's folder (a relative path or a file: URI); a reference to one of them (`doc#1`);
- collection(), uri-collection(), transform(), load-xquery-module(), function-lookup(),
  environment-variable(), available-environment-variables(), under any prefix or as Q{uri}name;
  any extension function (Saxon's namespace, java:, clitype:);
- the instructions xsl:result-document, xsl:evaluate, xsl:source-document, xsl:merge-source,
  xsl:stream, xsl:import-schema and xsl:use-package, whatever prefix names the XSLT namespace;
- xsl:import / xsl:include of a file outside the folder; an `xml:base` attribute (it would move
  relative paths elsewhere); a DOCTYPE (entities could pull a file in at compile time).

The scan errs on the side of refusing: it reads every attribute of the XSLT elements, every
`xsl:*` attribute, the attribute value templates of other elements and, when text value templates
may be on anywhere (any expand-text attribute), every text with a `{`, as XPath. A pack XSD may
include or import only files inside the folder. Each refusal is a RulePackError naming the file,
the line and the construct.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lxml import etree

from .errors import RulePackError

XSLT_NS = "http://www.w3.org/1999/XSL/Transform"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"

# Functions that read a resource: allowed with one literal naming a file inside the pack.
_READERS = (
    "doc",
    "document",
    "doc-available",
    "unparsed-text",
    "unparsed-text-lines",
    "unparsed-text-available",
    "json-doc",
)
# Functions a pack may never call: other resources, dynamic calls, the environment.
_FORBIDDEN_FUNCTIONS = (
    "collection",
    "uri-collection",
    "transform",
    "load-xquery-module",
    "function-lookup",
    "environment-variable",
    "available-environment-variables",
)
_FORBIDDEN_INSTRUCTIONS = (
    "result-document",
    "evaluate",
    "source-document",
    "merge-source",
    "import-schema",
    "use-package",
    "stream",
)
_NAMES = "|".join(re.escape(n) for n in sorted((*_READERS, *_FORBIDDEN_FUNCTIONS), key=len)[::-1])
# A name not preceded by a name character (a prefix's ':' or an EQName's '}' may precede it),
# then optional whitespace and '(' (a call, or a comment: refused too) or '#' (a reference).
_CALL = re.compile(rf"(?<![\w.\-])({_NAMES})\s*([(#])")
# The only accepted form of a reader call: one string literal (and unparsed-text's encoding).
_LITERAL_CALL = re.compile(
    r"\(\s*(?P<q>['\"])(?P<href>[^'\"]*)(?P=q)\s*(?:,\s*(['\"])[^'\"]*\3\s*)?\)"
)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
    )


def _parse(path: Path, root: Path) -> etree._ElementTree:
    try:
        tree = etree.parse(str(path), _parser())
    except (OSError, etree.XMLSyntaxError) as exc:
        raise RulePackError(f"cannot read {_rel(path, root)}: {exc}", source=str(root)) from None
    info: Any = tree.docinfo
    if info.doctype or info.internalDTD is not None:
        raise RulePackError(
            f"{_rel(path, root)}: a DOCTYPE is not allowed in a rule pack file (entities could "
            "read other files)",
            source=str(root),
        )
    return tree


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _inside(href: str, base: Path, root: Path) -> Path | None:
    """The file `href` names, relative to `base`'s folder, if it lies inside `root`."""
    parts = urlsplit(href)
    if parts.scheme and len(parts.scheme) > 1:  # a one-letter "scheme" is a Windows drive
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return None
        target = Path(unquote(parts.path))
    else:
        target = base.parent / unquote(parts.path)
    if parts.query:
        return None
    resolved = target.resolve()
    return resolved if resolved.is_relative_to(root) else None


def _refuse(path: Path, root: Path, line: int | None, what: str) -> RulePackError:
    where = f"{_rel(path, root)}, line {line}" if line else _rel(path, root)
    return RulePackError(f"{where}: {what}; see README 'What a rule pack may do'", source=str(root))


# Extension functions: Saxon's own namespace and the reflexive Java / .NET ones. Saxon refuses
# them with external functions off; a pack is refused before, with a clear message.
_EXTENSION_URI = re.compile(r"^(?:java:|clitype:|http://saxon\.sf\.net/)")
_EXTENSION_EQNAME = re.compile(
    r"Q\{\s*(?:java:|clitype:|http://saxon\.sf\.net/)[^}]*\}\s*([\w.\-]+)\s*[(#]"
)


def _extension_call(prefixes: frozenset[str]) -> re.Pattern[str] | None:
    if not prefixes:
        return None
    names = "|".join(re.escape(p) for p in sorted(prefixes))
    return re.compile(rf"(?<![\w.\-])(?:{names}):([\w.\-]+)\s*[(#]")


def _scan_expression(
    text: str,
    path: Path,
    root: Path,
    line: int | None,
    extension: re.Pattern[str] | None = None,
) -> None:
    for pattern in (_EXTENSION_EQNAME, extension):
        found = pattern.search(text) if pattern is not None else None
        if found is not None:
            raise _refuse(
                path, root, line, f"the extension function {found.group(0).rstrip('(#')}"
                "() is not allowed in a rule pack"
            )
    for match in _CALL.finditer(text):
        name, opener = match.group(1), match.group(2)
        if name in _FORBIDDEN_FUNCTIONS:
            raise _refuse(path, root, line, f"the function {name}() is not allowed in a rule pack")
        literal = _LITERAL_CALL.match(text, match.end(2) - 1) if opener == "(" else None
        if literal is None:
            raise _refuse(
                path,
                root,
                line,
                f"{name}() may only read a file of the pack named by one string literal",
            )
        href = literal.group("href")
        if href and _inside(href, path, root) is None:
            raise _refuse(path, root, line, f"{name}('{href}') reads outside the pack's folder")


def _parse_once(path: Path, root: Path, seen: set[Path]) -> etree._ElementTree | None:
    """The parsed file (resolved `path`), or None when this check has been through it already:
    imports and includes may form cycles."""
    if path in seen:
        return None
    seen.add(path)
    return _parse(path, root)


def check_stylesheet(path: Path, root: Path, seen: set[Path] | None = None) -> None:
    """Refuse a pack stylesheet (and what it imports or includes) that could read outside
    `root`, reach the environment, write files or evaluate dynamic XPath; see the module doc."""
    path, root, seen = path.resolve(), root.resolve(), set() if seen is None else seen
    tree = _parse_once(path, root, seen)
    if tree is None:
        return
    elements = [e for e in tree.iter() if isinstance(e.tag, str)]
    # Text value templates are on somewhere if any element says so: under whatever name
    # (expand-text, xsl:expand-text, the shadow _expand-text) and whatever value.
    text_templates = any(
        etree.QName(str(name)).localname in ("expand-text", "_expand-text")
        for e in elements
        for name in e.attrib
    )
    extension = _extension_call(
        frozenset(
            prefix
            for e in elements
            for prefix, uri in e.nsmap.items()
            if prefix and _EXTENSION_URI.match(uri)
        )
    )
    for element in elements:
        line = _line(element)
        in_xslt = _ns(element) == XSLT_NS
        local = etree.QName(element).localname
        if in_xslt and local in _FORBIDDEN_INSTRUCTIONS:
            raise _refuse(path, root, line, f"xsl:{local} is not allowed in a rule pack")
        if _XML_BASE in element.attrib:
            raise _refuse(path, root, line, "an xml:base attribute is not allowed in a rule pack")
        if in_xslt and local in ("import", "include"):
            if any(str(name).startswith("_") for name in element.attrib):
                raise _refuse(path, root, line, f"a computed xsl:{local} (shadow attribute)")
            href = element.get("href", "")
            target = _inside(href, path, root) if href else None
            if target is None or not target.is_file():
                raise _refuse(
                    path, root, line, f"xsl:{local} of '{href}', not a file inside the pack"
                )
            check_stylesheet(target, root, seen)
        for key, raw in element.attrib.items():
            name, value = str(key), str(raw)
            whole = in_xslt or name.startswith(f"{{{XSLT_NS}}}")
            if whole or "{" in value.replace("{{", ""):
                _scan_expression(value, path, root, line, extension)
        if text_templates:
            for text in (element.text, element.tail):
                if text and "{" in text.replace("{{", ""):
                    _scan_expression(text, path, root, line, extension)


def check_schema(path: Path, root: Path, seen: set[Path] | None = None) -> None:
    """Refuse a pack XSD that includes, imports or redefines a file outside `root`."""
    path, root, seen = path.resolve(), root.resolve(), set() if seen is None else seen
    tree = _parse_once(path, root, seen)
    if tree is None:
        return
    for element in tree.iter(f"{{{XSD_NS}}}include", f"{{{XSD_NS}}}import",
                             f"{{{XSD_NS}}}redefine", f"{{{XSD_NS}}}override"):
        location = element.get("schemaLocation")
        local = etree.QName(element).localname
        if location is None:
            continue  # an import by namespace only reads nothing
        target = _inside(location, path, root)
        if target is None or not target.is_file():
            raise _refuse(
                path,
                root,
                _line(element),
                f"xs:{local} of '{location}', not a file inside the pack",
            )
        check_schema(target, root, seen)


def _line(element: etree._Element) -> int | None:
    line = element.sourceline
    return line if isinstance(line, int) else None


def _ns(element: etree._Element) -> str | None:
    return etree.QName(element).namespace
