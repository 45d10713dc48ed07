"""The fused S1 + S2 flood product written from the Sen1Floods11 Spain chip pair (real S1 dB + S2 L1C)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import rasterio

from terrawatch.ml.fusion import SOURCE_S1, SOURCE_S1_CLOUD, SOURCE_S2, SOURCE_S2_NOT_S1
from terrawatch.products.fused import fused_flood_product

from tests.conftest import SHARED, needs_shared

D = SHARED / "sen1floods11"
CHIP = "Spain_7370579"
pytestmark = needs_shared(f"sen1floods11/{CHIP}_S1Hand.tif", f"sen1floods11/{CHIP}_S2Hand.tif",
                          f"sen1floods11/{CHIP}_LabelHand.tif")


def _iou(lik: np.ndarray) -> float:
    with rasterio.open(D / f"{CHIP}_LabelHand.tif") as r:
        lab = r.read(1)
    pred, v, t = (lik >= 50) & (lik != 255), lab >= 0, lab == 1
    return float((pred & t & v).sum() / ((pred | t) & v).sum())


def test_fused_product_bands_sources_and_window(tmp_path):
    """Measured: the chip is cloud-free, so the product is flood-s2 (IoU 0.7666); with the S2 scene
    7 days from S1 and a 72 h window it is flood-s1 (0.6003, served without growing since issue 27)."""
    s1, s2 = D / f"{CHIP}_S1Hand.tif", D / f"{CHIP}_S2Hand.tif"
    r = fused_flood_product(s1, s2, tmp_path / "fused.tif")
    # measured: 8.37 % of the chip is S2 water that S1 calls dry (code 6, issue 27), the rest S2
    assert r.s2_used and r.shares["s2"] + r.shares["s2_water_not_seen_by_s1"] > 0.99 and r.shares["s2_water_not_seen_by_s1"] > 0.05
    with rasterio.open(r.path) as ds:
        assert ds.count == 2 and ds.dtypes == ("uint8", "uint8") and ds.descriptions == ("likelihood", "source")
        assert "1=s2" in ds.tags()["source_codes"]
        with rasterio.open(s1) as ref:
            assert ds.crs == ref.crs and ds.transform == ref.transform
        lik, src = ds.read(1), ds.read(2)
    assert set(np.unique(src)) <= {SOURCE_S2, SOURCE_S2_NOT_S1, 0}  # 6: S2 water that S1 calls dry
    assert _iou(lik) >= 0.756
    t0 = datetime(2019, 9, 18, 10, tzinfo=UTC)
    far = fused_flood_product(s1, s2, tmp_path / "far.tif", s1_time=t0, s2_time=t0 + timedelta(days=7),
                              window=timedelta(hours=72))
    assert not far.s2_used
    with rasterio.open(far.path) as ds:
        lik, src = ds.read(1), ds.read(2)
    assert set(np.unique(src)) <= {SOURCE_S1, 0}
    assert _iou(lik) >= 0.59


def test_s2_on_another_grid_is_reprojected_and_clouds_go_to_s1(tmp_path):
    """An S2 scene on a UTM grid is warped onto the S1 grid; a synthetic thick cloud block in it is
    flagged and filled from S1."""
    from rasterio.warp import calculate_default_transform, reproject, Resampling

    src_path = D / f"{CHIP}_S2Hand.tif"
    with rasterio.open(src_path) as src:
        data = src.read().astype(np.float32)
        data[:, 150:350, 150:350] = np.array([5000, 5200, 5000, 5000, 5100, 5200, 5300, 5400, 5400, 2000, 300, 3500, 2500],
                                             np.float32)[:, None, None]
        dst_crs = "EPSG:32630"
        tr, w, h = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *src.bounds, resolution=10)
        out = np.zeros((13, h, w), np.float32)
        for i in range(13):
            reproject(data[i], out[i], src_transform=src.transform, src_crs=src.crs, dst_transform=tr, dst_crs=dst_crs,
                      resampling=Resampling.bilinear, src_nodata=0, dst_nodata=0)
    utm = tmp_path / "s2_utm.tif"
    with rasterio.open(utm, "w", driver="GTiff", width=w, height=h, count=13, dtype="float32", crs=dst_crs,
                       transform=tr, nodata=0) as dst:
        dst.write(out)
    r = fused_flood_product(D / f"{CHIP}_S1Hand.tif", utm, tmp_path / "fused.tif")
    with rasterio.open(r.path) as ds:
        src_codes = ds.read(2)
    assert (src_codes[180:320, 180:320] == SOURCE_S1_CLOUD).mean() > 0.95
    assert np.isin(src_codes[400:, 400:], [SOURCE_S2, SOURCE_S2_NOT_S1]).mean() > 0.95


def test_wrong_band_counts_are_refused(tmp_path):
    s1 = D / f"{CHIP}_S1Hand.tif"
    with pytest.raises(ValueError, match="13 S2 bands"):
        fused_flood_product(s1, s1, tmp_path / "x.tif")
    with pytest.raises(ValueError, match="2 S1 bands"):
        fused_flood_product(D / f"{CHIP}_S2Hand.tif", D / f"{CHIP}_S2Hand.tif", tmp_path / "y.tif")


def test_cli_refuses_a_bad_window(tmp_path):
    from typer.testing import CliRunner

    from terrawatch.cli import app

    s1, s2 = D / f"{CHIP}_S1Hand.tif", D / f"{CHIP}_S2Hand.tif"
    r = CliRunner().invoke(app, ["fuse", "--s1", str(s1), "--s2", str(s2), "--out", str(tmp_path / "f.tif"),
                                 "--window-h", "-5"])
    assert r.exit_code == 2 and "window-h" in r.output
    assert not (tmp_path / "f.tif").exists()


def _product(path, lk, flags, crs="EPSG:32630", transform=None):
    from rasterio.transform import from_origin

    transform = transform or from_origin(500_000, 4_650_000, 10, 10)
    with rasterio.open(path, "w", driver="GTiff", width=lk.shape[1], height=lk.shape[0], count=2, dtype="uint8",
                       crs=crs, transform=transform, nodata=255) as ds:
        ds.write(lk, 1)
        ds.write(flags, 2)
    return path


def test_stored_products_fuse_block_by_block_like_the_whole_image(tmp_path):
    """fuse_flood_products (the pipeline's fused product) over 64 px windows of a 150 x 130 px scene equals
    fuse_s1_s2 on the whole image: S2 where it has a value, S1 under S2 cloud and no data."""
    from datetime import datetime, timedelta, timezone

    from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_NODATA
    from terrawatch.ml.fusion import SOURCE_S1, SOURCE_S1_CLOUD, SOURCE_S2, fuse_s1_s2
    from terrawatch.products.fused import fuse_flood_products

    rng = np.random.default_rng(3)
    h, w = 150, 130
    lk1 = rng.integers(0, 101, (h, w)).astype(np.uint8)
    lk2 = rng.integers(0, 101, (h, w)).astype(np.uint8)
    fl2 = np.zeros((h, w), np.uint8)
    fl2[10:40, 20:90] = EXCLUDED_CLOUD
    fl2[:, 110:] = EXCLUDED_NODATA
    lk2[fl2 != 0] = 255
    s1 = _product(tmp_path / "s1.tif", lk1, np.zeros((h, w), np.uint8))
    s2 = _product(tmp_path / "s2.tif", lk2, fl2)
    t1 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    out = fuse_flood_products(s1, s2, tmp_path / "f.tif", grid="s1", s1_time=t1, s2_time=t1 + timedelta(hours=30),
                              block=64)
    with rasterio.open(out.path) as ds:
        lk, src = ds.read(1), ds.read(2)
    whole = fuse_s1_s2(lk1 / 100.0, np.where(lk2 == 255, np.nan, lk2 / 100.0), s2_cloud=fl2 == EXCLUDED_CLOUD)
    assert (lk == whole.likelihood).all() and (src == whole.source).all()
    assert np.isin(src[fl2 == 0], [SOURCE_S2, SOURCE_S2_NOT_S1]).all() and (src[10:40, 20:90] == SOURCE_S1_CLOUD).all()
    assert (src[:, 110:] == SOURCE_S1).all() and out.s2_used
    # outside the window S2 is not used at all
    late = fuse_flood_products(s1, s2, tmp_path / "g.tif", grid="s2", s1_time=t1, s2_time=t1 + timedelta(hours=80),
                               window=timedelta(hours=72))
    with rasterio.open(late.path) as ds:
        assert not late.s2_used and (ds.read(2) == SOURCE_S1).all() and (ds.read(1) == lk1).all()


def test_reference_water_that_s1_calls_dry_is_not_observable_by_s1_in_the_stored_product(tmp_path):
    """Issue 27: the pipeline's fused product with the place's reference water (lon/lat polygons, as
    uow.reference.water returns them): where S1 decides (S2 no data) and its backscatter says dry on
    reference water, code 7 and no estimate (255), not dry; S1 water there and clear S2 stay as they were;
    block by block equals the whole image."""
    from datetime import datetime, timezone

    from rasterio.transform import from_origin
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    from terrawatch.domain.tiles import EXCLUDED_NODATA
    from terrawatch.ml.fusion import SOURCE_S1, SOURCE_S1_BLIND, fuse_s1_s2
    from terrawatch.products.fused import fuse_flood_products, reference_mask, reference_shapes

    h, w = 150, 130
    lk1 = np.full((h, w), 10, np.uint8)  # S1 dry everywhere ...
    lk1[:20, :] = 90  # ... but water in the top rows
    lk2 = np.full((h, w), 5, np.uint8)
    fl2 = np.zeros((h, w), np.uint8)
    fl2[:, 100:] = EXCLUDED_NODATA  # S1 alone in the east
    lk2[fl2 != 0] = 255
    s1 = _product(tmp_path / "s1.tif", lk1, np.zeros((h, w), np.uint8))
    s2 = _product(tmp_path / "s2.tif", lk2, fl2)
    # reference water: a lake over rows 0-60, cols 80-130 (UTM 30N 10 m grid), given in lon/lat
    lake = shape(transform_geom("EPSG:32630", "EPSG:4326", mapping(box(500_800, 4_649_400, 501_300, 4_650_000))))
    t1 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    out = fuse_flood_products(s1, s2, tmp_path / "f.tif", grid="s1", s1_time=t1, s2_time=t1, block=64,
                              reference_water=[lake])
    with rasterio.open(out.path) as ds:
        lk, src = ds.read(1), ds.read(2)
    assert (src[22:58, 102:128] == SOURCE_S1_BLIND).all() and (lk[22:58, 102:128] == 255).all()
    assert (src[2:18, 102:128] == SOURCE_S1).all() and (lk[2:18, 102:128] == 90).all()  # S1 sees that water
    assert (src[62:, 100:] == SOURCE_S1).all() and (lk[62:, 100:] == 10).all()  # off the lake: dry stays dry
    assert not (src[:, :100] == SOURCE_S1_BLIND).any()  # clear S2 decides on the lake's west part
    assert out.shares["not_observable_by_s1"] > 0.04
    ref = reference_mask(reference_shapes([lake], "EPSG:32630"), from_origin(500_000, 4_650_000, 10, 10), (h, w))
    whole = fuse_s1_s2(lk1 / 100.0, np.where(lk2 == 255, np.nan, lk2 / 100.0), reference_water=ref)
    assert (lk == whole.likelihood).all() and (src == whole.source).all()
    # without reference water the same pixels are S1's dry
    plain = fuse_flood_products(s1, s2, tmp_path / "g.tif", grid="s1", s1_time=t1, s2_time=t1, block=64)
    with rasterio.open(plain.path) as ds:
        assert not (ds.read(2) == SOURCE_S1_BLIND).any() and (ds.read(1)[22:58, 102:128] == 10).all()


def test_pipeline_fusion_passes_the_places_reference_water(tmp_path):
    """service/pairing.fuse_flood (what the worker calls) reads the place's reference water with the partner and
    hands it to the fused product: an S1 scene whose dry backscatter lies on a reference lake, with an S2
    partner that has no data there, gets code 7 on the lake (PostGIS replaced by the in-memory unit of work of
    tests/unit/fakes.py answering the same two queries; the products are real files)."""
    from datetime import datetime, timedelta, timezone

    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    from terrawatch.domain.scene import Scene, Sensor
    from terrawatch.domain.tiles import EXCLUDED_NODATA
    from terrawatch.ml.fusion import SOURCE_S1_BLIND
    from terrawatch.service import pairing
    from terrawatch.settings import Settings

    settings = Settings(state_dir=tmp_path / "state")
    h, w = 150, 130
    fl2 = np.zeros((h, w), np.uint8)
    fl2[:, 100:] = EXCLUDED_NODATA
    lk2 = np.where(fl2 != 0, 255, 5).astype(np.uint8)
    for sid, lk, fl in (("S1A_T_1", np.full((h, w), 10, np.uint8), np.zeros((h, w), np.uint8)),
                        ("S2A_T_2", lk2, fl2)):
        (settings.products_dir / sid).mkdir(parents=True)
        _product(settings.products_dir / sid / "flood_likelihood.tif", lk, fl)
    lake = shape(transform_geom("EPSG:32630", "EPSG:4326", mapping(box(500_800, 4_649_400, 501_300, 4_650_000))))
    t1 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    asked = []

    from tests.unit.fakes import FakeDb

    class Db(FakeDb):
        def unit_of_work(self, operation="scene"):
            uow = super().unit_of_work(operation)
            uow.reference.water = lambda footprint: asked.append(footprint) or [lake]
            return uow

    db = Db(partners=[("S2A_T_2", t1 + timedelta(hours=5))])
    scene = Scene(id="S1A_T_1", sensor=Sensor.S1, platform="sentinel-1a", sensing_time=t1,
                  footprint=box(-3.0, 41.9, -2.9, 42.0), bands=(), hazards=("flood",))
    st = pairing.fuse_flood(settings, db.unit_of_work, scene, {"flood": str(settings.products_dir / "S1A_T_1" / "flood_likelihood.tif")})
    assert st["status"] == "fused" and st["shares"]["not_observable_by_s1"] > 0.04, st
    assert asked == [scene.footprint]
    with rasterio.open(settings.products_dir / "S1A_T_1" / "flood_fused.tif") as ds:
        src, lk = ds.read(2), ds.read(1)
    assert (src[22:58, 102:128] == SOURCE_S1_BLIND).all() and (lk[22:58, 102:128] == 255).all()
