"""Polygonize: areas in hectares, minimum mapping unit, EPSG:4326 output, valid geometries."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from terrawatch.domain.polygons import cluster
from terrawatch.vectorize.polygonize import polygonize

UTM = "EPSG:32630"
T = Affine(10, 0, 500_000, 0, -10, 4_650_000)  # 10 m pixels


def test_square_area_and_likelihood():
    mask = np.zeros((100, 100), bool)
    mask[10:60, 20:70] = True  # 50 x 50 px = 500 m x 500 m = 25 ha
    lk = np.where(mask, 80, 0).astype(np.uint8)
    dets = polygonize(mask, lk, T, UTM, "flood", min_area_ha=0.2)
    assert len(dets) == 1
    d = dets[0]
    assert d.area_ha == pytest.approx(25.0, rel=0.01)
    assert d.likelihood == pytest.approx(80.0)
    assert d.geometry.is_valid
    minx, miny, maxx, maxy = d.geometry.bounds
    assert -4 < minx < -2 and 41 < miny < 43  # lon/lat near 3W 42N


def test_minimum_mapping_unit_drops_small_regions():
    mask = np.zeros((100, 100), bool)
    mask[0:4, 0:4] = True  # 16 px = 0.16 ha
    mask[50:60, 50:60] = True  # 1 ha
    dets = polygonize(mask, mask.astype(np.uint8) * 90, T, UTM, "flood", min_area_ha=0.2)
    assert [round(d.area_ha, 2) for d in dets] == [1.0]


def test_diagonal_pixels_are_one_region():
    mask = np.eye(50, dtype=bool)
    dets = polygonize(mask, mask.astype(np.uint8) * 60, T, UTM, "flood", min_area_ha=0.0)
    assert len(dets) == 1
    assert dets[0].pixels == 50


def test_empty_mask():
    assert polygonize(np.zeros((5, 5), bool), np.zeros((5, 5), np.uint8), T, UTM, "flood", 0.2) == []


def test_cluster_by_distance_in_metres():
    mask = np.zeros((200, 200), bool)
    mask[0:10, 0:10] = True
    mask[0:10, 30:40] = True  # 200 m gap
    mask[150:160, 150:160] = True  # far away
    dets = polygonize(mask, mask.astype(np.uint8) * 90, T, UTM, "flood", min_area_ha=0.0)
    groups = cluster([d.geometry for d in dets], distance_m=250)
    assert sorted(len(g) for g in groups) == [1, 2]
    assert len(cluster([d.geometry for d in dets], distance_m=100)) == 3
