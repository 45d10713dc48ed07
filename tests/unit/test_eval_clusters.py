"""terrawatch_research.eval.clusters: MMU, the merge distance and true/false flags (10 m pixels, 1 px = 0.01 ha)."""

import numpy as np

from terrawatch_research.eval.clusters import clusters


def _box(p, r, c, h, w, v=0.9):
    p[r:r + h, c:c + w] = v


def test_parts_within_the_merge_distance_join_and_small_parts_drop():
    p = np.zeros((300, 300), np.float32)
    label = np.zeros((300, 300), np.int8)
    _box(p, 10, 10, 10, 10)      # 1 ha
    _box(p, 10, 50, 10, 10)      # 1 ha, 300 m away: joins the first
    _box(p, 200, 200, 10, 10)    # 1 ha, far: its own cluster
    _box(p, 100, 250, 5, 5)      # 0.25 ha: below the 0.5 ha MMU
    label[200:210, 200:210] = 1
    out = clusters(p, label, mmu_ha=0.5, merge_m=500)
    assert [c["area_ha"] for c in out] == [2.0, 1.0]
    assert [c["true"] for c in out] == [False, True]
    assert out[0]["likelihood"] == 90.0
    assert [c["area_ha"] for c in clusters(p, label, mmu_ha=0.5, merge_m=200)] == [1.0, 1.0, 1.0]


def test_no_water_no_cluster():
    assert clusters(np.full((50, 50), np.nan, np.float32), np.zeros((50, 50), np.int8)) == []
