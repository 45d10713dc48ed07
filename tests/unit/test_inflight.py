"""Offsets of scenes in flight are committed in order, only after every earlier scene of the partition
finished (service.inflight)."""

from concurrent.futures import Future

import pytest

from terrawatch.service.inflight import Entry, InFlight


def entry(partition: int, offset: int) -> Entry:
    return Entry("scenes", partition, offset, Future())


def test_a_scene_finished_early_waits_for_its_predecessor():
    fl = InFlight()
    a, b, c = entry(0, 10), entry(0, 11), entry(1, 5)
    for e in (a, b, c):
        fl.add(e)
    b.future.set_result("processed")
    assert fl.committable() == [] and len(fl) == 3 and fl.running() == 2  # 11 is done, 10 is not: nothing yet
    c.future.set_result("dlq")  # a DLQ write is an outcome: committed like a stored scene
    assert fl.committable() == [c]
    a.future.set_result("duplicate")
    assert fl.committable({("scenes", 1)}) == []  # only the partitions asked for
    assert fl.committable() == [b] and len(fl) == 0  # committing 11 commits 10 too


def test_an_unfinished_scene_is_never_committed_and_holds_back_later_ones():
    fl = InFlight()
    a, b = entry(0, 1), entry(0, 2)
    fl.add(a)
    fl.add(b)
    a.future.set_exception(RuntimeError("interrupted"))
    b.future.set_result("processed")
    assert fl.committable() == []
    assert fl.failed() == [a]


def test_revoked_partitions_are_forgotten_with_their_unfinished_scenes():
    fl = InFlight()
    a, b, c = entry(0, 1), entry(1, 7), entry(1, 8)
    for e in (a, b, c):
        fl.add(e)
    b.future.set_result("processed")
    assert fl.forget({("scenes", 1)}) == [b, c]
    assert fl.entries() == [a] and fl.committable() == []


def test_offsets_must_grow_within_a_partition():
    fl = InFlight()
    fl.add(entry(0, 5))
    with pytest.raises(ValueError):
        fl.add(entry(0, 5))
