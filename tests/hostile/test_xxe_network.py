"""External entities, DTDs, XInclude, stylesheets and schema locations pointing at a listener on
loopback: every reader and both CLI commands run on them, and the listener accepts nothing."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from facturflow.cli import main
from facturflow.detection import detect
from facturflow.errors import InputError, MalformedXMLError
from facturflow.validation import validate
from facturflow.xmlsafe import _new_parser, parse_xml

from .builders import MINIMAL_CII, pdf_with_attachments, stream


class Listener:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture()
def listener() -> Iterator[Listener]:
    server = Listener()
    # The listener works: a deliberate connection is seen (so zero later means zero).
    with socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass
    deadline = threading.Event()
    for _ in range(50):
        if server.accepted:
            break
        deadline.wait(0.02)
    assert len(server.accepted) == 1, "the listener does not see connections"
    server.accepted.clear()
    yield server
    server.close()


def payloads(port: int) -> dict[str, bytes]:
    url = f"http://127.0.0.1:{port}"
    cii = MINIMAL_CII.decode()
    body = cii.split("?>", 1)[1]
    return {
        "entity": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}/e">]><r>&x;</r>'.encode(),
        "external-dtd": f'<!DOCTYPE r SYSTEM "{url}/d.dtd"><r/>'.encode(),
        "parameter-entity": (
            f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><r/>'
        ).encode(),
        "parameter-entity-oob": (
            f'<!DOCTYPE r [<!ENTITY % d SYSTEM "{url}/oob.dtd"> %d; %send;]><r/>'
        ).encode(),
        "invoice-with-entity": (
            f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "{url}/e">]>'
            + body.replace("Conseil", "&e;")
        ).encode(),
        "invoice-with-xinclude": cii.replace(
            "<ram:Name>Conseil</ram:Name>",
            f'<ram:Name><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
            f'href="{url}/xi" parse="text"/></ram:Name>',
        ).encode(),
        "invoice-with-stylesheet-pi": cii.replace(
            "?>", f'?><?xml-stylesheet type="text/xsl" href="{url}/s.xsl"?>', 1
        ).encode(),
        "invoice-with-schema-location": cii.replace(
            "<rsm:CrossIndustryInvoice ",
            '<rsm:CrossIndustryInvoice xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100 '
            f'{url}/x.xsd" ',
        ).encode(),
    }


def test_no_reader_ever_connects(listener: Listener, tmp_path: Path) -> None:
    cases = payloads(listener.port)
    files: list[Path] = []
    for name, payload in cases.items():
        # The hardened parser, and its parser object with the DOCTYPE screen bypassed.
        with contextlib.suppress(InputError):
            parse_xml(payload, source=name)
        with contextlib.suppress(etree.XMLSyntaxError, MalformedXMLError):
            etree.fromstring(payload, _new_parser())
        with contextlib.suppress(InputError):
            detect(payload)
        validate(payload)  # an unreadable input is a report, never an exception
        for container, data in (
            ("xml", payload),
            ("pdf", pdf_with_attachments([(b"factur-x.xml", payload)], flate=True)),
        ):
            path = tmp_path / f"{name}.{container}"
            path.write_bytes(data)
            files.append(path)
    runner = CliRunner()
    detected = runner.invoke(main, ["detect", *map(str, files)])
    validated = runner.invoke(main, ["validate", "--jobs", "2", *map(str, files)])
    extracted = runner.invoke(
        main, ["extract", str(tmp_path / "invoice-with-xinclude.pdf"), "-o", str(tmp_path)]
    )
    for result in (detected, validated, extracted):
        assert not isinstance(result.exception, AssertionError)
    threading.Event().wait(0.3)  # let any late connection arrive before counting
    assert listener.accepted == [], f"connections were made: {listener.accepted}"
    # The invoices that carry no DTD are still read (the XInclude is inert text, not fetched).
    assert "invoice-with-xinclude.xml: xml cii" in detected.output


def test_pdf_file_specification_urls_are_never_fetched(listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/remote.xml".encode()
    remote_spec = b"<< /Type /Filespec /FS /URL /F (%s) /UF (factur-x.xml) >>" % url
    data = pdf_with_attachments(
        [(b"factur-x.xml", MINIMAL_CII)],
        extra={
            1: b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> "
            b"/AF [11 0 R 30 0 R] /OpenAction << /S /URI /URI (%s) >> >>" % url,
            30: remote_spec,
        },
    )
    document = detect(data)
    assert document.syntax == "cii"
    validate(data)
    threading.Event().wait(0.3)
    assert listener.accepted == []


def test_xmp_metadata_with_external_entities_is_never_resolved(listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/xmp"
    xmp = (
        f'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><!DOCTYPE x [<!ENTITY e SYSTEM '
        f'"{url}">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta><?xpacket end="w"?>'
    ).encode()
    catalog = (
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> /AF [11 0 R] "
        b"/Metadata 9 0 R >>"
    )
    data = pdf_with_attachments(
        [(b"factur-x.xml", MINIMAL_CII)],
        extra={1: catalog, 9: stream(xmp, b"/Type /Metadata /Subtype /XML ")},
    )
    report = validate(data)
    assert not report.ok
    assert any(f.layer == "pdf" for f in report.findings)
    threading.Event().wait(0.3)
    assert listener.accepted == []
