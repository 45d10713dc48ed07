"""Replay says whether the worker will store a new run or skip a duplicate (service/stream_ops.replay_outcome)."""

from __future__ import annotations

from terrawatch.service.stream_ops import replay_outcome
from terrawatch.settings import Settings

SERVED = [{"name": "flood_s1", "version": "1", "state": "UNAVAILABLE"},
          {"name": "flood_s1", "version": "2", "state": "READY"},
          {"name": "water_s2", "version": "1", "state": "READY"}]


def test_unchanged_model_versions_are_a_duplicate():
    outcome, why = replay_outcome(Settings(), [{"hazard": "flood", "model_version": "flood_s1:2"}], SERVED)
    assert outcome == "duplicate" and "skips" in why


def test_a_changed_or_unserved_model_is_a_new_run():
    outcome, why = replay_outcome(Settings(), [{"hazard": "flood", "model_version": "flood_s1:1"}], SERVED)
    assert outcome == "new" and "flood_s1:1 -> flood_s1:2" in why
    outcome, why = replay_outcome(Settings(), [{"hazard": "mining", "model_version": "mining_s2:1"}], SERVED)
    assert outcome == "new" and "not served" in why


def test_no_run_yet_is_new_and_triton_down_is_unknown():
    assert replay_outcome(Settings(), [], SERVED)[0] == "new"
    down = Settings(triton_url="127.0.0.1:1")  # nothing listens there
    assert replay_outcome(down, [{"hazard": "flood", "model_version": "flood_s1:2"}])[0] == "unknown"
