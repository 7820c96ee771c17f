"""Lay out one invoice as a PDF/A-3B page (or pages) with fpdf2: pure Python, fonts embedded.

fpdf2 writes PDF/A-3B itself (`enforce_compliance`): it embeds and subsets the bundled DejaVu
Sans TrueType fonts (with ToUnicode maps), adds the sRGB output intent, refuses what PDF/A
forbids, and writes the pdfaid XMP that facturflow.facturx later replaces with the Factur-X one.
"""

from __future__ import annotations

import copy
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import as_file, files
from io import BytesIO
from pathlib import Path

import fpdf
from fontTools import subset as ftsubset  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import (
    CIDSystemInfo,
    OutputProducer,
    PDFExtGState,
    PDFFont,
    PDFFontStream,
    PDFType3Font,
    PDFXObject,
    _build_cmap_blocks,
    _tt_font_widths,
)
from fpdf.pattern import Pattern
from fpdf.syntax import Name, PDFArray, PDFContentStream, PDFObject

from ..facturx import issue_timestamp
from ..model import Invoice
from .content import Document, Party, Table, Totals, describe
from .labels import Language, text

_FONT = "DejaVu"
_GREY = (90, 90, 90)
_RULE = (200, 200, 200)
_HEAD_FILL = (235, 239, 245)
_BODY = 8.5
_SMALL = 7.5


@cache
def _font_paths() -> tuple[Path, Path]:
    """The bundled regular and bold TTFs (kept on disk by the installed package)."""
    base = files("facturflow.render") / "fonts"
    with as_file(base / "DejaVuSans.ttf") as regular, as_file(base / "DejaVuSans-Bold.ttf") as bold:
        return Path(regular), Path(bold)


# -- fonts: parsed once per process, subset once per glyph set ----------------------------------
#
# fpdf2's add_font parses the whole TrueType file (cmap, metrics) for every document, and its
# output subsets and re-serialises the font for every document. Both depend only on the font
# file (and, for the subset, on the exact set of glyphs used), so they are done once per process
# here; what fpdf2 records per document (the glyphs used, their codes, missing glyphs, object
# ids) lives in a fresh TTFFont per document, so nothing leaks from one document to the next.

_STYLES = ("", "B")
# Characters every document's fonts carry, drawn or not: printable ASCII, the French letters
# and the usual typographic signs. With them, the glyph set of most invoices is this same set
# (a subset cache hit) at the price of a few kilobytes of glyphs a given page may not use.
_BASE_CHARS = (
    "".join(chr(c) for c in range(0x21, 0x7F))
    + "àâäçéèêëîïôöùûüÿœæÀÂÄÇÉÈÊËÎÏÔÖÙÛÜŸŒÆ°€£×–—’‘“”«»…·§µ"
)
_SUBSET_CACHE_SIZE = 64


@dataclass(frozen=True)
class _Subset:
    """A font cut down to a glyph set: its bytes (also deflated, as the PDF stores them) and
    the glyph ids its glyphs got."""

    data: bytes
    deflated: bytes
    glyph_ids: dict[str, int]


_subsets: OrderedDict[tuple[str, frozenset[str]], _Subset] = OrderedDict()
_subsets_lock = threading.Lock()


@cache
def _font_data(style: str) -> bytes:
    regular, bold = _font_paths()
    return (bold if style == "B" else regular).read_bytes()


@cache
def _font_template(style: str) -> TTFFont:
    """The parsed font (metrics, cmap, descriptor): shared read-only by every document."""
    regular, bold = _font_paths()
    template = TTFFont(FPDF(), bold if style == "B" else regular, f"{_FONT.lower()}{style}",
                       style)
    template.ttfont.close()  # documents get their own fontTools object (subsetting mutates it)
    return template


def _open_font(data: bytes) -> TTFont:
    # As fpdf2 opens it (lazy, keep the file's "modified" timestamp), from memory.
    return TTFont(BytesIO(data), recalcTimestamp=False, recalcBBoxes=True, lazy=True)


