from __future__ import annotations

import random

from hub.events.ids import new_event_id, new_event_ids

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def decode(event_id: str) -> int:
    value = 0
    for char in event_id.removeprefix("evt_"):
        value = value * 32 + ALPHABET.index(char)
    return value


def test_ids_carry_their_millisecond_and_sort_by_it():
    times = sorted([0, 2**48 - 1, *(random.randrange(2**48) for _ in range(500))])
    ids = [new_event_id(ms) for ms in times]
    assert all(len(i) == 30 for i in ids)
    assert [decode(i) >> 80 for i in ids] == times
    assert sorted(ids) == ids


def test_ids_in_one_millisecond_differ():
    assert len({new_event_id(1_700_000_000_000) for _ in range(10_000)}) == 10_000


def test_ids_made_a_batch_at_a_time_are_the_same_kind():
    ms = 1_700_000_000_123
    batch = new_event_ids(5_000, ms)
    assert len(set(batch)) == 5_000
    assert all(len(i) == 30 and i.startswith("evt_") for i in batch)
    assert {decode(i) >> 80 for i in batch} == {ms}
    # Between ids of the millisecond before and after, as the one-at-a-time kind sorts.
    assert new_event_id(ms - 1) < min(batch) and max(batch) < new_event_id(ms + 1)
    # Every one of the 32 characters in every random position.
    for position in range(14, 30):
        assert len({i[position] for i in batch}) == 32
