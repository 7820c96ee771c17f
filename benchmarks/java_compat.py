"""A copy of an official Schematron XSLT that the Java reference's Saxon-HE 9.9 can compile.

Benchmark-only (never used by facturflow). Saxon-HE 9.9 refuses the XSLT 3.0 match patterns of
`BR-FR-Flux2-Schematron-UBL.xslt` that have a parenthesised union as a path step after another
step, e.g. `(ubl:Invoice | cn:CreditNote)[p]/(cac:InvoiceLine | cac:CreditNoteLine)/cac:X[q]`
("Cannot convert the expression ... to a pattern"); Saxon 12 (saxonche, what facturflow runs)
accepts them.
`compatible_copy()` writes, from the unmodified official file, a copy in which each such
`xsl:template/@match` is distributed into a top-level union of plain paths:

    (A|B)[p]/(C|D)/E[q]  ->  A[p]/C/E[q] | A[p]/D/E[q] | B[p]/C/E[q] | B[p]/D/E[q]

Nothing else changes (the same templates, modes, priorities, SVRL text: the fired rule's
`context` attribute still shows the official pattern). The two forms match the same nodes as long
as a predicate on a parenthesised group is not positional (`(A|B)[1]` picks the first of the
union, `A[1] | B[1]` the first of each): such predicates are refused (UnsupportedPattern). A
template without `priority` gets the official pattern's default priority (0.5) written out, since
the alternatives of a union would otherwise each get their own. The copy is cached under
~/.cache/facturflow-bench/compat, keyed by the official file's sha256 and this module's source.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import sys
from pathlib import Path

from lxml import etree

from facturflow.validation.derive import xpath_scan

XSL = "http://www.w3.org/1999/XSL/Transform"
_SOURCE = Path(__file__).resolve()


class UnsupportedPattern(ValueError):
    """A pattern this rewriter does not know to rewrite without changing what it matches."""


# ------------------------------------------------------------------------- lexical helpers

def _scan(text: str) -> list[tuple[int, str, int]]:
    """(index, character, depth) outside string literals and comments: the library's lexer
    (facturflow.validation.derive.xpath_scan), its errors as UnsupportedPattern."""
    try:
        return xpath_scan(text)
    except ValueError as exc:
        raise UnsupportedPattern(str(exc)) from None


def split_union(text: str) -> list[str]:
    """The operands of the top-level `|` union of an expression (brackets and quotes aware)."""
    parts, start = [], 0
    for i, c, depth in _scan(text):
        if depth == 0 and c == "|":
            if text[i + 1 : i + 2] == "|" or text[i - 1 : i] == "|":
                raise UnsupportedPattern(f"'||' outside a predicate in {text!r}")
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    if any(not p for p in parts):
        raise UnsupportedPattern(f"empty union operand in {text!r}")
    for p in parts:  # the keyword forms of the set operators, at depth 0
        if re.search(r"(?<![\w.:-])(union|intersect|except)(?![\w.:-])", _depth0_text(p)):
            raise UnsupportedPattern(f"keyword set operator in {text!r}")
    return parts


def _depth0_text(text: str) -> str:
    """The text with everything inside brackets, strings and comments blanked out."""
    kept = [" "] * len(text)
    for i, c, depth in _scan(text):
        if depth == 0 and c not in "([{":
            kept[i] = c
    return "".join(kept)


def split_steps(path: str) -> list[tuple[str, str]]:
    """A relative or absolute path as (separator, step) pairs, the separator being '', '/' or
    '//' (the first pair's separator is '' for a relative path, '/' or '//' for an absolute
    one). `/` and `//` inside predicates, parentheses and strings are not separators."""
    path = path.strip()
    slashes = [i for i, c, depth in _scan(path) if depth == 0 and c == "/"]
    pairs: list[tuple[str, str]] = []
    sep, start, k = "", 0, 0
    while k < len(slashes):
        at = slashes[k]
        run = 2 if k + 1 < len(slashes) and slashes[k + 1] == at + 1 else 1
        step = path[start:at].strip()
        if step:
            pairs.append((sep, step))
        elif start != 0 or at != 0:  # only a leading '/' or '//' has no step before it
            raise UnsupportedPattern(f"empty step in {path!r}")
        sep, start, k = "/" * run, at + run, k + run
    last = path[start:].strip()
    if last:
        pairs.append((sep, last))
    elif path != "/":
        raise UnsupportedPattern(f"empty step in {path!r}")
    else:
        pairs.append(("/", ""))  # the pattern "/" (the document node)
    return pairs


def _group(step: str) -> tuple[str, str] | None:
    """(inner expression, trailing predicates) when the step is a parenthesised expression,
    else None. The trailing part must be predicates only."""
    if not step.startswith("("):
        return None
    scanned = _scan(step)
    close = next(i for i, c, depth in scanned if c == ")" and depth == 0)
    rest = step[close + 1 :].strip()
    for i, c, depth in scanned:
        if i > close and depth == 0 and not c.isspace() and c not in "[]":
            raise UnsupportedPattern(f"a parenthesised step followed by {rest!r}")
    return step[1:close], rest


_BOOLEAN_OP = re.compile(
    r"!=|<=|>=|=(?!>)|<|>|(?<![\w.:-])(?:and|or|eq|ne|lt|le|gt|ge|is)(?![\w.:-])"
)
_NOT_SIMPLE = re.compile(r",|(?<![\w.:-])(?:return|then|else|let|for)(?![\w.:-])")
_BOOLEAN_CALL = re.compile(
    r"(?:fn:)?(?:not|exists|empty|boolean|true|false|contains|starts-with|ends-with|matches)\s*\("
)
_NAME = r"(?:\*|[A-Za-z_][\w.-]*)"
_PATH_STEP = re.compile(rf"(?:@|[a-z-]+::)?(?:{_NAME}(?::{_NAME})?)|\.|\.\.")


def _predicates(text: str) -> list[str]:
    """The contents of a sequence of predicates `[a][b]...`."""
    out, start = [], 0
    for i, c, depth in _scan(text):
        if depth == 0 and c == "[":
            start = i + 1
        elif depth == 0 and c == "]":
            out.append(text[start:i])
    return out


def _evidently_boolean(pred: str) -> bool:
    """Whether a predicate's value is certainly not a number (so that it filters by effective
    boolean value, never by position): a comparison or a logical operator at its top level, a
    call of a boolean function as a whole, or a plain path of name tests (nodes)."""
    scanned = _scan(pred)
    top = "".join(c for _, c, depth in scanned if depth == 0 and c not in "()[]{}")
    if _NOT_SIMPLE.search(top):
        return False
    if _BOOLEAN_OP.search(top):
        return True
    stripped = pred.strip()
    call = _BOOLEAN_CALL.match(stripped)
    if call:
        closes = [i for i, c, depth in _scan(stripped) if c == ")" and depth == 0]
        return closes == [len(stripped) - 1]
    if any(c in "({" and depth == 0 for _, c, depth in scanned):
        return False  # a function call or a parenthesised expression: could be anything
    steps = [t.strip() for t in top.split("/")]
    return any(steps) and all(not t or _PATH_STEP.fullmatch(t) for t in steps)


def _check_not_positional(predicates: str, where: str) -> None:
    """A predicate moved from a parenthesised group onto each alternative must not depend on
    position in the group: it must be evidently boolean and must not call position() or last()
    anywhere."""
    for pred in _predicates(predicates):
        if re.search(r"\b(?:position|last)\s*\(", pred):
            raise UnsupportedPattern(f"positional predicate [{pred}] on {where!r}")
        if not _evidently_boolean(pred):
            raise UnsupportedPattern(
                f"predicate [{pred}] on {where!r} is not evidently boolean (it could be numeric)"
            )


# ------------------------------------------------------------------------- the rewrite


def _expand_path(path: str) -> list[str]:
    """Every plain path a path with parenthesised union steps stands for, in order."""
    pairs = split_steps(path)
    choices: list[list[str]] = []
    for n, (_sep, step) in enumerate(pairs):
        group = _group(step)
        if group is None:
            choices.append([step])
            continue
        inner, predicates = group
        if predicates:
            _check_not_positional(predicates, step)
        alternatives = []
        for operand in split_union(inner):
            for alternative in _expand_path(operand):
                if n > 0 and alternative.startswith("/"):
                    raise UnsupportedPattern(f"absolute path {alternative!r} inside {path!r}")
                alternatives.append(alternative + predicates)
        choices.append(alternatives)
    return ["".join(f"{sep}{step}" for (sep, _), step in zip(pairs, combo, strict=True))
            for combo in itertools.product(*choices)]


def distribute(pattern: str) -> str:
    """The pattern with every parenthesised union step distributed into a top-level union."""
    return " | ".join(alt for operand in split_union(pattern) for alt in _expand_path(operand))


def refused_by_saxon_99(pattern: str) -> bool:
    """Whether the pattern has what Saxon-HE 9.9 refuses: a parenthesised union as a step after
    another step (`a/(b|c)`, `a/(b|c)/d`). Found by trial on 9.9.1: it compiles `(a|b)[p]/c`,
    `(a/b|c/d)[p]/e`, `/(a|b)/c`, `//(b|c)`, `a//(b|c)` and `a/(b)`; the rewrite also covers
    `a//(b|c)` (safe, and not worth a special case)."""
    for operand in split_union(pattern):
        for n, (_sep, step) in enumerate(split_steps(operand)):
            group = _group(step)
            if group is None:
                continue
            if (n > 0 and len(split_union(group[0])) > 1) or refused_by_saxon_99(group[0]):
                return True
    return False


def rewrite_stylesheet(xslt: bytes) -> tuple[bytes, list[tuple[int, str, str]]]:
    """The stylesheet with the refused match patterns distributed, and the list of
    (line, official pattern, rewritten pattern)."""
    tree = etree.fromstring(xslt, etree.XMLParser(remove_blank_text=False, huge_tree=True))
    changes: list[tuple[int, str, str]] = []
    for template in tree.iter(f"{{{XSL}}}template"):
        match = template.get("match")
        if match is None or not refused_by_saxon_99(match):
            continue
        rewritten = distribute(match)
        template.set("match", rewritten)
        if template.get("priority") is None:
            template.set("priority", "0.5")  # the official (non-union) pattern's default
        line = template.sourceline
        changes.append((line if isinstance(line, int) else 0, match, rewritten))
    out = etree.tostring(tree.getroottree(), xml_declaration=True, encoding="UTF-8")
    return out, changes


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facturflow-bench" / "compat"


def rewriter_version() -> str:
    """Changes with this file and with the library's lexer it uses (derive/xpath.py)."""
    from facturflow.validation.derive import xpath

    digest = hashlib.sha256(_SOURCE.read_bytes())
    digest.update(Path(xpath.__file__).read_bytes())
    return digest.hexdigest()[:12]