def _register_fonts(pdf: FPDF) -> None:
    """Register the bundled fonts on `pdf` as add_font would, without re-parsing the files."""
    for style in _STYLES:
        template = _font_template(style)
        font = TTFFont.__new__(TTFFont)
        for slot in TTFFont.__slots__:
            if hasattr(template, slot):
                setattr(font, slot, getattr(template, slot))
        # Per document: its index, what it has drawn, and the objects output() annotates.
        font.i = len(pdf.fonts) + 1
        font.cw = copy.copy(template.cw)  # a defaultdict: looking up a missing char adds it
        font.desc = copy.copy(template.desc)  # output() sets its name, id and font file
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font._hbfont = None
        font.ttfont = _open_font(_font_data(style))
        font.subset = SubsetMap(font)
        pdf.fonts[font.fontkey] = font
        _pick_base_chars(font)


def _pick_base_chars(font: TTFFont) -> None:
    """Put _BASE_CHARS in the font's subset, in the same order whichever way it was added."""
    for char in _BASE_CHARS:
        font.subset.pick(ord(char))


def _subset_font(style: str, glyph_names: frozenset[str]) -> _Subset:
    """The font cut down to `glyph_names` exactly as fpdf2's output() cuts it (cached)."""
    key = (style, glyph_names)
    with _subsets_lock:
        cached = _subsets.get(key)
        if cached is not None:
            _subsets.move_to_end(key)
            return cached
    font = _open_font(_font_data(style))
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True)
    options.drop_tables += ["FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix",
                            "CBDT", "CBLC", "EBDT", "EBLC", "EBSC", "SVG ", "CPAL", "COLR"]
    subsetter = ftsubset.Subsetter(options)
    subsetter.populate(glyphs=sorted(glyph_names))
    subsetter.subset(font)
    out = BytesIO()
    font.save(out)
    glyph_ids = {name: font.getGlyphID(name) for name in font.getGlyphOrder()}
    font.close()
    data = out.getvalue()
    subset = _Subset(data, PDFFontStream(data)._contents, glyph_ids)
    with _subsets_lock:
        _subsets[key] = subset
        while len(_subsets) > _SUBSET_CACHE_SIZE:
            _subsets.popitem(last=False)
    return subset


class _DeterministicOutput(OutputProducer):
    """fpdf2's output with the XMP dated by the document's creation date.

    fpdf2 dates xmp:ModifyDate and xmp:MetadataDate with the clock; the page is made at its
    creation date, so the same invoice and timestamp give the same bytes.
    """

    def _build_xmp_from_info(self) -> str:
        xmp = super()._build_xmp_from_info()
        created = re.search(r'xmp:CreateDate="([^"]*)"', xmp)
        if created is None:
            return xmp
        return re.sub(r'(xmp:(?:ModifyDate|MetadataDate))="[^"]*"',
                      lambda m: f'{m.group(1)}="{created.group(1)}"', xmp)


class _PrecutFontStream(PDFFontStream):
    """A font file stream from an already deflated font (fpdf2 would deflate it again)."""

    def __init__(self, subset: _Subset) -> None:
        # The attributes PDFFontStream sets, in the order it sets them (they are the keys of the
        # stream dictionary, written in that order).
        PDFObject.__init__(self)
        self._contents = subset.deflated
        self.filter = Name("FlateDecode")
        self.length = len(subset.deflated)
        self.length1 = len(subset.data)


# _SubsetFontsOutput._add_fonts mirrors the TrueType branch of fpdf2's OutputProducer._add_fonts
# as of this version; any other fpdf2 takes fpdf2's own code (slower, same document).
_COPIED_FROM = "2.8.9"
_FPDF_VERSION = getattr(fpdf, "__version__", "")


