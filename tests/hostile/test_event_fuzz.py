"""Property: any Kafka message value is either a valid scene or an InvalidEvent with a reason.

Nothing else may escape ``parse_event`` (the worker's first step), or one poison message
would crash-loop the consumer: it is never committed, so a restart reads it again.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terrawatch.domain.errors import InvalidEvent
from terrawatch.domain.scene import Scene, parse_event

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)

VALID = {
    "type": "Feature", "stac_version": "1.0.0", "id": "S1A_fuzz",
    "geometry": {"type": "Polygon", "coordinates": [[[-3.0, 42.0], [-2.9, 42.0], [-2.9, 42.1], [-3.0, 42.1],
                                                      [-3.0, 42.0]]]},
    "bbox": [-3.0, 42.0, -2.9, 42.1],
    "properties": {"datetime": "2025-12-31T10:00:00Z", "platform": "sentinel-1a", "constellation": "sentinel-1"},
    "assets": {"data": {"href": "file:///data/s1.tif", "roles": ["data"], "terrawatch:bands": ["VV", "VH"],
                        "terrawatch:units": "dB"}},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _outcome(raw) -> str:
    try:
        scene = parse_event(raw, now=NOW)
    except InvalidEvent as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return "invalid"
    assert isinstance(scene, Scene)
    return "valid"


def test_the_template_is_valid():
    assert _outcome(json.dumps(VALID)) == "valid"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw):
    _outcome(raw)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json(value):
    _outcome(json.dumps(value))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(VALID) if p]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=json_values)
def test_one_field_replaced_by_anything(path, value):
    item = copy.deepcopy(VALID)
    node = item
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    _outcome(json.dumps(item))


@settings(max_examples=50, deadline=None)
@given(depth=st.integers(1_000, 200_000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting(depth, opener):
    assert _outcome(opener * depth) == "invalid"


@settings(max_examples=30, deadline=None)
@given(digits=st.integers(4_000, 20_000))
def test_huge_numbers(digits):
    item = copy.deepcopy(VALID)
    raw = json.dumps(item).replace('"bbox": [-3.0', '"bbox": [' + "9" * digits)
    _outcome(raw)
