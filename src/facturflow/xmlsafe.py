"""The one hardened XML parser: every XML that facturflow reads goes through `parse_xml`.

Invoices never need a DTD, so any DOCTYPE is refused before parsing: this closes entity
expansion (billion laughs, quadratic blow-up) and external entities (XXE) at the door, whatever
libxml2 would do with them. The parser itself also never loads a DTD, resolves entities, reads
the network or processes XInclude, as a second line of defence.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from lxml import etree

from .errors import EmptyInputError, InputTooLargeError, MalformedXMLError

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_DEPTH = 200

_PROLOG_SCAN = 64 * 1024
_DOCTYPE = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_:]")
_XML_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


@dataclass(frozen=True)
class Limits:
    """Bounds applied to every XML input."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


DEFAULT_LIMITS = Limits()


class _NoResolver(etree.Resolver):
    """Refuses every external resource (DTD, entity, XInclude target)."""

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> None:
        raise MalformedXMLError(f"external resource refused: {system_url or public_id}")


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


def _to_utf8(data: bytes, source: str | None) -> bytes:
    """Normalise the encoding so that later stages only ever see UTF-8 without a BOM.

    UTF-16/32 with a BOM are transcoded; a UTF-8 BOM is dropped (saxonche rejects it).
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
                    f"bytes are not valid {codec.upper()} despite the byte order mark: {exc.reason}",
                    source=source,
                ) from None
            encoded = text.encode("utf-8")
            return _XML_DECL_ENCODING.sub(
                lambda m: m.group(0).replace(m.group(1), b"UTF-8"), encoded, count=1
            )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if data[:2] in (b"<\x00", b"\x00<"):
        raise MalformedXMLError("UTF-16 text without a byte order mark", source=source)
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


def parse_xml(
    data: bytes, *, source: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> etree._ElementTree:
    """Parse bytes into an lxml tree under the hardening rules and `limits`.

    Raises EmptyInputError, InputTooLargeError or MalformedXMLError; never anything else.
    """
    if not data or not data.strip():
        raise EmptyInputError("the input is empty", source=source)
    if len(data) > limits.max_bytes:
        raise InputTooLargeError(
            f"{len(data)} bytes exceeds the limit of {limits.max_bytes} bytes", source=source
        )
    data = normalise_xml_bytes(data, source=source)
    try:
        root = etree.fromstring(data, _new_parser())
    except etree.XMLSyntaxError as exc:
        line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise MalformedXMLError(f"not well-formed XML{line}: {exc.msg}", source=source) from None
    except (ValueError, LookupError) as exc:
        raise MalformedXMLError(f"cannot decode the XML: {exc}", source=source) from None
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise MalformedXMLError("a DOCTYPE is not allowed in an invoice", source=source)
    if root.xpath("boolean(" + "/*" * (limits.max_depth + 1) + ")"):
        raise InputTooLargeError(
            f"elements nested deeper than {limits.max_depth} levels", source=source
        )
    return tree


def serialize(tree: etree._ElementTree) -> bytes:
    """UTF-8 bytes of a tree, with an XML declaration and no BOM."""
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