class _SubsetFontsOutput(_DeterministicOutput):
    """fpdf2's output, writing the bundled fonts from the per-process subset cache.

    Its `_add_fonts` writes the same objects, in the same order, as fpdf2's own does for a
    TrueType font (tests check the bytes equal plain fpdf2's), taking the cut font and its
    glyph ids from the cache instead of subsetting the font again with fontTools. Documents
    with any other kind of font, or with characters the fonts lack, go through fpdf2's code.
    """

    def _add_fonts(
        self,
        image_objects_per_index: dict[int, PDFXObject],
        gfxstate_objs_per_name: dict[str, PDFExtGState],
        pattern_objs_per_name: dict[str, Pattern],
    ) -> dict[int, PDFFont | PDFType3Font]:
        fonts = sorted(self.fpdf.fonts.values(), key=lambda font: font.i)
        ours = {f"{_FONT.lower()}{style}": style for style in _STYLES}
        compliance = self.fpdf._compliance
        pdfa1 = bool(compliance and compliance.profile == "PDFA" and compliance.part == 1)
        # fpdf2's own code for anything this copy does not cover: other fonts, colour or CFF
        # fonts, missing glyphs, PDF/A-1 (its CIDSet), or an fpdf2 other than the one copied.
        if pdfa1 or _FPDF_VERSION != _COPIED_FROM or not all(
            isinstance(font, TTFFont) and font.fontkey in ours and not font.color_font
            and not font.is_cff and not font.missing_glyphs for font in fonts
        ):
            return super()._add_fonts(image_objects_per_index, gfxstate_objs_per_name,
                                      pattern_objs_per_name)
        font_objs_per_index: dict[int, PDFFont | PDFType3Font] = {}
        for font in fonts:
            assert isinstance(font, TTFFont)
            fontname = f"MPDFAA+{font.name}"
            subset = _subset_font(ours[font.fontkey],
                                  frozenset(font.subset.get_all_glyph_names()))
            code_to_glyph = {
                char_id: subset.glyph_ids[glyph.glyph_name]
                for glyph, char_id in font.subset.items()
                if glyph is not None
            }
            composite_font_obj = PDFFont(subtype="Type0", base_font=fontname,
                                         encoding="Identity-H")
            self._add_pdf_obj(composite_font_obj, "fonts")
            font_objs_per_index[font.i] = composite_font_obj
            cid_font_obj = PDFFont(subtype="CIDFontType2", base_font=fontname,
                                   d_w=font.desc.missing_width, w=_tt_font_widths(font))
            self._add_pdf_obj(cid_font_obj, "fonts")
            composite_font_obj.descendant_fonts = PDFArray([cid_font_obj])

            # ToUnicode: the character each 16-bit code stands for (text search and copy).
            bf_char = []
            for glyph, code_mapped in font.subset.items():
                if glyph is None or not isinstance(glyph.unicode, tuple) or not glyph.unicode:
                    continue
                bf_char.append(f"<{code_mapped:04X}> <"
                               + "".join(_utf16_code(code) for code in glyph.unicode) + ">\n")
            to_unicode_obj = PDFContentStream(
                (
                    "/CIDInit /ProcSet findresource begin\n"
                    "12 dict begin\n"
                    "begincmap\n"
                    "/CIDSystemInfo\n"
                    "<</Registry (Adobe)\n"
                    "/Ordering (UCS)\n"
                    "/Supplement 0\n"
                    ">> def\n"
                    "/CMapName /Adobe-Identity-UCS def\n"
                    "/CMapType 2 def\n"
                    "1 begincodespacerange\n"
                    "<0000> <FFFF>\n"
                    "endcodespacerange\n"
                    f"{_build_cmap_blocks(bf_char, 'bfchar')}"
                    "endcmap\n"
                    "CMapName currentdict /CMap defineresource pop\n"
                    "end\n"
                    "end"
                ).encode("latin-1")
            )
            self._add_pdf_obj(to_unicode_obj, "fonts")
            composite_font_obj.to_unicode = to_unicode_obj

            cid_system_info_obj = CIDSystemInfo()
            self._add_pdf_obj(cid_system_info_obj, "fonts")
            cid_font_obj.c_i_d_system_info = cid_system_info_obj
            font_descriptor_obj = font.desc
            font_descriptor_obj.font_name = Name(fontname)
            self._add_pdf_obj(font_descriptor_obj, "fonts")
            cid_font_obj.font_descriptor = font_descriptor_obj

            # CIDToGIDMap: two bytes (the glyph id) per 16-bit code.
            cid_to_gid = bytearray(256 * 256 * 2)
            for code, glyph_id in code_to_glyph.items():
                cid_to_gid[code * 2] = glyph_id >> 8
                cid_to_gid[code * 2 + 1] = glyph_id & 0xFF
            cid_to_gid_map_obj = PDFContentStream(contents=bytes(cid_to_gid), compress=True)
            self._add_pdf_obj(cid_to_gid_map_obj, "fonts")
            cid_font_obj.c_i_d_to_g_i_d_map = cid_to_gid_map_obj

            font_file_cs_obj = _PrecutFontStream(subset)
            self._add_pdf_obj(font_file_cs_obj, "fonts")
            font_descriptor_obj.font_file2 = font_file_cs_obj  # type: ignore[attr-defined]

            font.subset.pick.cache_clear()
            font.subset.get_glyph.cache_clear()
            font.close()
        return font_objs_per_index


