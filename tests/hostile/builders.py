"""Build hostile inputs inside the tests: raw PDFs, decompression bombs, small valid invoice seeds.

Nothing here reads the shared corpus; every attack file is made from a few lines of code.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SEEDS = Path(__file__).resolve().parent / "seeds"

# Minimal EN 16931 invoices written for these tests (no corpus file copied).
MINIMAL_CII = (SEEDS / "minimal-cii.xml").read_bytes()

MINIMAL_UBL = (SEEDS / "minimal-ubl.xml").read_bytes()


def seed_invoices() -> dict[str, bytes]:
    """Valid invoices to mutate: ours, plus fixtures/valid/* once those exist."""
    seeds: dict[str, bytes] = {"minimal-cii.xml": MINIMAL_CII, "minimal-ubl.xml": MINIMAL_UBL}
    valid = FIXTURES / "valid"
    if valid.is_dir():
        for path in sorted(valid.iterdir()):
            if path.suffix.lower() in {".xml", ".pdf"} and path.stat().st_size < 2_000_000:
                seeds[path.name] = path.read_bytes()
    return seeds


def zeros_flate(total: int, block: int = 1 << 20) -> bytes:
    """A valid zlib stream that inflates to `total` zero bytes, built in milliseconds.

    After a full flush a deflate compressor restarts from an empty window, so the compressed
    form of one block of zeros can be repeated; the Adler-32 of n zeros is ((n % 65521) << 16) | 1.
    """
    assert total % block == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = compressor.compress(b"\0" * block) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    adler = (((total % 65521) << 16) | 1).to_bytes(4, "big")
    return b"\x78\xda" + piece * (total // block) + tail + adler


def pdf(
    objects: Mapping[int, bytes],
    *,
    root: int = 1,
    trailer_extra: bytes = b"",
    header: bytes = b"%PDF-1.7",
) -> bytes:
    """Serialise numbered objects into a PDF with a correct cross-reference table."""
    out = bytearray(header + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    size = max(objects) + 1
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        if number in offsets:
            out += b"%010d 00000 n \n" % offsets[number]
        else:
            out += b"0000000000 00000 f \n"
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\n" % (size, root, trailer_extra)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def stream(data: bytes, dictionary: bytes = b"") -> bytes:
    """A stream object body with the right /Length."""
    return b"<< /Length %d %s>>\nstream\n" % (len(data), dictionary) + data + b"\nendstream"


def filespec(name: bytes, ef_obj: int, relationship: bytes = b"/Data") -> bytes:
    """A file specification dictionary pointing at an embedded-file stream object."""
    return (
        b"<< /Type /Filespec /F (%s) /UF (%s) /EF << /F %d 0 R >> /AFRelationship %s >>"
        % (name, name, ef_obj, relationship)
    )


def pdf_with_attachments(
    attachments: list[tuple[bytes, bytes]], *, flate: bool = False, extra: Mapping[int, bytes] = {}
) -> bytes:
    """A one-page PDF carrying `attachments` [(name, data)] in /AF and the EmbeddedFiles tree."""
    objects: dict[int, bytes] = {
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    }
    names = bytearray()
    af = bytearray()
    number = 10
    for name, data in attachments:
        body = zlib.compress(data) if flate else data
        dictionary = b"/Type /EmbeddedFile /Subtype /text#2Fxml " + (
            b"/Filter /FlateDecode " if flate else b""
        )
        objects[number] = stream(body, dictionary)
        objects[number + 1] = filespec(name, number)
        names += b"(%s) %d 0 R " % (name, number + 1)
        af += b"%d 0 R " % (number + 1)
        number += 2
    objects[4] = b"<< /Names [" + bytes(names) + b"] >>"
    objects[1] = (
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> /AF ["
        + bytes(af)
        + b"] >>"
    )
    objects.update(extra)
    return pdf(objects)


def xref_stream_pdf(entries: int, *, sections: int = 1) -> bytes:
    """A few-KB PDF whose compressed cross-reference stream(s) declare `entries` objects each."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = {1: len(out)}
    out += b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    offsets[2] = len(out)
    out += b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    previous: int | None = None
    for section in range(sections):
        at = len(out)
        table = bytearray()
        for number in range(entries):  # every entry points at the catalogue (W [1 1 1])
            table += bytes((1, offsets.get(number, offsets[1]), 0))
        prev = b"/Prev %d " % previous if previous is not None else b""
        body = stream(
            zlib.compress(bytes(table), 9),
            b"/Type /XRef /Size %d /W [1 1 1] /Root 1 0 R /Filter /FlateDecode %s"
            % (entries, prev),
        )
        out += b"%d 0 obj\n" % (3 + section) + body + b"\nendobj\n"
        previous = at
    assert previous is not None
    out += b"startxref\n%d\n%%%%EOF\n" % previous
    return bytes(out)


def object_stream_pdf(members: int) -> bytes:
    """A PDF whose catalogue sits in an object stream together with `members` tiny objects.

    Only the catalogue is listed in the cross-reference stream: resolving it makes pypdf parse
    every member of its object stream.
    """
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"] + [b"0"] * members
    header, body = bytearray(), bytearray()
    for index, obj in enumerate(objects):
        header += b"%d %d " % (1 if index == 0 else 100 + index, len(body))
        body += obj + b" "
    packed = zlib.compress(bytes(header) + bytes(body), 9)
    out = bytearray(b"%PDF-1.7\n")
    offsets = {2: len(out)}
    out += b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    offsets[5] = len(out)
    out += b"5 0 obj\n" + stream(
        packed,
        b"/Type /ObjStm /N %d /First %d /Filter /FlateDecode " % (len(objects), len(header)),
    ) + b"\nendobj\n"
    at = len(out)
    size = 7
    table = bytearray()
    for number in range(size):
        if number == 1:
            table += (2).to_bytes(1, "big") + (5).to_bytes(4, "big") + (0).to_bytes(4, "big")
        elif number in offsets:
            table += b"\x01" + offsets[number].to_bytes(4, "big") + bytes(4)
        elif number == 6:
            table += b"\x01" + at.to_bytes(4, "big") + bytes(4)
        else:
            table += bytes(9)
    out += b"6 0 obj\n" + stream(
        zlib.compress(bytes(table), 9),
        b"/Type /XRef /Size %d /W [1 4 4] /Root 1 0 R /Filter /FlateDecode " % size,
    ) + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % at
    return bytes(out)
