"""The one hardened XML parser: every XML that facturflow reads goes through `parse_xml`.

Invoices never need a DTD, so any DOCTYPE is refused before parsing: this closes entity
expansion (billion laughs, quadratic blow-up) and external entities (XXE) at the door, whatever
libxml2 would do with them. The parser itself also never loads a DTD, resolves entities, reads
the network or processes XInclude, as a second line of defence.

Memory is bounded before parsing: the byte size, and the number of markup items (a cheap upper
bound on elements, attributes, comments and processing instructions, each of which costs libxml2
a few hundred bytes) are checked first, so the tree of any accepted input stays well under 1 GB.
Every piece of the input that an error message quotes goes through `clip`, so that a hostile file
cannot flood a log or a report.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass

from lxml import etree

from .errors import EmptyInputError, InputError, InputTooLargeError, MalformedXMLError

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_DEPTH = 200
# About 220 bytes of libxml2 memory per markup item: 1 million items stay under 250 MB of tree.
# Real invoices carry one item per 25-140 bytes, so this admits invoices of 25 MB and more.
DEFAULT_MAX_NODES = 1_000_000
MAX_ECHO = 200
TRUNCATED = "…[truncated]"

_PROLOG_SCAN = 64 * 1024
_DOCTYPE = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_:]")
_XML_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ANY_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([^"'>]{0,64})["']""")
_BLANK = re.compile(rb"[ \t\r\n]*")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_WHITESPACE = re.compile(r"\s+")
_LIMIT_MESSAGES = (
    "Excessive depth",
    "Resource limit exceeded",
    "Name too long",
    "too long",
    "Huge input lookup",
    "Maximum entity amplification",
)
_HUGE_HINT = re.compile(r",?\s*(use|try) XML_PARSE_HUGE( option)?", re.IGNORECASE)
_UTF8_NAMES = {"utf-8", "utf8"}
_WIDE_NAMES = ("utf-16", "utf16", "utf-32", "utf32", "ucs-2", "ucs2", "ucs-4", "ucs4")
# Declared single-byte encodings: bytes so labelled that are valid UTF-8 were mislabelled.
_SINGLE_BYTE = re.compile(
    r"^(iso[-_ ]?8859[-_ ]?\d+|latin[-_ ]?\d|l\d|windows[-_ ]?125\d|cp125\d|cp1252|"
    r"us[-_ ]?ascii|ascii|cp850|mac[-_ ]?roman)$"
)


def clip(text: object, limit: int = MAX_ECHO) -> str:
    """One line of at most `limit` characters (plus a marker) for quoting input in messages."""
    value = _WHITESPACE.sub(" ", str(text)).strip()
    value = "".join(c if c.isprintable() else "\ufffd" for c in value[: limit + 1])
    if len(value) > limit:
        return value[:limit] + TRUNCATED
    return value


@dataclass(frozen=True)
class Limits:
    """Bounds applied to every XML input."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_nodes: int = DEFAULT_MAX_NODES
    # (field, option) pairs: the command-line option that sets each limit ("max_bytes",
    # "--max-size"), named by the error when an input exceeds it. Empty for library callers,
    # whose errors name the limit and its value only.
    options: tuple[tuple[str, str], ...] = ()

    def too_large(self, field: str, found: str, plain: str,
                  source: str | None) -> InputTooLargeError:
        """The error for an input over one limit: `found` says what it has ("12 bytes"),
        `plain` is the message when no option sets the limit (library callers)."""
        option = dict(self.options).get(field)
        if option is None:
            return InputTooLargeError(plain, source=source)
        value = getattr(self, field)
        shown = _human_size(value) if field == "max_bytes" else str(value)
        return InputTooLargeError(f"{found} exceeds {option} {shown} (raise it with {option})",
                                  source=source)


def _human_size(size: int) -> str:
    """A byte count as the size options take it: 50 MB, 1 GB, 1536 KB, 1000 bytes."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


DEFAULT_LIMITS = Limits()