def compatible_copy(official: Path) -> Path:
    """The cached Saxon-9.9-compatible copy of an official stylesheet (written on first use);
    the official path itself when nothing in it needs rewriting."""
    data = official.read_bytes()
    key = f"{hashlib.sha256(data).hexdigest()[:16]}-{rewriter_version()}"
    out = cache_dir() / key / official.name
    if out.exists():
        return out
    rewritten, changes = rewrite_stylesheet(data)
    if not changes:
        return official
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    tmp.write_bytes(rewritten)
    tmp.replace(out)  # atomic publish
    return out


def java_stylesheets(sheets: tuple[Path, ...] | list[Path]) -> tuple[Path, ...]:
    """The stylesheets to give the Java reference for `sheets`: the compatible copy of each that
    needs one (today BR-FR-Flux2-Schematron-UBL.xslt), the official file otherwise, and also when
    the copy cannot be made (a pattern this module does not know: the reference then reports the
    official file among those it cannot compile, as before the copy existed)."""
    out = []
    for sheet in sheets:
        if sheet.name in NEEDS_COPY:
            try:
                sheet = compatible_copy(sheet)
            except UnsupportedPattern as exc:
                print(f"benchmarks: no Saxon-9.9 copy of {sheet.name}: {exc}", file=sys.stderr)
        out.append(sheet)
    return tuple(out)


NEEDS_COPY = frozenset({"BR-FR-Flux2-Schematron-UBL.xslt"})
