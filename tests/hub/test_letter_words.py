"""Every outcome a task can end with is worded for the subject in every language."""

from hub.domain import Action
from hub.letters import ACTIONS


def test_every_action_is_worded_in_finnish_swedish_and_english():
    """Found when rectification and restriction arrived: their actions were missing, so
    a Finnish completion letter would have said 'rectified' in English."""
    wanted = {a.value for a in Action} | {"done_by_hand", "confirmed_done"}
    assert set(ACTIONS) == {"fi", "sv", "en"}
    for language, words in ACTIONS.items():
        assert wanted <= set(words), (language, sorted(wanted - set(words)))
    assert len({frozenset(words) for words in ACTIONS.values()}) == 1  # the same keys