class _NoResolver(etree.Resolver):
    """Refuses every external resource (DTD, entity, XInclude target)."""

    # lxml calls resolve(url, public_id, context); lxml-stubs omit the context argument.
    def resolve(  # type: ignore[override]
        self, system_url: str | None, public_id: str | None, context: object
    ) -> None:
        raise MalformedXMLError(f"external resource refused: {clip(system_url or public_id)}")


def _new_parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )
    parser.resolvers.add(_NoResolver())
    return parser


def _declared_encoding(data: bytes) -> str | None:
    match = _ANY_DECL_ENCODING.match(data)
    return match.group(1).decode("ascii", "replace").strip() if match else None


def _relabel_utf8(encoded: bytes) -> bytes:
    return _XML_DECL_ENCODING.sub(
        lambda m: m.group(0).replace(m.group(1), b"UTF-8"), encoded, count=1
    )


def _to_utf8(data: bytes, source: str | None) -> bytes:
    """Normalise the encoding so that later stages only ever see UTF-8 without a BOM.

    A byte order mark decides the encoding (UTF-16/32 are transcoded, a UTF-8 BOM is dropped,
    since saxonche rejects it) and the declaration is rewritten to agree with it. Without a BOM,
    a declaration that cannot describe the bytes is refused with a message naming both.
    """
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise MalformedXMLError(
                    f"bytes are not valid {codec.upper()} despite the byte order mark: "
                    f"{exc.reason} at byte {exc.start}",
                    source=source,
                ) from None
            return _relabel_utf8(text.encode("utf-8"))
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        declared = _declared_encoding(data)
        if declared is not None and declared.lower() not in _UTF8_NAMES:
            # The BOM wins (XML 1.0 appendix F), provided the bytes really are UTF-8.
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedXMLError(
                    f"starts with a UTF-8 byte order mark but declares encoding "
                    f"{clip(declared, 64)!r}, and the bytes are not valid UTF-8",
                    source=source,
                ) from None
            data = _relabel_utf8(data)
        return data
    if data[:2] in (b"<\x00", b"\x00<"):
        raise MalformedXMLError("UTF-16 text without a byte order mark", source=source)
    declared = _declared_encoding(data)
    if declared is None:
        return data
    lowered = declared.lower()
    if lowered.startswith(_WIDE_NAMES):
        raise MalformedXMLError(
            f"declares encoding {clip(declared, 64)!r} but the bytes are 8-bit text without a "
            "byte order mark: fix the encoding declaration (most likely UTF-8)",
            source=source,
        )
    if _SINGLE_BYTE.match(lowered) and _NON_ASCII.search(data):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return data  # genuinely single-byte text: libxml2 decodes it as declared
        raise MalformedXMLError(
            f"declares encoding {clip(declared, 64)!r} but the bytes are UTF-8 (accented "
            "letters would be misread): fix the encoding declaration",
            source=source,
        )
    return data


def _check_prolog(data: bytes, source: str | None) -> None:
    head = data[:_PROLOG_SCAN]
    first = _FIRST_ELEMENT.search(head)
    prolog = head[: first.start()] if first else head
    if _DOCTYPE.search(prolog):
        raise MalformedXMLError(
            "a DOCTYPE or ENTITY declaration is not allowed in an invoice "
            "(refused to protect against entity expansion and external entities)",
            source=source,
        )


def normalise_xml_bytes(data: bytes, *, source: str | None = None) -> bytes:
    """Return the bytes as UTF-8 without BOM, refusing DOCTYPEs; no parsing."""
    data = _to_utf8(data, source)
    _check_prolog(data, source)
    return data


