"""Backfill helpers: sensing time from file names; Sentinel Hub request splitting."""

from __future__ import annotations

from datetime import datetime, timezone

from terrawatch.imagery.sentinelhub import pixel_windows
from terrawatch.ingest.sources import time_from_name


def test_sensing_time_from_sentinel_names():
    assert time_from_name("S2B_MSIL1C_20240501T100559_N0510_R022_T33TVL_20240501T120000") == datetime(
        2024, 5, 1, 10, 5, 59, tzinfo=timezone.utc)
    assert time_from_name("S1A_IW_GRDH_1SDV_20240503T050100_x") == datetime(2024, 5, 3, 5, 1, tzinfo=timezone.utc)
    assert time_from_name("flood_20190918") == datetime(2019, 9, 18, tzinfo=timezone.utc)
    assert time_from_name("Spain_7370579_S1Hand") is None
    assert time_from_name("tile_99999999_x") is None


def test_process_windows_cover_the_raster_once():
    wins = list(pixel_windows(250, 150, 100))
    assert [(w.col_off, w.row_off, w.width, w.height) for w in wins] == [
        (0, 0, 100, 100), (100, 0, 100, 100), (200, 0, 50, 100), (0, 100, 100, 50), (100, 100, 100, 50),
        (200, 100, 50, 50)]
    assert sum(w.width * w.height for w in pixel_windows(10980, 10980, 2500)) == 10980 * 10980
