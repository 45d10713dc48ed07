"""Which pre-event scene S1 change detection compares with (store/uow.pre_event_s1), in real PostGIS."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import box
from sqlalchemy import insert

from terrawatch.domain.polygons import as_multipolygon
from terrawatch.domain.scene import scene_from_item
from terrawatch.store import tables as t
from terrawatch.store.repositories import _geom
from terrawatch.store.uow import UnitOfWork, engine_for

pytestmark = pytest.mark.integration
DAY = timedelta(days=1)


def _item(sid: str, when: datetime, fp, orbit: int | None, level: str = "GRD", named: str | None = None) -> dict:
    props = {"datetime": when.isoformat(), "platform": "sentinel-1a", "constellation": "sentinel-1",
             "processing:level": level}
    if orbit is not None:
        props["sat:relative_orbit"] = orbit
    if named is not None:
        props["terrawatch:pre_event_scene"] = named
    return {"type": "Feature", "stac_version": "1.1.0", "id": sid, "geometry": fp.__geo_interface__,
            "properties": props, "assets": {"vv": {"href": "file:///data/vv.tif"}, "vh": {"href": "file:///data/vh.tif"}}}


def test_pre_event_scene_is_the_latest_processed_one_of_the_orbit_without_a_flood_alert(stack):
    engine = engine_for(stack.settings.db_url)
    now = datetime.now(timezone.utc)
    # a place and an orbit no other test uses
    x, y = random.uniform(-60, 60), random.uniform(-40, 40)
    fp = box(x, y, x + 0.05, y + 0.05)
    orbit = random.randint(1, 175)
    other = orbit % 175 + 1
    tag = uuid.uuid4().hex[:6]

    def sid(name: str) -> str:
        return f"pre-{tag}-{name}"

    earlier = {  # name: (days before now, footprint, orbit, level, status)
        "a": (30, fp, orbit, "GRD", "processed"),  # the expected reference
        "b_alerted": (12, fp, orbit, "GRD", "processed"),  # in flood already: skipped
        "c_other_orbit": (2, fp, other, "GRD", "processed"),
        "d_too_old": (90, fp, orbit, "GRD", "processed"),
        "e_in_flight": (5, fp, orbit, "GRD", "processing"),
        "f_failed": (3, fp, orbit, "GRD", "failed"),
        "g_rtc": (1, fp, orbit, "RTC", "processed"),
        "h_little_overlap": (1, box(x + 0.04, y, x + 0.09, y + 0.05), orbit, "GRD", "processed"),
    }
    with UnitOfWork(engine, "test") as uow:
        for name, (days, geom, orb, level, status) in earlier.items():
            scene = scene_from_item(_item(sid(name), now - days * DAY, geom, orb, level))
            uow.scenes.upsert(scene)
            uow.conn.execute(t.scenes.update().where(t.scenes.c.id == scene.id).values(status=status))
        alert_id = uuid.uuid4()
        uow.conn.execute(insert(t.alerts).values(
            id=alert_id, hazard="flood", status="open", confidence="high", severity="moderate",
            geom=_geom(as_multipolygon(fp)), area_ha=50.0, likelihood=80.0, sensors=["sentinel-1"],
            observations=1, first_sensed=now - 12 * DAY, last_sensed=now - 12 * DAY))
        uow.conn.execute(insert(t.detections).values(
            scene_id=sid("b_alerted"), hazard="flood", model_version="flood_s1:1", geom=_geom(as_multipolygon(fp)),
            area_ha=50.0, likelihood=80.0, sensing_time=now - 12 * DAY, alert_id=alert_id))

    def pick(item: dict, max_age_days: float = 60) -> tuple[str | None, str]:
        with UnitOfWork(engine, "test") as uow:
            got, how = uow.scenes.pre_event_s1(scene_from_item(item), timedelta(days=max_age_days))
        return (got["id"] if got else None), how

    post = _item(sid("post"), now, fp, orbit)
    assert pick(post) == (sid("a"), "latest of its relative orbit without a flood alert")
    got, why = pick(post, max_age_days=20)  # a is 30 days old, b raised an alert
    assert got is None and "relative orbit" in why
    # named in the event: taken if it qualifies; never a scene that raised a flood alert (it would hide the water)
    assert pick(_item(sid("post2"), now, fp, orbit, named=sid("a")))[0] == sid("a")
    for bad in ("b_alerted", "c_other_orbit", "d_too_old", "f_failed", "g_rtc", "h_little_overlap", "missing"):
        got, why = pick(_item(sid("post3"), now, fp, orbit, named=sid(bad)))
        assert got is None and sid(bad) in why, bad
    got, why = pick(_item(sid("post4"), now, fp, None))
    assert got is None and "sat:relative_orbit" in why
    # a named scene without an orbit on either side is taken on the footprint alone
    with UnitOfWork(engine, "test") as uow:
        uow.scenes.upsert(scene_from_item(_item(sid("i_no_orbit"), now - 4 * DAY, fp, None)))
        uow.conn.execute(t.scenes.update().where(t.scenes.c.id == sid("i_no_orbit")).values(status="processed"))
    assert pick(_item(sid("post5"), now, fp, None, named=sid("i_no_orbit")))[0] == sid("i_no_orbit")
    # a later scene is never a pre-event scene
    assert pick(_item(sid("post6"), now - 40 * DAY, fp, orbit))[0] == sid("d_too_old")
