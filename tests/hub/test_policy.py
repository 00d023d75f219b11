"""Per-system policy: the packaged default loads; mistakes name the file and the field."""

from datetime import date

import pytest

from hub.policy import EraseMode, PolicyError, SystemPolicy, load_policy


def test_packaged_default_loads_with_the_four_systems():
    policy = load_policy()
    assert set(policy.enabled_systems) == {"pipedrive", "mailchimp", "typeform", "netvisor"}
    assert policy.for_system("mailchimp").erase == EraseMode.PERMANENT_DELETE
    assert policy.for_system("mailchimp").marketing is True
    netvisor = policy.for_system("netvisor")
    assert netvisor.erase == EraseMode.RETAIN_IF_REQUIRED
    assert netvisor.retention_years == 6
    assert "Kirjanpitolaki" in netvisor.retention_basis


def test_unknown_system_is_a_policy_error():
    with pytest.raises(PolicyError, match=r"\[systems.paper_archive\]"):
        load_policy().for_system("paper_archive")


def write(tmp_path, text):
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    return path


def test_unknown_field_names_file_system_and_field(tmp_path):
    path = write(tmp_path, '[systems.pipedrive]\nerase = "delete"\nerase_mode = "x"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    assert "systems.pipedrive.erase_mode" in message


def test_bad_erase_mode_names_file_and_field(tmp_path):
    path = write(tmp_path, '[systems.netvisor]\nerase = "shred"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(path) in str(info.value)
    assert "systems.netvisor.erase" in str(info.value)


def test_bad_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[systems.pipedrive\nerase = delete\n")
    with pytest.raises(PolicyError, match="not valid TOML") as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "nope.toml")


def test_retention_years_out_of_range(tmp_path):
    path = write(tmp_path, "[systems.netvisor]\nretention_years = 99\n")
    with pytest.raises(PolicyError, match="systems.netvisor.retention_years"):
        load_policy(path)


def test_a_valid_custom_file_loads(tmp_path):
    path = write(tmp_path, '[systems.pipedrive]\nerase = "anonymise"\n'
                 '[systems.typeform]\nenabled = false\n')
    policy = load_policy(path)
    assert policy.for_system("pipedrive").erase == EraseMode.ANONYMISE
    assert policy.enabled_systems == ["pipedrive"]


def test_hold_ends_at_the_end_of_the_year_plus_retention():
    netvisor = load_policy().for_system("netvisor")
    assert netvisor.hold_ends(date(2024, 3, 15)) == date(2030, 12, 31)
    assert netvisor.hold_ends(date(2024, 12, 31)) == date(2030, 12, 31)
    assert SystemPolicy().hold_ends(date(2024, 3, 15)) is None
    assert SystemPolicy(retention_years=10).hold_ends(date(2020, 1, 1)) == date(2030, 12, 31)


def test_a_july_june_company_holds_until_the_end_of_the_year_its_financial_year_ended(
        tmp_path):
    # Found: an invoice of 15.9.2024 belongs to the financial year ending 30.6.2025; its
    # six years run from the end of 2025 (Kirjanpitolaki 2:10 § 2), but the hub counted
    # from the end of 2024 and let the hold end a year early.
    path = write(tmp_path, '[systems.netvisor]\nretention_years = 6\n'
                 'financial_year_end = "06-30"\n')
    netvisor = load_policy(path).for_system("netvisor")
    assert netvisor.financial_year_end_of(date(2024, 9, 15)) == date(2025, 6, 30)
    assert netvisor.hold_ends(date(2024, 9, 15)) == date(2031, 12, 31)
    assert netvisor.hold_ends(date(2024, 6, 30)) == date(2030, 12, 31)  # the year's last day
    assert netvisor.hold_ends(date(2024, 7, 1)) == date(2031, 12, 31)


def test_books_count_from_the_end_of_the_financial_year_itself(tmp_path):
    path = write(tmp_path, '[systems.netvisor]\nretention_years = 10\n'
                 'financial_year_end = "06-30"\nretention_from = "financial_year_end"\n')
    netvisor = load_policy(path).for_system("netvisor")
    assert netvisor.hold_ends(date(2024, 9, 15)) == date(2035, 6, 30)


def test_the_default_financial_year_is_the_calendar_year():
    netvisor = load_policy().for_system("netvisor")
    assert netvisor.financial_year_end == "12-31"
    assert netvisor.hold_ends(date(2024, 12, 31)) == date(2030, 12, 31)
    assert netvisor.hold_ends(date(2025, 1, 1)) == date(2031, 12, 31)


@pytest.mark.parametrize("value", ["6-30", "06/30", "13-31", "06-31", "02-29", "", "12-31x"])
def test_a_financial_year_end_that_is_not_a_real_mm_dd_names_file_field_and_form(
        tmp_path, value):
    path = write(tmp_path, f'[systems.netvisor]\nfinancial_year_end = "{value}"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message and "systems.netvisor.financial_year_end" in message
    assert "MM-DD" in message and repr(value) in message


# -------------------------------------------------------- systems without an API (rule 10)

ARCHIVE = '''
[systems.paper_archive]
kind = "manual"
title = "Paper contracts (locked cabinet)"
instructions = "Look in the cabinet by surname."
'''


def declared():
    from connectors.registry import declarations

    return declarations()


def default_with(tmp_path, extra: str):
    from importlib import resources

    text = resources.files("hub").joinpath("default_policy.toml").read_text("utf-8")
    return write(tmp_path, text + extra)


def test_a_manual_system_is_declared_by_its_policy_section(tmp_path):
    policy = load_policy(default_with(tmp_path, ARCHIVE), systems=declared())
    assert policy.manual_systems == ["paper_archive"]
    assert "paper_archive" in policy.enabled_systems
    assert policy.title("paper_archive") == "Paper contracts (locked cabinet)"
    assert policy.for_system("paper_archive").instructions_for("erasure") == (
        "Look in the cabinet by surname.")
    assert policy.for_system("paper_archive").due_days == 7


def test_a_manual_systems_title_is_in_the_subjects_language_where_given(tmp_path):
    policy = load_policy(default_with(tmp_path, ARCHIVE + 'titles = { fi = "Paperisopimukset '
                                                          '(lukittu kaappi)" }\n'),
                         systems=declared())
    assert policy.title("paper_archive", "fi") == "Paperisopimukset (lukittu kaappi)"
    assert policy.title("paper_archive", "sv") == "Paper contracts (locked cabinet)"
    with pytest.raises(PolicyError, match="titles"):
        load_policy(default_with(tmp_path, ARCHIVE + 'titles = { de = "Papierverträge" }\n'),
                    systems=declared())
    with pytest.raises(ValueError, match="kind = \"manual\""):
        SystemPolicy(titles={"fi": "Asiakasrekisteri"})  # a system with an API has its own


def test_instructions_per_request_kind_fall_back_to_the_default(tmp_path):
    policy = load_policy(default_with(tmp_path, '''
[systems.paper_archive]
kind = "manual"
title = "Paper contracts"
[systems.paper_archive.instructions]
erasure = "Shred it."
default = "Find it."
'''), systems=declared())
    archive = policy.for_system("paper_archive")
    assert archive.instructions_for("erasure") == "Shred it."
    assert archive.instructions_for("access") == "Find it."


@pytest.mark.parametrize(("section", "message"), [
    ('kind = "manual"\ninstructions = "x"\n', "needs a title"),
    ('kind = "manual"\ntitle = "Cabinet"\n', "needs instructions"),
    ('kind = "manual"\ntitle = "Cabinet"\ninstructions = "  "\n', "needs instructions"),
    ('kind = "manual"\ntitle = "Cabinet"\n[systems.paper_archive.instructions]\nerasur = "x"\n',
     "instructions.erasur is not a request kind"),
    ('title = "Cabinet"\ninstructions = "x"\n', 'add kind = "manual"'),
    ('kind = "paper"\ntitle = "Cabinet"\ninstructions = "x"\n', "systems.paper_archive.kind"),
    ('kind = "manual"\ntitle = "Cabinet"\ninstructions = "x"\ndue_days = 0\n', "due_days"),
])
def test_a_manual_section_missing_what_a_person_needs_names_it(tmp_path, section, message):
    path = default_with(tmp_path, "\n[systems.paper_archive]\n" + section)
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(path, systems=declared())
    assert str(path) in str(info.value)


def test_a_manual_section_cannot_take_a_connectors_name(tmp_path):
    text = default_with(tmp_path, "").read_text("utf-8").replace(
        '[systems.typeform]\n', '[systems.typeform]\nkind = "manual"\ntitle = "Forms"\n'
        'instructions = "x"\n')
    with pytest.raises(PolicyError, match="'typeform' is declared by its connector"):
        load_policy(write(tmp_path, text), systems=declared())


def test_an_undeclared_section_says_how_to_declare_a_system_without_an_api(tmp_path):
    path = default_with(tmp_path, '\n[systems.paper_archive]\nerase = "delete"\n')
    with pytest.raises(PolicyError, match='kind = "manual"'):
        load_policy(path, systems=declared())
