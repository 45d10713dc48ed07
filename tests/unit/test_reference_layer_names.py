"""Reference-layer names: the API and the CLI load layers through service/layers, which refuses a near
miss of a name the rules read (it would be stored and silently ignored by them)."""

import pytest

from terrawatch.domain.errors import InvalidInput
from terrawatch.service.layers import LAYER_KINDS, check_layer_name, used_by


@pytest.mark.parametrize("name", ["protected-areas", "Protected_Area", "mining-concessions", "indigenous_territories",
                                  "Reference-Water"])
def test_near_misses_of_rule_layers_are_refused(name):
    with pytest.raises(InvalidInput, match="not read by any rule"):
        check_layer_name(name)


@pytest.mark.parametrize("name", [*LAYER_KINDS, "aoi-north", "pa-1a2b3c", "protected", "water"])
def test_rule_layers_and_display_layers_are_accepted(name):
    check_layer_name(name)


def test_used_by_names_the_rules_reading_a_layer():
    assert used_by("mining_concession") == ["mining legality"]
    assert used_by("reference_water") == ["flood (reference water)"]
    assert used_by("aoi-north") == []
