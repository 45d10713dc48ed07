"""Areas of applicability: shipped files, scene relation, and clipping at the pixel level (pure)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box, mapping

from terrawatch.domain.aoa import INSIDE, OUTSIDE, PARTIAL, InvalidAoA, load_aoa, relate
from terrawatch.domain.hazards import REGISTRY
from terrawatch.domain.tiles import EXCLUDED_AOA, EXCLUDED_NODATA, TileGrid
from terrawatch.settings import REPO_ROOT
from terrawatch.domain.jobs import HazardJob
from terrawatch.inference.strategies import classify_tiles

SPAIN = box(-0.95, 38.05, -0.9, 38.1)  # Sen1Floods11 Spain chip area
MADRE_DE_DIOS = box(-70.5, -12.9, -70.45, -12.85)


def test_every_model_ships_an_aoa_documented_in_its_card():
    for hm in REGISTRY:
        aoa = load_aoa(REPO_ROOT / "models" / hm.aoa)
        assert aoa.is_valid and not aoa.is_empty
        assert "aoa.geojson" in (REPO_ROOT / "models" / hm.model / "README.md").read_text(), hm.model


def test_mining_aoa_is_the_amazon_not_spain():
    mining = load_aoa(REPO_ROOT / "models" / "mining_s2" / "aoa.geojson")
    assert relate(SPAIN, mining)[0] == OUTSIDE
    assert relate(MADRE_DE_DIOS, mining)[0] == INSIDE
    flood = load_aoa(REPO_ROOT / "models" / "flood_s1" / "aoa.geojson")
    assert relate(SPAIN, flood)[0] == INSIDE


def test_curated_peru_mining_points_lie_inside_the_mining_aoa():
    from shapely.geometry import shape

    from tests.conftest import shared_path

    peru = json.loads(shared_path("mining-detector", "BD_MineriaAurifera_Peru-curated2026-04-06.geojson").read_text())
    mining = load_aoa(REPO_ROOT / "models" / "mining_s2" / "aoa.geojson")
    assert len(peru["features"]) == 1024
    assert all(mining.covers(shape(f["geometry"]).centroid) for f in peru["features"])


def test_relate_partial_and_bad_files(tmp_path):
    aoa = box(0, 0, 1, 1)
    where, part = relate(box(0.5, 0.5, 1.5, 1.5), aoa)
    assert where == PARTIAL and part.equals(box(0.5, 0.5, 1, 1))
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InvalidAoA):
        load_aoa(bad)


def test_pixels_outside_the_aoa_are_not_inferred_nor_detected():
    """A 200 x 300 px scene, 10 m UTM-like grid; the AoA covers columns 0..99 only. The model says 1.0
    everywhere: detections and likelihoods exist only left of column 100; right of it the exclusion band
    says EXCLUDED_AOA; tiles without an AoA pixel never reach the model."""
    transform = Affine(10.0, 0, 500_000.0, 0, -10.0, 4_000_000.0)
    h, w = 200, 300
    aoa = mapping(box(500_000.0, 4_000_000.0 - h * 10, 500_000.0 + 100 * 10, 4_000_000.0))
    grid = TileGrid(h, w, size=64, overlap=8)
    tiles = list(grid)
    arrays = np.ones((len(tiles), 2, 64, 64), dtype=np.float32)
    arrays[:, :, :8, :] = np.nan  # read windows reach past the scene edge: no data there (like the reader)
    called: list[int] = []

    def probabilities(job, ts, arr):
        called.extend(t.index for t in ts)
        return np.ones((len(ts), 64, 64), dtype=np.float32)

    job = HazardJob("mining", "mining_s2", threshold=0.5, aoa=aoa)
    results, _ = classify_tiles(tiles, arrays, [job], transform, probabilities)
    lk = np.zeros((h, w), dtype=np.uint8)
    ex = np.zeros((h, w), dtype=np.uint8)
    for t, r in zip(tiles, results):
        lk[t.core_row:t.core_row + t.core_h, t.core_col:t.core_col + t.core_w] = r.likelihood["mining"]
        ex[t.core_row:t.core_row + t.core_h, t.core_col:t.core_col + t.core_w] = r.exclusion["mining"]
        for part in r.parts["mining"]:
            assert part.geom.bounds[2] <= 100, "a detection right of the AoA edge"
    assert (ex[:, 100:] == EXCLUDED_AOA).all() and (lk[:, 100:] == 255).all()
    inside_ok = ex[:, :100] != EXCLUDED_NODATA
    assert (lk[:, :100][inside_ok] == 100).all() and not (ex[:, :100] & EXCLUDED_AOA).any()
    assert sum(r.outside_aoa["mining"] for r in results) == 200 * 200  # every valid pixel right of column 100
    # tile cores are 48 px: columns 96..143 contain AoA pixels (96..99), 144.. do not -> never inferred
    inferred_cols = {t.core_col for t in tiles if t.index in called}
    assert inferred_cols == {0, 48, 96}
    # without an AoA every tile is inferred and nothing is flagged
    called.clear()
    results, _ = classify_tiles(tiles, arrays, [HazardJob("mining", "mining_s2", 0.5)], transform, probabilities)
    assert len(called) == len(tiles) and not any((r.exclusion["mining"] & EXCLUDED_AOA).any() for r in results)
