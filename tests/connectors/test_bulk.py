"""The collector's thresholds during a sync: raised while any sync runs, and as they
were once the last one ends, whatever ended it."""

from __future__ import annotations

import gc

import pytest

from connectors.bulk import YOUNG_THRESHOLD, bulk_reading


@pytest.fixture(autouse=True)
def _thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_a_sync_collects_the_young_generation_less_often_then_as_before():
    with bulk_reading():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_syncs_restore_only_when_the_last_ends():
    first, second = bulk_reading(), bulk_reading()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # ended first, while the other still reads
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_failed_sync_restores_them_too():
    with pytest.raises(RuntimeError), bulk_reading():
        raise RuntimeError("vendor down")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_process_tuned_higher_is_not_lowered():
    gc.set_threshold(100_000, 10, 10)
    with bulk_reading():
        assert gc.get_threshold()[0] == 100_000
    assert gc.get_threshold() == (100_000, 10, 10)
