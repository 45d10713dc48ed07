"""Scenes that pair with the one being processed: S1 flood's pre-event scene (change detection) and the
other sensor's flood product (the fused S1 + S2 flood product). Called by ``service/pipeline.py``; the SQL
is in ``store/pairing.py``."""

from __future__ import annotations

import logging

from terrawatch.domain.scene import Scene, Sensor
from terrawatch.service.ports import AssetChecks, UnitOfWork, UnitOfWorkFactory
from terrawatch.settings import Settings

log = logging.getLogger("terrawatch.service.pipeline")


def pre_event_scene(settings: Settings, assets: AssetChecks, scene: Scene, uow: UnitOfWork) -> tuple[dict | None, dict]:
    """S1 change detection's pre-event scene: (its STAC Item or None, status for hazard_status). Its assets
    pass the same asset policy as the scene's own (the Item is read back from PostGIS, not trusted)."""
    from datetime import timedelta

    from terrawatch.domain.errors import InvalidEvent, UnreadableAsset
    from terrawatch.domain.scene import scene_from_item

    if not settings.s1_change_detection:
        return None, {"status": "off"}
    item, how = uow.scenes.pre_event_s1(scene, timedelta(days=settings.s1_change_max_age_days))
    if item is None:
        log.info("scene %s: flood without change detection: %s", scene.id, how)
        return None, {"status": "no_pre_event_scene", "reason": how}
    try:
        pre = scene_from_item(item)
        assets.check_scene(pre)
    except (InvalidEvent, UnreadableAsset, ValueError) as exc:
        log.warning("scene %s: pre-event scene %s refused: %s", scene.id, item.get("id"), exc)
        return None, {"status": "pre_event_refused", "pre_event_scene": item.get("id"),
                      "reason": f"{type(exc).__name__}: {exc}"[:300]}
    log.info("scene %s: flood change detection against %s (%s, %s)", scene.id, pre.id, how,
             pre.sensing_time.isoformat())
    return item, {"status": "applied", "pre_event_scene": pre.id, "pre_event_time": pre.sensing_time.isoformat(),
                  "chosen": how}


def alert_evidence(change: dict | None) -> dict:
    """What an alert carries of change detection: the pre-event scene the backscatter drop was measured against."""
    if not change or change.get("status") != "applied":
        return {}
    return {"change_detection": {k: change[k] for k in ("pre_event_scene", "pre_event_time")}}


def fuse_flood(settings: Settings, unit_of_work: UnitOfWorkFactory, scene: Scene, products: dict[str, str]
               ) -> dict | None:
    """Fused S1 + S2 flood product ``<scene>/flood_fused.tif`` on this scene's grid, with the flood product of
    the other sensor's scene nearest in time within ``fusion_window_h`` (S2 where clear, S1 elsewhere;
    products/fused.py). Returns the status for hazard_status, or None when the scene has no flood product.
    A failure is logged and recorded, never fails the scene."""
    if "flood" not in products or settings.fusion_window_h <= 0:
        return None
    from datetime import timedelta

    from terrawatch.products.fused import FUSED_FILENAME, fuse_flood_products
    from terrawatch.products.tiles import ProductNotFound, product_file

    window = timedelta(hours=settings.fusion_window_h)
    try:
        with unit_of_work("fusion") as uow:
            partners = uow.scenes.flood_partners(scene, window)
            ref = uow.reference.water(scene.footprint)  # S1 dry on it: "not observable by S1" (issue 27)
        for pid, ptime in partners:
            try:  # the id comes from PostGIS; the path check refuses anything that leaves products_dir
                other = product_file(settings.products_dir, pid, "flood")
            except ProductNotFound:
                continue
            s1, s2, t1, t2 = ((products["flood"], other, scene.sensing_time, ptime) if scene.sensor is Sensor.S1
                              else (other, products["flood"], ptime, scene.sensing_time))
            f = fuse_flood_products(s1, s2, settings.products_dir / scene.id / FUSED_FILENAME,
                                    grid="s1" if scene.sensor is Sensor.S1 else "s2", s1_time=t1, s2_time=t2,
                                    window=window, reference_water=ref)
            log.info("scene %s: fused flood product with %s (%s): %s", scene.id, pid, ptime.isoformat(), f.shares)
            return {"status": "fused", "with_scene": pid, "with_time": ptime.isoformat(), "shares": f.shares,
                    "water_share": f.water_share}
        return {"status": "no_partner", "reason": f"no processed {'S2' if scene.sensor is Sensor.S1 else 'S1'} "
                f"flood product of this place within {settings.fusion_window_h:g} h"}
    except Exception as exc:  # noqa: BLE001 - the fused product is extra; the scene's own results must be stored
        log.warning("scene %s: fused flood product failed: %s", scene.id, exc, exc_info=True)
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]}
