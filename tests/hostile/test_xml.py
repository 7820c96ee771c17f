"""Hostile XML through the one hardened parser, detect and validate: each gives a documented
error or a result, and nothing outside the input is ever read."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from lxml import etree

from facturflow.detection import detect
from facturflow.errors import (
    EmptyInputError,
    InputError,
    InputTooLargeError,
    MalformedXMLError,
)
from facturflow.xmlsafe import TRUNCATED, Limits, clip, parse_xml, utf8_as_is

from .builders import MINIMAL_CII

SECRET = "SECRET-MARKER-7f3a9c"


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [' + "".join(entities) + "]>\n<lolz>&lol9;</lolz>"
    ).encode()


def quadratic_blowup() -> bytes:
    big = "A" * 100_000
    return (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "{big}">]><r>' + "&a;" * 10_000 + "</r>"
    ).encode()


def _xxe_payloads(secret: Path) -> dict[str, bytes]:
    uri = secret.as_uri()
    return {
        "entity-to-file": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{uri}">]><r>&x;</r>'
        ).encode(),
        "external-dtd": f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{uri}"><r/>'.encode(),
        "parameter-entity": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{uri}"> %p;]><r/>'
        ).encode(),
        "public-dtd": f'<!DOCTYPE r PUBLIC "-//X//Y" "{uri}"><r/>'.encode(),
        "lowercase-doctype": b"<!doctype r><r/>",
        "doctype-after-comment-with-markup": (
            f'<?xml version="1.0"?><!-- <a --><!DOCTYPE r [<!ENTITY x SYSTEM "{uri}">]><r>&x;</r>'
        ).encode(),
        "doctype-after-70k-comment": (
            b'<?xml version="1.0"?><!--'
            + b"c" * 70_000
            + b"-->"
            + f'<!DOCTYPE r [<!ENTITY x SYSTEM "{uri}">]><r>&x;</r>'.encode()
        ),
        "doctype-in-utf16": (
            f'\ufeff<!DOCTYPE r [<!ENTITY x SYSTEM "{uri}">]><r>&x;</r>'.encode("utf-16-le")
        ),
    }


DTD_ATTACKS = {"billion-laughs": billion_laughs(), "quadratic-blowup": quadratic_blowup()}


@pytest.mark.parametrize("name", sorted(DTD_ATTACKS))
def test_entity_expansion_is_refused_before_parsing(name: str) -> None:
    with pytest.raises(MalformedXMLError, match="DOCTYPE"):
        parse_xml(DTD_ATTACKS[name], source=name)
    with pytest.raises(MalformedXMLError):
        detect(DTD_ATTACKS[name])


@pytest.mark.parametrize("name", sorted(_xxe_payloads(Path("/x"))))
def test_external_entities_and_dtds_never_read(name: str, secret_file: Path) -> None:
    payload = _xxe_payloads(secret_file)[name]
    with pytest.raises(MalformedXMLError) as caught:
        parse_xml(payload, source="in.xml")
    assert SECRET not in str(caught.value)
    with pytest.raises(MalformedXMLError):
        detect(payload)


def test_second_line_of_defence_parser_resolves_nothing(secret_file: Path) -> None:
    """Even with the DOCTYPE screen bypassed, the parser itself loads no entity or DTD."""
    from facturflow.xmlsafe import _new_parser

    for payload in _xxe_payloads(secret_file).values():
        try:
            root = etree.fromstring(payload, _new_parser())
        except (etree.XMLSyntaxError, MalformedXMLError) as exc:  # refused by the resolver
            assert SECRET not in str(exc)
            continue
        assert SECRET not in etree.tostring(root, encoding="unicode")


def test_xinclude_is_never_processed(secret_file: Path) -> None:
    payload = (
        '<r xmlns:xi="http://www.w3.org/2001/XInclude">'
        f'<xi:include href="{secret_file.as_uri()}" parse="text"/></r>'
    ).encode()
    tree = parse_xml(payload)
    assert SECRET not in etree.tostring(tree, encoding="unicode")
    invoice = MINIMAL_CII.replace(
        b"<ram:Name>Conseil</ram:Name>",
        b'<ram:Name><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="'
        + secret_file.as_uri().encode()
        + b'" parse="text"/></ram:Name>',
    )
    document = detect(invoice)
    assert SECRET.encode() not in document.xml


def test_depth_limit_default_and_configurable() -> None:
    nested = b"<a>" * 201 + b"</a>" * 201
    with pytest.raises(InputTooLargeError, match="deeper than 200"):
        parse_xml(nested)
    parse_xml(b"<a>" * 150 + b"</a>" * 150)
    with pytest.raises(InputTooLargeError, match="deeper than 10"):
        parse_xml(b"<a>" * 11 + b"</a>" * 11, limits=Limits(max_depth=10))


def test_libxml2_depth_limit_is_a_size_error_not_a_syntax_error() -> None:
    with pytest.raises(InputTooLargeError) as caught:
        parse_xml(b"<a>" * 100_000 + b"</a>" * 100_000, limits=Limits(max_depth=100_000))
    assert "XML_PARSE_HUGE" not in caught.value.message


def test_size_limit_default_and_configurable(tmp_path: Path) -> None:
    assert Limits().max_bytes == 100 * 1024 * 1024
    data = MINIMAL_CII
    with pytest.raises(InputTooLargeError, match="limit of 100 bytes"):
        parse_xml(data, limits=Limits(max_bytes=100))
    with pytest.raises(InputTooLargeError):
        detect(data, limits=Limits(max_bytes=100))
    path = tmp_path / "big.xml"
    path.write_bytes(data)
    with pytest.raises(InputTooLargeError):
        detect(path, limits=Limits(max_bytes=100))
    with path.open("rb") as handle, pytest.raises(InputTooLargeError):
        detect(handle, limits=Limits(max_bytes=100))


def test_markup_count_limit_bounds_the_tree_before_parsing() -> None:
    with pytest.raises(InputTooLargeError, match="markup items"):
        parse_xml(b"<r>" + b"<a/>" * 2000 + b"</r>", limits=Limits(max_nodes=1000))
    with pytest.raises(InputTooLargeError, match="markup items"):
        parse_xml(
            b"<r " + b" ".join(b'a%d=""' % i for i in range(2000)) + b"/>",
            limits=Limits(max_nodes=1000),
        )
    parse_xml(b"<r>" + b"<a/>" * 900 + b"</r>", limits=Limits(max_nodes=1000))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"<r>" + b"x" * (11 << 20) + b"</r>", id="huge-text"),
        pytest.param(b'<r a="' + b"x" * (11 << 20) + b'"/>', id="huge-attribute"),
        pytest.param(b"<" + b"n" * 60_000 + b"/>", id="huge-name"),
    ],
)
def test_huge_text_attribute_or_name_is_a_size_error(payload: bytes) -> None:
    with pytest.raises(InputTooLargeError) as caught:
        parse_xml(payload, source="big.xml")
    assert len(caught.value.message) < 400


@pytest.mark.parametrize(
    "payload",
    [b"", b"   \n\t ", b"\xef\xbb\xbf", b"\xef\xbb\xbf  "],
    ids=["empty", "blank", "bom-only", "bom-blank"],
)
def test_empty_inputs(payload: bytes) -> None:
    with pytest.raises((EmptyInputError, MalformedXMLError, InputError)):
        parse_xml(payload)
    with pytest.raises(InputError):
        detect(payload)


def _cii_text(name: str) -> str:
    return MINIMAL_CII.decode().replace("Conseil", name)


@pytest.mark.parametrize(
    ("label", "payload"),
    [
        ("utf-8", _cii_text("Conseil économique").encode("utf-8")),
        ("utf-8-bom", codecs.BOM_UTF8 + _cii_text("Conseil économique").encode("utf-8")),
        (
            "utf-16-le-bom",
            codecs.BOM_UTF16_LE
            + _cii_text("Conseil économique").replace("UTF-8", "UTF-16").encode("utf-16-le"),
        ),
        (
            "utf-16-be-bom",
            codecs.BOM_UTF16_BE
            + _cii_text("Conseil économique").replace("UTF-8", "UTF-16").encode("utf-16-be"),
        ),
        (
            "latin-1-declared",
            _cii_text("Conseil économique").replace("UTF-8", "ISO-8859-1").encode("latin-1"),
        ),
        (
            "utf-8-bom-declaring-latin-1",  # the byte order mark wins (XML 1.0 appendix F)
            codecs.BOM_UTF8
            + _cii_text("Conseil économique").replace("UTF-8", "ISO-8859-1").encode("utf-8"),
        ),
    ],
)
def test_supported_encodings_all_read_the_same(label: str, payload: bytes) -> None:
    document = detect(payload)
    assert document.syntax == "cii"
    assert not document.xml.startswith(codecs.BOM_UTF8)
    assert document.xml.decode("utf-8")  # later stages only ever see UTF-8
    names = document.tree.xpath("//*[local-name()='SpecifiedTradeProduct']/*/text()")
    assert names == ["Conseil économique"], label
    # What Saxon is handed (the input's own bytes when they are UTF-8) reads the same.
    again = etree.fromstring(document.xml)
    assert again.xpath("//*[local-name()='SpecifiedTradeProduct']/*/text()") == names, label


@pytest.mark.parametrize(
    ("payload", "as_is"),
    [
        (b"<a>\xc3\xa9</a>", b"<a>\xc3\xa9</a>"),
        (b'<?xml version="1.0"?><a/>', b'<?xml version="1.0"?><a/>'),
        (
            b"<?xml version='1.0' encoding='utf-8'?>\n<a/>",
            b"<?xml version='1.0' encoding='utf-8'?>\n<a/>",
        ),
        (
            b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?><a/>',
            b'<?xml version="1.0" encoding="UTF-8"?><a/>',
        ),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>', None),  # not UTF-8
        (b'<?xml version="1.0" encoding="US-ASCII"?><a/>', None),  # declaration would mislabel
        (b'<?xml version="1.1"?><a/>', None),  # XML 1.1 rules differ
        (b" <a/>", None),
        (codecs.BOM_UTF16_LE + "<a/>".encode("utf-16-le"), None),
    ],
)
def test_utf8_bytes_are_handed_on_as_they_are(payload: bytes, as_is: bytes | None) -> None:
    assert utf8_as_is(payload) == as_is
    if as_is is None:
        return
    tree = parse_xml(payload)
    assert etree.tostring(etree.fromstring(as_is), method="c14n") == etree.tostring(
        tree, method="c14n"
    )


@pytest.mark.parametrize(
    ("label", "payload", "expected"),
    [
        (
            "utf-8-bytes-declared-latin-1",
            _cii_text("é").replace("UTF-8", "ISO-8859-1").encode("utf-8"),
            "declares encoding 'ISO-8859-1' but the bytes are UTF-8",
        ),
        (
            "latin-1-bytes-declared-utf-8",
            _cii_text("é").encode("latin-1"),
            "not valid in the declared encoding 'UTF-8'",
        ),
        (
            "latin-1-bytes-undeclared",
            _cii_text("é").replace(' encoding="UTF-8"', "").encode("latin-1"),
            "no encoding declared",
        ),
        (
            "8-bit-declared-utf-16",
            _cii_text("e").replace("UTF-8", "UTF-16").encode("utf-8"),
            "declares encoding 'UTF-16' but the bytes are 8-bit",
        ),
        (
            "utf-16-without-bom",
            _cii_text("e").replace("UTF-8", "UTF-16").encode("utf-16-le"),
            "UTF-16 text without a byte order mark",
        ),
        (
            "utf-16-bom-odd-bytes",
            codecs.BOM_UTF16_LE + _cii_text("e").encode("utf-16-le") + b"\x00",
            "not valid UTF-16 despite the byte order mark",
        ),
        (
            "unknown-encoding",
            _cii_text("e").replace("UTF-8", "X-NO-SUCH").encode(),
            "X-NO-SUCH",
        ),
    ],
)
def test_encoding_mismatch_gives_an_error_naming_it(
    label: str, payload: bytes, expected: str
) -> None:
    with pytest.raises(MalformedXMLError) as caught:
        detect(payload)
    assert expected in caught.value.message, label


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(MINIMAL_CII.replace(b"Conseil", b"Con\x00seil"), id="nul-in-text"),
        pytest.param(MINIMAL_CII + b"\x00", id="nul-at-end"),
        pytest.param(b"\x00" + MINIMAL_CII, id="nul-at-start"),
        pytest.param(MINIMAL_CII.replace(b"<ram:ID>", b"<ram:ID\x00>", 1), id="nul-in-tag"),
    ],
)
def test_nul_bytes_are_a_clear_error(payload: bytes) -> None:
    with pytest.raises(InputError) as caught:
        detect(payload)
    assert "\x00" not in caught.value.message
    assert "\n" not in caught.value.message


def test_messages_quoting_the_input_are_clipped_and_single_line() -> None:
    long_name = "n" * 40_000
    with pytest.raises(MalformedXMLError) as caught:
        parse_xml(f"<{long_name}></other>".encode())
    message = caught.value.message
    assert message.endswith(TRUNCATED) or TRUNCATED in message
    assert len(message) < 400
    huge_ns = "urn:" + "x" * 100_000
    with pytest.raises(InputError) as other:
        detect(f'<root xmlns="{huge_ns}"/>'.encode())
    assert len(other.value.message) < 600
    assert TRUNCATED in other.value.message


def test_unknown_profile_warning_is_clipped() -> None:
    spec = "urn:" + "y" * 50_000
    document = detect(MINIMAL_CII.replace(b"urn:cen.eu:en16931:2017", spec.encode()))
    assert document.profile == "unknown"
    assert all(len(w) < 500 for w in document.warnings)


def test_clip() -> None:
    assert clip("a\nb\tc") == "a b c"
    assert clip("x" * 300) == "x" * 200 + TRUNCATED
    assert clip("x" * 200) == "x" * 200
    assert clip("a\x00b") == "a\ufffdb"