def _utf16_code(unicode: int) -> str:
    """A code point as UTF-16BE hex (a surrogate pair beyond the BMP), as fpdf2 writes it."""
    if unicode > 0xFFFF:
        high = 0xD800 | (unicode - 0x10000) >> 10
        low = 0xDC00 | (unicode & 0x3FF)
        return f"{high:04X}{low:04X}"
    return f"{unicode:04X}"


@cache
def _covered() -> frozenset[int]:
    """Code points both bundled fonts can draw; others print as '?' instead of a blank box."""
    return frozenset(set(_font_template("").cmap) & set(_font_template("B").cmap))


def _clean(value: object) -> str:
    """Text safe to draw: no control characters, only glyphs the fonts have."""
    text = str(value)
    if text.isascii() and text.isprintable():  # both fonts draw all printable ASCII
        return text.strip()
    covered = _covered()
    out = []
    for ch in text:
        if ch in "\r\n\t":
            out.append(" " if ch != "\n" else "\n")
        elif ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF:
            continue
        else:
            out.append(ch if ord(ch) in covered else "?")
    return "".join(out).strip()


def _fit(pdf: FPDF, value: str, width: float) -> str:
    """`value` cut with an ellipsis to `width` mm in the current font."""
    if pdf.get_string_width(value) <= width:
        return value
    while value and pdf.get_string_width(value + "…") > width:
        value = value[:-1]
    return value + "…"


class _InvoicePdf(FPDF):
    """FPDF with the invoice's running header and footer: the invoice number and page x of y
    on every page (a page separated from the others still says which invoice it belongs to),
    and the Factur-X notice."""

    def __init__(self, lang: Language, footer_key: str | None, identity: str,
                 title: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4",
                         enforce_compliance="PDF/A-3B")
        self.language: Language = lang  # FPDF.lang is the document's /Lang
        self.footer_key = footer_key
        self.identity = identity
        self.running_title = _clean(title)

    def file_id(self) -> str:
        # fpdf2's default identifier varies between runs; this one follows the content, so a
        # fixed timestamp gives the same bytes (PDF/A requires an /ID, not a random one).
        digest = hashlib.md5(self.identity.encode("utf-8")).hexdigest().upper()
        return f"<{digest}><{digest}>"

    def header(self) -> None:
        if self.page_no() == 1:  # the first page's title says it in large type
            return
        self.set_xy(self.l_margin, 7)
        self.set_font(_FONT, "", _SMALL)
        self.set_text_color(*_GREY)
        self.cell(0, 4, _fit(self, self.running_title, self.epw * 0.7), align="L")
        self.set_xy(self.l_margin, self.t_margin)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_font(_FONT, "", _SMALL)
        self.set_text_color(*_GREY)
        if self.footer_key is not None:
            self.set_y(-15)
            self.cell(0, 4, text(self.footer_key, self.language), align="L")
        self.set_y(-11)
        label = text("page", self.language).format(page=self.page_no(), pages="{nb}")
        self.cell(0, 4, _fit(self, self.running_title, self.epw * 0.7), align="L")
        self.set_x(self.l_margin)
        self.cell(0, 4, label, align="R")


