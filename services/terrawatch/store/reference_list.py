"""SQL: the reference layers stored (``GET /ops/reference-layers``, ``terrawatch layers list``)."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from terrawatch.store import tables as t


def layer_summaries(engine: Engine) -> list[dict]:
    """One row per stored layer: layer, features, loaded_at (newest feature), bbox [w, s, e, n] (EPSG:4326),
    coverage_source (what declared its coverage; None for a layer without one), ordered by name."""
    f, rc = t.reference_features, t.reference_layer_coverage
    ext = func.ST_Extent(f.c.geom)
    q = (select(f.c.layer, func.count().label("features"), func.max(f.c.created_at).label("loaded_at"),
                func.ST_XMin(ext).label("w"), func.ST_YMin(ext).label("s"), func.ST_XMax(ext).label("e"),
                func.ST_YMax(ext).label("n"), func.max(rc.c.coverage_source).label("coverage_source"))
         .select_from(f.outerjoin(rc, rc.c.layer == f.c.layer)).group_by(f.c.layer).order_by(f.c.layer))
    with engine.connect() as conn:
        return [{"layer": r.layer, "features": r.features, "loaded_at": r.loaded_at,
                 "bbox": [float(r.w), float(r.s), float(r.e), float(r.n)] if r.w is not None else None,
                 "coverage_source": r.coverage_source} for r in conn.execute(q)]
