"""XPath text helpers of the rewrites: a lexer, top-level splitting, name steps, patterns."""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

XSL = "http://www.w3.org/1999/XSL/Transform"
_X = f"{{{XSL}}}"


# XSLT attributes that hold XPath expressions (literal result elements' attributes never do).
_XPATH_ATTRS = ("test", "select", "use", "value")


_NCNAME = r"[A-Za-z_][\w.-]*"
_LAST_STEP = re.compile(rf"^(?P<at>@?)(?:(?P<prefix>{_NCNAME}):)?(?P<local>{_NCNAME}|\*)$")


_OPEN = {"(": ")", "[": "]", "{": "}"}


def xpath_scan(text: str) -> list[tuple[int, str, int]]:
    """(index, character, depth) of every character of an XPath expression or pattern outside
    its string literals and comments; depth counts the (), [] and {} around the character (a
    bracket's own pair excluded). Raises ValueError on unbalanced text. The one lexer of the
    rewrites (and of benchmarks/java_compat.py)."""
    out: list[tuple[int, str, int]] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "\"'":  # a string literal; a doubled quote is an escaped quote
            j = i + 1
            while True:
                j = text.find(c, j)
                if j < 0:
                    raise ValueError(f"unterminated string literal in {text!r}")
                if text[j + 1 : j + 2] != c:
                    break
                j += 2
            i = j + 1
            continue
        if text.startswith("(:", i):  # a comment (they nest)
            level, j = 1, i + 2
            while level:
                if j >= len(text):
                    raise ValueError(f"unterminated comment in {text!r}")
                if text.startswith("(:", j):
                    level, j = level + 1, j + 2
                elif text.startswith(":)", j):
                    level, j = level - 1, j + 2
                else:
                    j += 1
            i = j
            continue
        if c in _OPEN:
            out.append((i, c, len(stack)))
            stack.append(_OPEN[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                raise ValueError(f"unbalanced {c!r} at {i} in {text!r}")
            out.append((i, c, len(stack)))
        else:
            out.append((i, c, len(stack)))
        i += 1
    if stack:
        raise ValueError(f"unclosed bracket in {text!r}")
    return out


def _top_level(text: str) -> list[bool]:
    """Per character: True when it is outside string literals, comments, brackets and
    parentheses (an opening bracket or parenthesis itself counts as outside, its closing one
    does not). Raises ValueError on unbalanced text."""
    out = [False] * len(text)
    for i, c, depth in xpath_scan(text):
        out[i] = depth == 0 and c not in ")]}"
    return out


def _last_step_tests(pattern: str) -> list[tuple[bool, str | None, str]] | None:
    """(attribute?, prefix, local name or "*") of the last step of each union branch of a
    pattern, or None when a branch's last step is not a plain name test.

    A node matches the pattern only if it passes one of these tests: earlier steps and
    predicates only restrict further (what they say does not matter here).
    """
    try:
        top = _top_level(pattern)
    except ValueError:
        return None
    outside = "".join(ch if ok else " " for ch, ok in zip(pattern, top, strict=True))
    if re.search(r"\b(union|intersect|except)\b|::", outside):
        return None
    tests = []
    start = 0
    for cut in [i for i, ch in enumerate(outside) if ch == "|"] + [len(pattern)]:
        branch, mask = pattern[start:cut], outside[start:cut]
        start = cut + 1
        step_at = mask.rfind("/") + 1
        step, mask = branch[step_at:], mask[step_at:]
        while step.rstrip().endswith("]"):  # drop the trailing predicates
            open_at = mask.rfind("[")
            if open_at < 0:
                return None
            step, mask = step[:open_at], mask[:open_at]
        m = _LAST_STEP.match(step.strip())
        if m is None or (m["prefix"] and m["local"] == "*"):
            return None
        tests.append((bool(m["at"]), m["prefix"], m["local"]))
    return tests


def _outside_predicates(xpath: str) -> str:
    """The text of an XPath expression with its [...] parts blanked (not its (...) parts)."""
    out = []
    depth = 0
    quote = ""
    for ch in xpath:
        if quote:
            quote = "" if ch == quote else quote
            out.append(" ")
            continue
        if ch in "'\"":
            quote = ch
        if ch == "[":
            depth += 1
        out.append(ch if depth == 0 else " ")
        if ch == "]":
            depth = max(0, depth - 1)
    return "".join(out)


_QNAME_STEP = re.compile(rf"^(?P<prefix>{_NCNAME}):(?P<local>{_NCNAME})$")


_MAP_NS = "Q{http://www.w3.org/2005/xpath-functions/map}"


_RELATIVE_PATH = re.compile(r"^[\w.:*@|/ -]+$")


_QN = rf"{_NCNAME}:{_NCNAME}"


# A predicate that is a boolean, cannot raise an error and does not depend on position: names,
# attributes, string literals, node-valued variables, =, !=, and, or, not(), and predicates of
# the same (their focus is their own step's, the same wherever the step is evaluated).
_PLAIN_PREDICATE = re.compile(
    rf"^(?:\s|@?{_QN}|@{_NCNAME}|/|'[^']*'|\"[^\"]*\"|!?=|\(|\)|\[|\]|,|\.\.|\$[\w.-]+"
    rf"|\band\b|\bor\b|\bnot\()+$"
)
_NODE_SELECT = re.compile(r"^[\w.:@/|()\s-]+$")


def _xpath_attributes(root: etree._Element) -> Iterator[tuple[etree._Element, str, str]]:
    """The XPath-holding attributes of XSLT instructions (literal result elements' attributes,
    such as svrl:failed-assert/@test, are output, not code)."""
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith(_X):
            for attr in _XPATH_ATTRS:
                value = element.get(attr)
                if value:
                    yield element, attr, value
