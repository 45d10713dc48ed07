"""The S1 water network and the S1 Otsu baseline on the held-out Sen1Floods11 Spain chip (real data, the trained
network: moved from tests/unit to keep the unit suite fast)."""

from __future__ import annotations

import numpy as np

from terrawatch.inference.local import predict_water_s1
from terrawatch.ml import registry
from terrawatch.ml.baselines import otsu_water_s1
from terrawatch_research.eval.metrics import label_scores

from tests.conftest import shared_path

# models/flood_s1 (U-Net 1/, served without post-processing since issue 27) measures 0.6003 on the held-out
# Spain chip (model card; 0.6314 with the hysteresis growing that nested cross-validation rejected).
SPAIN_MIN_IOU = 0.59
OTSU_MIN_IOU = 0.57


def spain() -> dict:
    from terrawatch.ml.datasets import Sen1Floods11

    root = shared_path("sen1floods11", "Spain_7370579_S1Hand.tif").parent
    return Sen1Floods11(root)[0]


def test_flood_s1_on_spain_chip():
    s = spain()
    p = predict_water_s1(s["s1"])
    iou = label_scores(np.nan_to_num(p) >= 0.5, s["mask"])["iou"]
    assert iou >= SPAIN_MIN_IOU, f"Spain water IoU {iou:.3f} < {SPAIN_MIN_IOU}"


def test_served_path_is_the_network_without_growing():
    """Issue 27: the served probability is the network's (growing lost the OMBRIA holdout by 0.045 IoU under
    nested cross-validation); re-enabling growing in the served path fails here."""
    from terrawatch.ml import flood_s1

    s = spain()
    net = flood_s1.load_net(registry.latest_version_dir("flood_s1") / "model.pt")
    x = s["s1"][:, :256, :256]
    raw = flood_s1.predict_batch(net, x[None], grow=False)[0]
    grown = flood_s1.predict_batch(net, x[None], grow=True)[0]
    served = predict_water_s1(x)
    assert ((grown >= 0.5) & (raw < 0.5)).sum() > 0  # growing would change this crop
    np.testing.assert_allclose(served, raw, atol=1e-5)


def test_windowed_inference_matches_direct_in_the_interior():
    s = spain()
    from terrawatch.ml import flood_s1

    net = flood_s1.load_net(registry.latest_version_dir("flood_s1") / "model.pt")
    x = s["s1"][None, :, :384, :384]
    direct = flood_s1.predict_batch(net, x)[0]
    old = flood_s1.WINDOW
    try:
        flood_s1.WINDOW = 192
        windowed = flood_s1.predict_batch(net, x)[0]
    finally:
        flood_s1.WINDOW = old
    agree = ((direct >= 0.5) == (windowed >= 0.5)).mean()
    assert agree > 0.97


def test_otsu_baseline_on_spain():
    s = spain()
    assert label_scores(np.nan_to_num(otsu_water_s1(s["s1"])) >= 0.5, s["mask"])["iou"] >= OTSU_MIN_IOU
