"""The map's legend is generated from the colours the server and the page draw (no drift)."""

from __future__ import annotations

import re

from terrawatch.api.routes.map import HAZARD_COLOURS, legend
from terrawatch.domain.hazards import HAZARDS
from terrawatch.products.tiles import RAMPS, likelihood_colormap
from terrawatch.settings import REPO_ROOT

MAP_JS = REPO_ROOT / "services" / "terrawatch" / "api" / "web" / "src" / "map.js"


def test_vector_colours_match_the_page_and_cover_every_hazard():
    js = MAP_JS.read_text()
    expr = re.search(r"const HAZARD_COLOUR = \[(.*?)\];", js, re.S).group(1)
    pairs = dict(re.findall(r'"(\w+)", "(#[0-9a-f]{6})"', expr))
    assert pairs == HAZARD_COLOURS
    assert set(HAZARDS) == set(HAZARD_COLOURS)


def test_every_raster_ramp_is_in_the_legend_with_the_served_colours():
    lg = legend()
    assert set(lg["ramps"]) == set(RAMPS)
    for hazard, ramp in lg["ramps"].items():
        r, g, b, a = likelihood_colormap(hazard)[100]
        assert ramp["colours"][-1] == f"rgba({r},{g},{b},{a / 255:.2f})"
        assert ramp["colours"][0].endswith(",0.00)")  # likelihood 0 is transparent
    # the page's footprint and reference colours are listed too
    js = MAP_JS.read_text()
    for colour in ("#d62728", "#6a3d9a", "#aaa", "#555"):
        assert colour in js
    assert {"#d62728", "#6a3d9a", "#aaaaaa", "#555555"} <= set(lg["other"].values())