class _Layout:
    """Draws a described invoice (content.Document) onto an _InvoicePdf."""

    def __init__(self, document: Document, pdf: _InvoicePdf) -> None:
        self.document = document
        self.lang = document.lang
        self.pdf = pdf
        # Advance widths (1/1000 em) of each style's characters, read as fpdf2 reads them.
        self.advances: dict[str, dict[int, float]] = {}
        for style in _STYLES:
            font = pdf.fonts[f"{_FONT.lower()}{style}"]
            assert isinstance(font, TTFFont)
            self.advances[style] = font.cw

    # -- helpers ---------------------------------------------------------------------------

    # A heading and its rule take this much height (gap above included).
    HEADING_HEIGHT = 3 + 6 + 1.5

    def heading(self, label: str, keep: float) -> None:
        """A section heading, moved to the next page with what follows unless `keep` mm of
        that follows fit under it: a heading never ends a page."""
        pdf = self.pdf
        if pdf.will_page_break(self.HEADING_HEIGHT + keep):
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font(_FONT, "B", 10)
        pdf.set_text_color(0, 0, 0)
        pdf.cell(0, 6, _clean(label), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(*_RULE)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(1.5)

    # -- text: measured and wrapped here, drawn with FPDF.text ------------------------------
    #
    # fpdf2's multi_cell and table re-measure a string character by character for every line
    # they try (and a table lays every cell out twice); the invoice's text needs no shaping or
    # markdown, so it is measured once per word from the font's advance widths and placed at
    # the coordinates multi_cell would use.

    def units(self, value: str, style: str) -> float:
        """Width of `value` in font units (1/1000 em)."""
        widths = self.advances[style]
        return sum([widths[ord(ch)] for ch in value])

    def text_width(self, value: str, style: str, size: float) -> float:
        """Width of `value` in mm, as FPDF.get_string_width gives it."""
        return self.units(value, style) * size / 1000 / self.pdf.k

    def wrap(self, value: str, width: float, style: str, size: float) -> list[str]:
        """`value` broken into lines no wider than `width` mm: at spaces, else inside a word."""
        units = width * self.pdf.k * 1000 / size  # the width in font units (1/1000 em)
        widths = self.advances[style]
        space = widths[32]
        lines: list[str] = []
        for paragraph in value.split("\n"):
            line: list[str] = []
            used = 0.0
            for word in paragraph.split(" "):
                word_units = self.units(word, style)
                if line and used + space + word_units <= units:
                    line.append(word)
                    used += space + word_units
                    continue
                if line:
                    lines.append(" ".join(line))
                    line, used = [], 0.0
                while word_units > units and len(word) > 1:  # a word wider than the column
                    cut, cut_units = 0, 0.0
                    while cut < len(word) - 1 and cut_units + widths[ord(word[cut])] <= units:
                        cut_units += widths[ord(word[cut])]
                        cut += 1
                    cut = max(cut, 1)
                    lines.append(word[:cut])
                    word = word[cut:]
                    word_units = self.units(word, style)
                line, used = [word], word_units
            lines.append(" ".join(line))
        return lines

    def draw_line(self, x: float, top: float, height: float, width: float, value: str,
                  align: str, style: str, size: float) -> None:
        """One line of text in a box, placed as FPDF.cell places it (vertically centred)."""
        if not value:
            return
        pdf = self.pdf
        if align != "LEFT":
            free = width - self.text_width(value, style, size)
            x += free if align == "RIGHT" else free / 2
        pdf.text(x, top + 0.5 * height + 0.3 * size / pdf.k, value)

    def paragraph(self, x: float, width: float, height: float, value: str, style: str,
                  size: float) -> None:
        """Left-aligned wrapped text from the current y, as multi_cell(width, height) draws it:
        1 mm of cell margin each side, a page break before any line that would not fit."""
        pdf = self.pdf
        margin = pdf.c_margin
        for line in self.wrap(value, width - 2 * margin, style, size):
            if pdf.will_page_break(height):
                self.next_page()
                pdf.set_font(_FONT, style, size)
            self.draw_line(x + margin, pdf.get_y(), height, 0, line, "LEFT", style, size)
            pdf.set_y(pdf.get_y() + height)

    def next_page(self) -> None:
        """Continue at the top of the next page: one already made (a party column drawn beside
        a longer one), else a new one."""
        pdf = self.pdf
        if pdf.page < pdf.pages_count:
            pdf.page += 1
            pdf.set_y(pdf.t_margin)
        else:
            pdf.add_page()

    def pairs(self, rows: Iterable[tuple[str, str]]) -> None:
        """Label: value lines, skipping empty values."""
        pdf = self.pdf
        label_width = 48.0
        x = pdf.l_margin
        for label, value in rows:
            if not value:
                continue
            if pdf.will_page_break(4.5):
                pdf.add_page()
            pdf.set_font(_FONT, "B", _BODY)
            pdf.set_text_color(*_GREY)
            self.draw_line(x + pdf.c_margin, pdf.get_y(), 4.5, 0, _clean(label), "LEFT", "B",
                           _BODY)
            pdf.set_font(_FONT, "", _BODY)
            pdf.set_text_color(0, 0, 0)
            self.paragraph(x + label_width, pdf.w - pdf.r_margin - x - label_width, 4.5,
                           _clean(value), "", _BODY)
        pdf.set_x(pdf.l_margin)

    def table(
        self,
        headings: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
        aligns: Sequence[str],
        *,
        heading: str | None = None,
    ) -> None:
        """A full-width table under an optional section heading: a shaded bold heading row
        (repeated on every page the table spans), rules between rows, cells wrapped and
        vertically centred. The section heading, the heading row and the first row (or its
        first page's worth) stay on one page."""
        pdf = self.pdf
        pdf.set_draw_color(*_RULE)
        scale = pdf.epw / sum(widths)
        columns = [w * scale for w in widths]
        pad_v, pad_h, line_height = 1.0, 1.5, 4.5
        head = [self.wrap(_clean(label), w - 2 * pad_h, "B", _BODY)
                for label, w in zip(headings, columns, strict=True)]
        body = [[self.wrap(_clean(value), w - 2 * pad_h, "", _BODY)
                 for value, w in zip(values, columns, strict=True)] for values in rows]

        def draw_row(cells: list[list[str]], style: str, first: bool, last: bool) -> None:
            """Draw a row from the current y, continued on the next page if it must; a rule
            above it unless it opens the table, below it unless it closes the table."""
            slots = max(1, *(len(lines) for lines in cells))
            start = 0
            while start < slots:
                room = int((pdf.page_break_trigger - pdf.get_y() - 2 * pad_v) // line_height)
                fits_a_page = (slots - start) * line_height + 2 * pad_v <= (
                    pdf.page_break_trigger - pdf.t_margin - head_height)
                if room < slots - start and (fits_a_page or room < 1) and style == "":
                    pdf.add_page()
                    draw_row(head, "B", True, False)
                    continue
                end = min(slots, start + max(room, 1))
                top = pdf.get_y()
                height = (end - start) * line_height + 2 * pad_v
                if style == "B":
                    pdf.set_fill_color(*_HEAD_FILL)
                    pdf.rect(pdf.l_margin, top, pdf.epw, height, style="F")
                if not first:
                    pdf.line(pdf.l_margin, top, pdf.l_margin + pdf.epw, top)
                if not last:
                    pdf.line(pdf.l_margin, top + height, pdf.l_margin + pdf.epw, top + height)
                pdf.set_font(_FONT, style, _BODY)
                x = pdf.l_margin
                for lines, w, align in zip(cells, columns, aligns, strict=True):
                    shown = lines[start:end]
                    dy = (end - start - len(shown)) * line_height / 2  # vertically centred
                    for n, line in enumerate(shown):
                        self.draw_line(x + pad_h, top + pad_v + dy + n * line_height,
                                       line_height, w - 2 * pad_h, line, align, style, _BODY)
                    x += w
                pdf.set_y(top + height)
                start = end
                first = False

        head_height = max(len(lines) for lines in head) * line_height + 2 * pad_v
        pdf.set_text_color(0, 0, 0)
        # The heading row goes to the next page with the first row when they do not fit together
        # (as fpdf2's table does); a first row taller than a page only needs its first line.
        first_lines = max((len(lines) for lines in body[0]), default=1) if body else 1
        usable = pdf.page_break_trigger - pdf.t_margin - head_height
        first_height = min(first_lines * line_height + 2 * pad_v, usable)
        keep = head_height + max(first_height, line_height + 2 * pad_v)
        if heading is not None:
            self.heading(heading, keep)
        if pdf.will_page_break(keep):
            pdf.add_page()
        draw_row(head, "B", True, not body)
        for n, cells in enumerate(body, 1):
            draw_row(cells, "", False, n == len(body))
        pdf.set_font(_FONT, "", _BODY)
        pdf.set_x(pdf.l_margin)

    # -- sections --------------------------------------------------------------------------

    def title(self) -> None:
        pdf, doc = self.pdf, self.document
        pdf.set_font(_FONT, "B", 18)
        pdf.cell(0, 10, _clean(doc.title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1)
        self.pairs(doc.meta)

    def party_block(self, party: Party, x: float, width: float) -> float:
        """One party in a column; returns the y where it ends."""
        pdf = self.pdf
        pdf.set_xy(x, self.parties_top)
        pdf.set_font(_FONT, "B", 10)
        pdf.cell(width, 6, _clean(party.heading), new_x=XPos.LEFT, new_y=YPos.NEXT)
        for i, line in enumerate(party.lines):
            style = "B" if i == 0 else ""
            pdf.set_font(_FONT, style, _BODY)
            self.paragraph(x, width, 4.3, _clean(line), style, _BODY)
        return pdf.get_y()

    def parties(self) -> None:
        pdf, doc = self.pdf, self.document
        pdf.ln(3)
        if pdf.will_page_break(40):
            pdf.add_page()
        self.parties_top = pdf.get_y()
        gap = 8.0
        width = (pdf.epw - gap) / 2
        first_page = pdf.page
        ends: list[tuple[int, float]] = []
        for n, party in enumerate(doc.parties):
            # Each column starts beside the others, even when the one before ran over a page.
            pdf.page = first_page
            end = self.party_block(party, pdf.l_margin + n * (width + gap), width)
            ends.append((pdf.page, end))
        pdf.page, end = max(ends)
        pdf.set_xy(pdf.l_margin, end)
        if doc.party_extra:
            pdf.ln(2)
            self.pairs(doc.party_extra)

    def totals(self, section: Totals) -> None:
        pdf = self.pdf
        block = 5 * len(section.rows) + 2  # the totals stay together, with their heading
        self.heading(section.heading, block)
        label_width, value_width = 60.0, 40.0
        x = pdf.w - pdf.r_margin - label_width - value_width
        for label, value, strong in section.rows:
            pdf.set_x(x)
            pdf.set_font(_FONT, "B" if strong else "", 9.5 if strong else _BODY)
            pdf.cell(label_width, 5, _clean(label))
            pdf.cell(value_width, 5, _clean(value), align="R", new_x=XPos.LMARGIN,
                     new_y=YPos.NEXT)

    def draw(self) -> None:
        self.title()
        self.parties()
        for section in self.document.sections:
            if isinstance(section, Table):
                self.table(section.columns, section.rows, section.widths, section.aligns,
                           heading=section.heading)
            elif isinstance(section, Totals):
                self.totals(section)
            else:
                self.heading(section.heading, 4.5)  # with at least its first line
                self.pairs(section.rows)


# Tests set this to render through fpdf2's own add_font and output, without the caches above.
_plain_fpdf = False


def render_invoice_pdf(
    invoice: Invoice,
    *,
    lang: Language = "fr",
    timestamp: datetime | None = None,
    xml_is_reference: bool | None = True,
) -> bytes:
    """The invoice as a readable PDF/A-3B (A4), in French or English.

    `xml_is_reference` chooses the footer notice: True when the embedded XML is the full
    invoice (Factur-X BASIC and above), False for MINIMUM and BASIC WL where the PDF is, None
    for a view of an invoice that is not being made into a Factur-X (`facturflow render`).
    `timestamp` dates the document (default: the issue date BT-2 at 00:00:00 UTC); nothing
    else is taken from the clock or chance, so the same arguments give the same bytes.
    """
    document = describe(invoice, lang)  # refuses an unknown language
    when = timestamp or issue_timestamp(invoice.issue_date)
    # A naive timestamp is UTC, never the machine's local time (TZ must not change the bytes).
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    when = when.replace(microsecond=0)
    identity = f"{invoice!r}|{lang}|{when.isoformat()}|{xml_is_reference}"
    footer_key = {True: "footer", False: "footer_data", None: "footer_view"}[xml_is_reference]
    pdf = _InvoicePdf(lang, footer_key, identity, document.title)
    if _plain_fpdf:
        regular, bold = _font_paths()
        pdf.add_font(_FONT, "", str(regular))
        pdf.add_font(_FONT, "B", str(bold))
        for style in _STYLES:
            font = pdf.fonts[f"{_FONT.lower()}{style}"]
            assert isinstance(font, TTFFont)
            _pick_base_chars(font)
    else:
        _register_fonts(pdf)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, 20)
    pdf.set_creation_date(when)
    kind = text("credit_note" if invoice.is_credit_note else "invoice", lang)
    pdf.set_title(_clean(f"{kind} {invoice.number}"))
    if document.author:
        pdf.set_author(_clean(document.author))
    pdf.set_lang("fr-FR" if lang == "fr" else "en-GB")
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font(_FONT, "", _BODY)
    _Layout(document, pdf).draw()
    if _plain_fpdf:
        return bytes(pdf.output(output_producer_class=_DeterministicOutput))
    return bytes(pdf.output(output_producer_class=_SubsetFontsOutput))