def _syntax_error(exc: etree.XMLSyntaxError, data: bytes, source: str | None) -> InputError:
    """Turn a libxml2 error into a one-line message that quotes at most MAX_ECHO characters."""
    message = _HUGE_HINT.sub("", exc.msg or "syntax error")
    where = ""
    if exc.position and exc.position[0]:
        where = f" (line {exc.position[0]}, column {exc.position[1]})"
    message = re.sub(r",? line \d+, column \d+\s*$", "", message.strip())
    if any(marker in message for marker in _LIMIT_MESSAGES):
        return InputTooLargeError(
            f"exceeds the XML parser's limits{where}: {clip(message)}", source=source
        )
    if "Invalid bytes in character encoding" in message or "not proper UTF-8" in message:
        declared = _declared_encoding(data)
        encoding = (
            f"the declared encoding {clip(declared, 64)!r}"
            if declared
            else "UTF-8 (no encoding declared, so UTF-8 applies)"
        )
        return MalformedXMLError(
            f"bytes are not valid in {encoding}{where}: fix the encoding declaration or the bytes",
            source=source,
        )
    if message.startswith("Unsupported encoding"):
        return MalformedXMLError(clip(message), source=source)
    return MalformedXMLError(f"not well-formed XML{where}: {clip(message)}", source=source)


@functools.lru_cache(maxsize=8)
def _deeper_than(depth: int) -> etree.XPath:
    """An XPath true when an element lies more than `depth` levels deep (compiled once)."""
    return etree.XPath("boolean(" + "/*" * (depth + 1) + ")")


def parse_xml(
    data: bytes, *, source: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> etree._ElementTree:
    """Parse bytes into an lxml tree under the hardening rules and `limits`.

    Raises EmptyInputError, InputTooLargeError or MalformedXMLError; never anything else.
    """
    if not data or _BLANK.fullmatch(data):
        raise EmptyInputError("the input is empty", source=source)
    if len(data) > limits.max_bytes:
        raise limits.too_large(
            "max_bytes", f"{len(data)} bytes",
            f"{len(data)} bytes exceeds the limit of {limits.max_bytes} bytes", source)
    data = normalise_xml_bytes(data, source=source)
    # '<' opens every element, comment and PI, '=' every attribute: an upper bound on the
    # nodes libxml2 would allocate, checked before it allocates any.
    markup = data.count(b"<") + data.count(b"=")
    if markup > limits.max_nodes:
        found = f"about {markup} markup items (elements, attributes)"
        raise limits.too_large(
            "max_nodes", found, f"{found} exceed the limit of {limits.max_nodes}", source)
    try:
        root = etree.fromstring(data, _new_parser())
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, data, source) from None
    except (etree.LxmlError, ValueError, LookupError) as exc:
        raise MalformedXMLError(f"cannot decode the XML: {clip(exc)}", source=source) from None
    tree = root.getroottree()
    if getattr(tree.docinfo, "doctype", ""):  # lxml-stubs lack DocInfo.doctype
        raise MalformedXMLError("a DOCTYPE is not allowed in an invoice", source=source)
    if _deeper_than(limits.max_depth)(root):
        raise limits.too_large(
            "max_depth", f"elements nested deeper than {limits.max_depth} levels",
            f"elements nested deeper than {limits.max_depth} levels", source)
    return tree


_XML_DECL = re.compile(rb"<\?xml[ \t\r\n][^>]*?\?>")
_DECL_VERSION_1_0 = re.compile(rb"""^<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*["']1\.0["']""")


def utf8_as_is(data: bytes) -> bytes | None:
    """`data` itself (less a UTF-8 byte order mark) when it is already what `serialize` would
    make of its parsed tree for another parser: UTF-8 XML 1.0 without a DOCTYPE; else None.

    For bytes `parse_xml` accepted. A DOCTYPE is refused at parse time, so the infoset any
    parser builds from these bytes is the one lxml built: re-serialising would only cost time
    (0.1-0.2 ms per invoice). Other encodings and XML 1.1 are re-serialised by the caller.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if data[:1] != b"<":
        return None  # leading blanks, UTF-16/32
    declaration = _XML_DECL.match(data)
    if declaration is None:
        return None if data.startswith(b"<?xml") else data
    head = declaration.group(0)
    declared = _declared_encoding(head)
    if not _DECL_VERSION_1_0.match(head) or (
        declared is not None and declared.lower() not in _UTF8_NAMES
    ):
        return None
    return data


def serialize(tree: etree._ElementTree) -> bytes:
    """UTF-8 bytes of a tree, with an XML declaration and no BOM."""
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
