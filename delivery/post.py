"""A letter by post: a printable A4 PDF in the hub home, readable by its owner only.

The address block sits where a C5/DL window envelope shows it (20 mm from the
left, 45 mm from the top). An access letter by post encloses the bundle's
readable view as further pages. Core PDF fonts cover Latin-1, which holds every
Finnish and Swedish letter; anything else is written as its closest Latin-1 form.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from pathlib import Path

from fpdf import FPDF

from hub.db import private_file, private_folder
from hub.letters import as_text
from hub.models import LetterRow

LETTERS = "letters"
ENCLOSURE = {"fi": "Liite", "sv": "Bilaga", "en": "Enclosure"}


def _latin1(text: str) -> str:
    """Text the PDF's core font can set: an en dash as a hyphen (NFKD has no Latin-1
    form of it), accents decomposed, anything else as "?"."""
    out = []
    for char in text.replace("\u2013", "-"):
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode(
                "latin-1")
            out.append(plain or "?")
    return "".join(out)


def _page(pdf: FPDF) -> None:
    pdf.add_page()
    pdf.set_font("Helvetica", size=10.5)


def render_pdf(letter: LetterRow, *, sender: str | None, today: date,
               enclosures: list[tuple[str, str]]) -> bytes:
    """The letter as PDF bytes; `enclosures` are (title, HTML) printed after it."""
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    _page(pdf)
    if sender:
        pdf.set_font("Helvetica", size=8)
        pdf.multi_cell(90, 4, _latin1(sender))
        pdf.set_font("Helvetica", size=10.5)
    pdf.set_xy(20, 45)
    pdf.multi_cell(85, 5, _latin1(letter.recipient or ""))
    pdf.set_xy(120, 45)
    pdf.cell(70, 5, f"{today.day}.{today.month}.{today.year}", align="R")
    pdf.set_xy(20, 90)
    pdf.set_font("Helvetica", style="B", size=11)
    pdf.multi_cell(0, 6, _latin1(letter.subject))
    pdf.ln(3)
    pdf.set_font("Helvetica", size=10.5)
    pdf.multi_cell(0, 5, _latin1(as_text(letter.body or "")))
    for title, html in enclosures:
        _page(pdf)
        pdf.set_font("Helvetica", style="B", size=11)
        pdf.multi_cell(0, 6, _latin1(f"{ENCLOSURE.get(letter.language, 'Enclosure')}: {title}"))
        pdf.ln(2)
        pdf.set_font("Helvetica", size=9)
        pdf.multi_cell(0, 4.5, _latin1(as_text(html)))
    return bytes(pdf.output())


def write_pdf(home: Path, letter: LetterRow, *, sender: str | None, today: date) -> str:
    """Write the letter's PDF under HUB_HOME/letters (0700 folders, 0600 file); return
    its path relative to the home."""
    enclosures = []
    for rel in letter.attachments or []:
        if rel.endswith(".html") and (home / rel).is_file():
            enclosures.append((Path(rel).name, (home / rel).read_text("utf-8")))
    body = render_pdf(letter, sender=sender, today=today, enclosures=enclosures)
    folder = home / LETTERS / (letter.request_id or "ops")
    private_folder(folder)
    path = folder / f"{letter.id}-{letter.kind}.pdf"
    private_file(path, body)
    return str(path.relative_to(home))
