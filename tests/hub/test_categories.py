"""Special categories (art. 9): flagged by name where a record hints at them."""

import pytest
from sqlalchemy import select

from hub import bundle, categories
from hub.domain import Export, ExportSection, SourceRecord
from hub.index import IndexWriter
from hub.models import SourceRecordRow
from hub.policy import load_policy


@pytest.mark.parametrize(("text", "expected"), [
    ("Olen keliaakikko, syön gluteenitonta", ("diet", "health")),
    ("Laktoositon, kiitos", ("diet",)),
    ("Jag är gravid och behöver en stol", ("health",)),
    ("Halal food please", ("diet",)),
    ("I use a wheelchair", ("health",)),
    ("Olen ammattiliiton luottamusmies", ("trade_union",)),
    ("Käyn seurakunnan kuorossa", ("religion",)),
    ("Kurssi oli hyvä ja kouluttaja asiantunteva.", ()),
    ("Ei erityisruokavaliota", ()),  # the question answered "none" is no hint
    ("Asun Kirkkonummella", ()),  # a town, not a church
    ("Minulla on pähkinäallergia", ("health",)),  # inside a compound
    ("", ()),
])
def test_hints_in_finnish_swedish_and_english(text, expected):
    assert categories.detect([text]) == expected


def test_question_titles_are_not_answers():
    asked = {"title": "Erityisruokavalio tai allergiat?", "text": "ei"}
    answered = {"title": "Erityisruokavalio tai allergiat?", "text": "pähkinäallergia"}
    assert categories.in_items([asked]) == ()
    assert categories.in_items([answered]) == ("health",)


def test_the_index_keeps_the_flag_not_the_words(store):
    with store.session() as session:
        writer = IndexWriter(session, "typeform", full=True)
        writer.add([SourceRecord("typeform", "f:1", ("aino@example.fi",), (), "Aino Virtanen",
                                 categories=("diet", "health")),
                    SourceRecord("typeform", "f:2", ("mikko@example.fi",), (), "Mikko")])
        writer.finish()
        stored = dict(session.execute(select(SourceRecordRow.record_id,
                                             SourceRecordRow.categories)).all())
    assert stored == {"f:1": "diet,health", "f:2": None}
    with store.session() as session:  # a later sync that no longer sees the hint drops it
        writer = IndexWriter(session, "typeform", full=True)
        writer.add([SourceRecord("typeform", "f:1", ("aino@example.fi",), (), "Aino Virtanen")])
        writer.finish()
        flag = session.execute(select(SourceRecordRow.categories).where(
            SourceRecordRow.record_id == "f:1")).scalar_one()
    assert flag is None


def test_the_access_bundle_flags_the_section_that_holds_them(tmp_path):
    export = Export("typeform", (
        ExportSection("Course registration", "typeform:f", ({"text": "gluteeniton"},)),
        ExportSection("Feedback", "typeform:g", ({"text": "Hyvä kurssi"},)),
    ))
    made = bundle.write_bundle(tmp_path, "R-1", [export], load_policy())
    assert made.path == tmp_path / "R-1" and {"data.json", "index.html"} <= set(made.files)
    data = (tmp_path / "R-1" / "data.json").read_text("utf-8")
    assert '"special_categories": [\n            "diet"\n          ]' in data
    assert '"special_categories": []' in data
    page = (tmp_path / "R-1" / "index.html").read_text("utf-8")
    assert "Special categories of data (GDPR art. 9): diet." in page
