"""System declarations as the hub sees them, and the policy checked against them.

The hub never imports the connectors: these tests declare systems by hand.
"""

import pytest

from hub.policy import PolicyError, load_policy
from hub.systems import Capability, Kind, SystemDeclaration, by_name


def declare(name, title=None, kind="saas"):
    return SystemDeclaration(name, title or f"{name.title()} (tool)", kind,
                             frozenset({"sync", "find"}))


FOUR = [declare(n) for n in ("pipedrive", "mailchimp", "typeform", "netvisor")]


def test_a_declaration_is_typed_from_plain_values():
    paper = SystemDeclaration("paper_archive", "Paper archive", "manual", {"erase"})
    assert paper.kind is Kind.MANUAL
    assert paper.can(Capability.ERASE) and not paper.can("sync")


@pytest.mark.parametrize("name", ["Acme", "2go", "acme-crm", ""])
def test_a_name_that_cannot_be_an_asset_or_a_policy_section_is_refused(name):
    with pytest.raises(ValueError, match="system name"):
        declare(name)


def test_a_kind_or_capability_outside_the_lists_is_refused():
    with pytest.raises(ValueError):
        SystemDeclaration("acme", "Acme", "spreadsheet", frozenset())
    with pytest.raises(ValueError):
        SystemDeclaration("acme", "Acme", "saas", frozenset({"delete"}))


def test_a_name_declared_twice_is_refused():
    with pytest.raises(ValueError, match="'acme' is declared twice"):
        by_name([declare("acme"), declare("acme", "Acme again")])


def test_the_default_policy_matches_the_four_and_takes_their_titles():
    policy = load_policy(systems=FOUR)
    assert policy.title("netvisor") == "Netvisor (tool)"
    assert policy.title("unknown") == "unknown"  # bare name, never an error


def test_without_declarations_only_the_file_is_checked():
    assert load_policy(systems=None).title("pipedrive") == "pipedrive"


def test_a_declared_system_without_a_section_fails_naming_file_and_system():
    with pytest.raises(PolicyError, match=r"packaged default_policy.toml has no section "
                                          r"\[systems.acme\] for the declared system 'acme'"):
        load_policy(systems=[*FOUR, declare("acme")])


def test_a_section_for_an_undeclared_system_fails_naming_file_and_system(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[systems.pipedrive]\n[systems.paper_archive]\n', "utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path, systems=FOUR[:1])
    assert str(caught.value) == (f"{path}: [systems.paper_archive] names a system that is "
                                 "not declared (declared systems: pipedrive); a system "
                                 "without an API is declared in its section with kind = "
                                 "\"manual\", a title and instructions")


def test_a_disabled_section_satisfies_a_declared_system(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[systems.pipedrive]\n[systems.acme]\nenabled = false\n', "utf-8")
    policy = load_policy(path, systems=[FOUR[0], declare("acme")])
    assert policy.enabled_systems == ["pipedrive"]
