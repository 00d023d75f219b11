"""A network drive to search: a folder seeded with the documents a small office keeps.

The network drive has no API and so no emulator; its "outside world" is a folder.
``demo_files(root, people)`` writes one the way an office would: a signed contract
(Word), the customer list (Excel) that names everyone, meeting notes saved by an old
Notepad (cp1252), and a quotation as PDF, with the subject's phone written in a
different way in each. Like the rest of ``sandbox/`` it imports nothing of ours, so
the connector's reading of these files is tested against files written
independently of it.

``minimal_pdf(lines)`` writes a one-page PDF with real text by hand (no PDF library
writes text without a font toolkit): tests use it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class Mentioned(Protocol):
    """Whom a document names: ``sandbox.people.Person`` fits."""

    @property
    def name(self) -> str: ...

    email: str
    phone: str  # E.164, as the sandbox's people have it


def national(e164: str, *, spaced: bool = True) -> str:
    """``+358401234567`` → ``040 123 4567`` (``0401234567`` unspaced)."""
    if not e164.startswith("+358"):
        return e164
    digits = "0" + e164[4:]
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}" if spaced else digits


def international(e164: str) -> str:
    """``+358401234567`` → ``+358 40 123 4567``."""
    if not e164.startswith("+358"):
        return e164
    rest = e164[4:]
    return f"+358 {rest[:2]} {rest[2:5]} {rest[5:]}"


def minimal_pdf(lines: Sequence[str]) -> bytes:
    """A valid one-page PDF whose text layer holds ``lines`` (Helvetica, WinAnsi)."""

    def literal(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    shown = " ".join(f"({literal(line)}) Tj T*" for line in lines)
    stream = f"BT /F1 11 Tf 14 TL 56 780 Td {shown} ET".encode("cp1252")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def demo_files(root: Path, people: Sequence[Mentioned]) -> list[Path]:
    """Write the office's documents under ``root``; the first person is the subject.

    The contract, the notes and the quotation name only them; the customer list
    names everyone in ``people``, so a search for one must report it for that one
    only. Returns the files written.
    """
    import docx
    import openpyxl

    subject = people[0]
    written: list[Path] = []

    contract = root / "sopimukset" / "koulutussopimus-2026-014.docx"
    contract.parent.mkdir(parents=True, exist_ok=True)
    document = docx.Document()
    document.add_heading("Koulutussopimus", level=1)
    document.add_paragraph(f"Asiakkaan yhteyshenkilö: {subject.name}, {subject.email}.")
    table = document.add_table(rows=2, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Nimi", "Sähköposti", "Puhelin"), strict=True):
        cell.text = text
    for cell, text in zip(table.rows[1].cells,
                          (subject.name, subject.email, national(subject.phone)), strict=True):
        cell.text = text
    document.save(contract)
    written.append(contract)

    customers = root / "asiakkaat.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Asiakkaat"
    sheet.append(["Nimi", "Sähköposti", "Puhelin"])
    for person in people:
        sheet.append([person.name, person.email, national(person.phone, spaced=False)])
    book.save(customers)
    written.append(customers)

    notes = root / "muistiinpanot" / "palaveri.txt"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_bytes((f"Palaveri {subject.name} kanssa.\r\n"
                       f"Soita takaisin numeroon {international(subject.phone)}.\r\n"
                       "Seuraava tapaaminen syyskuussa.\r\n").encode("cp1252"))
    written.append(notes)

    quote = root / "tarjoukset" / "tarjous-2026-031.pdf"
    quote.parent.mkdir(parents=True, exist_ok=True)
    quote.write_bytes(minimal_pdf(["Tarjous 2026-031", f"Vastaanottaja: {subject.name}",
                                   f"Sähköposti: {subject.email}"]))
    written.append(quote)
    return written
