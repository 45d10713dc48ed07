"""Issue 27: a water body in sunlit surroundings is not cloud shadow (terrawatch.ml.shadow_water.sunlit_water).

Synthetic TOA reflectance x 10000 (13 L1C bands) on a 30 m grid; the CNN is replaced by a fixed class map, so
nothing here loads a model."""

from __future__ import annotations

import numpy as np
import pytest

from terrawatch.ml import cloud as cloud_mod
from terrawatch.ml.cloud import CLOUD, SHADOW, SunAngles, cloud_layers, water_like
from terrawatch.ml.shadow_water import sunlit_water

# B1..B12 TOA reflectance x 10000: vegetated land (NIR far above green), open water (NIR below green), thick cloud
LAND = np.array([1300, 1000, 900, 800, 1500, 2600, 3000, 3100, 3200, 900, 15, 2000, 1100], np.float32)
WATER = np.array([1400, 1300, 1300, 1200, 900, 600, 500, 450, 400, 100, 5, 150, 100], np.float32)
CLOUD13 = np.array([5000, 5200, 5000, 5000, 5100, 5200, 5300, 5400, 5400, 2000, 300, 3500, 2500], np.float32)
SHADE = 0.3  # shadowed land keeps ~30 % of its reflectance (diffuse light only)


def _sunlit(s2: np.ndarray, cloud: np.ndarray, shadow_class: np.ndarray, gsd_m: float) -> np.ndarray:
    refl = s2 / 10000
    return sunlit_water(refl[2], refl[7], water_like(refl), cloud, shadow_class, gsd_m)


def _scene(h: int = 120, w: int = 120) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (LAND[:, None, None] * rng.uniform(0.95, 1.05, size=(13, h, w))).astype(np.float32)


def test_pond_in_sunlit_land_is_water_and_pond_in_shadowed_land_is_not():
    s2 = _scene()
    s2[:, 20:26, 20:26] = WATER[:, None, None]  # a pond in sunlit land
    s2[:, 60:100, 60:100] *= SHADE  # shadowed land
    s2[:, 76:82, 76:82] = WATER[:, None, None] * SHADE  # a pond inside the shadow
    cloud = np.zeros(s2.shape[1:], bool)
    shadow_class = np.zeros_like(cloud)
    shadow_class[16:30, 16:30] = True  # the CNN's blob around the sunlit pond
    shadow_class[60:100, 60:100] = True
    out = _sunlit(s2, cloud, shadow_class, 30.0)
    assert out[20:26, 20:26].all()
    assert not out[60:100, 60:100].any()
    assert out.sum() == 36


def test_shore_next_to_shadowed_land_and_tiny_bodies_keep_the_mask():
    s2 = _scene()
    s2[:, 40:50, 40:60] = WATER[:, None, None]  # a 10 x 20 px lake...
    s2[:, 40:50, 60:64] *= SHADE  # ...with shadowed land on a short stretch of its east shore
    s2[:, 90, 90] = WATER  # one 30 m pixel: below the 1800 m2 smallest body
    cloud = np.zeros(s2.shape[1:], bool)
    out = _sunlit(s2, cloud, np.zeros_like(cloud), 30.0)
    assert out[40:50, 40:58].all()  # sunlit: under half of its surroundings are dark
    assert not out[40:50, 59].any()  # within 30 m of the shadowed shore: kept
    assert not out[90, 90]
    # the same lake with shadowed land all around it: not sunlit, nothing unmasked
    s2[:, 35:55, 35:69] = np.where(s2[7, 35:55, 35:69] > s2[2, 35:55, 35:69], s2[:, 35:55, 35:69] * SHADE,
                                   s2[:, 35:55, 35:69])
    assert not _sunlit(s2, cloud, np.zeros_like(cloud), 30.0)[40:50, 40:60].any()


def test_no_clear_land_no_reference_nothing_unmasked():
    s2 = _scene(40, 40)
    s2[:, 10:20, 10:20] = WATER[:, None, None]
    cloud = np.ones(s2.shape[1:], bool)
    cloud[5:25, 5:25] = False
    shadow_class = ~cloud  # every pixel off the cloud is shadow class: no clear land to take the NIR reference from
    assert not _sunlit(s2, cloud, shadow_class, 30.0).any()


def test_cloud_layers_unmasks_a_sunlit_pond_on_the_shadow_sweep_and_keeps_the_real_shadow(monkeypatch):
    """A cloud, its shadow on land (shifted away from a south-east sun) and a pond further along the same sweep that
    the CNN calls shadow together with the sunlit land around it (a 30 m blob: the region is mostly land, so the
    region rule of the matched-shadow step keeps it masked). The pond is not shadow; the shadowed land is."""
    h = w = 160
    cls = np.zeros((h, w), np.uint8)
    cls[100:120, 100:120] = CLOUD
    cls[85:105, 85:105] = SHADOW  # the cloud shifted 15 px (450 m) north-west
    cls[36:50, 36:50] = SHADOW  # pond + land ring, 64 px north-west of the cloud: on the 200 m..12 km sweep
    monkeypatch.setattr(cloud_mod, "cloud_shadow_classes", lambda *a, **k: cls.copy())
    s2 = _scene(h, w)
    s2[:, 100:120, 100:120] = CLOUD13[:, None, None]
    s2[:, 85:100, 85:100] *= SHADE
    s2[:, 40:46, 40:46] = WATER[:, None, None]
    sun = SunAngles(135.0, 40.0, "metadata")
    before = cloud_layers(s2, gsd_m=30.0, product_level="l2a", sun=sun, sunlit_water_guard=False)
    assert before.shadow[40:46, 40:46].all()  # the previous mask: the pond is shadow
    cl = cloud_layers(s2, gsd_m=30.0, product_level="l2a", sun=sun)
    assert not cl.shadow[40:46, 40:46].any()
    assert cl.shadow[85:100, 85:100].all()
    assert (cl.shadow ^ before.shadow).sum() == 36  # nothing else changed


@pytest.mark.parametrize("gsd", [10.0, 60.0])
def test_distances_are_in_metres(gsd):
    """The same 180 m pond, 60 m surroundings and 30 m shore rule on a 10 m and a 60 m grid."""
    f = 30.0 / gsd
    n = int(round(120 * f))
    s2 = _scene(n, n)
    a, b = int(round(30 * f)), int(round(36 * f))
    s2[:, a:b, a:b] = WATER[:, None, None]
    cloud = np.zeros(s2.shape[1:], bool)
    out = _sunlit(s2, cloud, np.zeros_like(cloud), gsd)
    assert out[a:b, a:b].all() and out.sum() == (b - a) ** 2
