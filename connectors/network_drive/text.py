"""The text of a document, as numbered places a person can find again.

Each reader turns a file's bytes into ``Chunk``s: a line of a text file, a paragraph
or table row of a Word document, a row of a spreadsheet, a line of a PDF page. A
match is reported with its chunk's ``where`` ("paragraph 4", "Asiakkaat row 12"), so
the subject's access export and the operator's erasure task point at the place, and
an excerpt never runs across two people's rows.

A reader raises on a file it cannot read (a corrupt zip, an encrypted PDF); the
connector counts such a file and carries on with the next one.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    """One place in a document and its text."""

    where: str
    text: str


def decode(data: bytes) -> str:
    """Bytes of a text file as text: a BOM first, then UTF-8, then Windows' cp1252.

    Files on a Finnish office share are UTF-8 (new tools) or cp1252 (Excel's "CSV"
    and Notepad of old), and ä/ö must come out right either way. Latin-1 decodes
    anything, so it is the last resort: no file is unreadable for its encoding.
    """
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _lines(text: str, prefix: str = "") -> Iterator[Chunk]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield Chunk(f"{prefix}line {number}", line)


def plain(data: bytes) -> Iterator[Chunk]:
    """A .txt or .csv file, line by line (a CSV row is a line)."""
    yield from _lines(decode(data))


def _row_text(cells: list[str]) -> str:
    """Cells of a row joined; a merged cell (repeated by python-docx) once."""
    out: list[str] = []
    for cell in cells:
        cell = cell.strip()
        if cell and (not out or out[-1] != cell):
            out.append(cell)
    return " | ".join(out)


def word(data: bytes) -> Iterator[Chunk]:
    """A .docx: body paragraphs, table rows, then headers and footers."""
    import docx  # python-docx, imported only when a Word file is read

    document = docx.Document(io.BytesIO(data))
    for number, paragraph in enumerate(document.paragraphs, start=1):
        if paragraph.text.strip():
            yield Chunk(f"paragraph {number}", paragraph.text)
    for t, table in enumerate(document.tables, start=1):
        for r, row in enumerate(table.rows, start=1):
            text = _row_text([cell.text for cell in row.cells])
            if text:
                yield Chunk(f"table {t} row {r}", text)
    seen: set[str] = set()
    for s, section in enumerate(document.sections, start=1):
        for part, name in ((section.header, "header"), (section.footer, "footer")):
            for paragraph in part.paragraphs:
                text = paragraph.text
                if text.strip() and text not in seen:  # sections share their header
                    seen.add(text)
                    yield Chunk(f"{name} of section {s}", text)


def _cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed as a number: 401234567.0
    return str(value)


def spreadsheet(data: bytes) -> Iterator[Chunk]:
    """A .xlsx, row by row, the cells' values (not formulas) joined."""
    import openpyxl  # imported only when a spreadsheet is read

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                text = _row_text([_cell(v) for v in row if v is not None])
                if text:
                    yield Chunk(f"{sheet.title} row {number}", text)
    finally:
        book.close()


def pdf(data: bytes) -> Iterator[Chunk]:
    """A .pdf, page by page and line by line, as pypdf extracts its text.

    A scanned PDF (images only) has no text: it yields nothing, and the docs say an
    operator searches those by eye.
    """
    from pypdf import PdfReader  # imported only when a PDF is read

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise ValueError("encrypted PDF")
    for number, page in enumerate(reader.pages, start=1):
        yield from _lines(page.extract_text() or "", prefix=f"page {number} ")


READERS: dict[str, Callable[[bytes], Iterator[Chunk]]] = {
    ".txt": plain,
    ".csv": plain,
    ".docx": word,
    ".xlsx": spreadsheet,
    ".pdf": pdf,
}
"""The file types searched, by lower-case suffix."""
