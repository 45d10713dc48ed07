"""Load reference layers into PostGIS: mining concessions, protected areas, indigenous territories
(mining legality) and reference water (subtracted from observed water to give flood).

Input: GeoJSON or GeoPackage (any CRS; reprojected to EPSG:4326) read with pyogrio.
A load replaces the layer's previous features in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyogrio
import shapely

from terrawatch.domain.errors import InvalidInput, NotFound
from terrawatch.domain.legality import REFERENCE_KINDS
from terrawatch.domain.reference_water import REFERENCE_WATER
from terrawatch.store.db import Engine
from terrawatch.store.reference import replace_reference_layer

LAYER_KINDS = (*REFERENCE_KINDS, REFERENCE_WATER)
Audit = Callable[[Any, str, dict], None]


def check_layer_name(layer: str) -> None:
    """Refuse a name that differs from a layer the rules read (``LAYER_KINDS``) only by case, ``-`` for
    ``_`` or a plural ``s``: it would be stored and silently ignored by mining legality or reference water.
    Other names are display layers (areas of interest) that no rule reads."""
    def norm(x: str) -> str:
        x = x.lower().replace("-", "_").replace(" ", "_")
        return x[:-3] + "y" if x.endswith("ies") else x.removesuffix("s")

    for kind in LAYER_KINDS:
        if layer != kind and norm(layer) == norm(kind):
            raise InvalidInput(f"layer {layer!r} is not read by any rule; the rules read {kind!r}")


LAYER_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # any layer, display-only ones included (as the API's path)


def check_display_name(layer: str) -> None:
    """A layer name the API would take: ``LAYER_NAME`` and not a near miss of a rule layer."""
    import re

    if not re.match(LAYER_NAME, layer):
        raise InvalidInput(f"layer name {layer[:80]!r} must match {LAYER_NAME} (lower case, digits, _ and -)")
    check_layer_name(layer)


def list_layers(engine: Engine) -> list[dict]:
    """Every stored layer with its feature count, load time, extent, coverage and the rules that read it."""
    from terrawatch.store.reference_list import layer_summaries

    return [{**row, "used_by": used_by(row["layer"])} for row in layer_summaries(engine)]


def drop_layer(engine: Engine, layer: str, audit: Audit | None = None) -> int:
    """Delete a layer's features and coverage with the caller's audit row; NotFound if it has none."""
    from terrawatch.store.reference import drop_reference_layer

    with engine.begin() as conn:
        n = drop_reference_layer(conn, layer)
        if not n:
            raise NotFound(f"reference layer {layer!r} not found")
        if audit is not None:
            audit(conn, layer, {"features": n})
    return n


def used_by(layer: str) -> list[str]:
    """Which rules read ``layer``: [] for a display-only layer."""
    if layer in REFERENCE_KINDS:
        return ["mining legality"]
    return ["flood (reference water)"] if layer == REFERENCE_WATER else []


def replace_features(engine: Engine, layer: str, feats: list[tuple[shapely.Geometry, dict]],
                     name_field: str = "name", coverage: shapely.Geometry | None = None,
                     coverage_source: str | None = None, audit: Audit | None = None) -> tuple[int, int]:
    """Replace ``layer`` with ``feats`` ((lon/lat geometry, properties) pairs) in one transaction with the
    caller's audit row; returns (features stored, features replaced)."""
    check_layer_name(layer)
    rows = [{"layer": layer, "name": None if p.get(name_field) is None else str(p[name_field])[:500],
             "properties": p, "geom": g} for g, p in feats]
    with engine.begin() as conn:
        replaced = replace_reference_layer(conn, layer, rows, coverage, coverage_source)
        if audit is not None:
            audit(conn, layer, {"features": len(rows), "replaced": replaced})
    return len(rows), replaced


def read_features(path: Path, layer: str | None = None) -> list[tuple[shapely.Geometry, dict]]:
    """(geometry in EPSG:4326, properties) of every feature with a non-empty geometry."""
    meta, _, geoms, fields = pyogrio.raw.read(path, layer=layer, return_fids=False)
    crs = meta.get("crs")
    geoms = shapely.from_wkb(geoms)
    if crs and crs.upper() not in ("EPSG:4326", "OGC:CRS84"):
        from pyproj import Transformer

        tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        geoms = [shapely.transform(g, tr.transform, interleaved=False) if g is not None else None for g in geoms]
    names = list(meta["fields"])
    out = []
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            continue
        g = shapely.force_2d(g if g.is_valid else shapely.make_valid(g))
        props = {n: (v.item() if hasattr(v, "item") else v) for n, v in zip(names, (f[i] for f in fields))}
        out.append((g, props))
    return out


def load_layer(engine: Engine, path: Path, kind: str, name_field: str = "name",
               coverage: Path | None = None, audit: Audit | None = None) -> int:
    """Replace reference layer ``kind`` with the features of ``path``; return how many were stored.

    ``coverage``: a GeoJSON/GeoPackage whose (multi)polygons outline where the layer is complete (e.g. the
    country or state whose concession register was loaded). Without it the layer's extent (bounding box
    of its features) is recorded as its coverage. Mining legality says ``illegal`` by
    ``outside_licensed_concession`` only inside the concession layer's coverage.
    """
    check_display_name(kind)  # a rule layer (LAYER_KINDS) or a display-only one, as the API takes
    feats = [(g, {k: v for k, v in p.items() if isinstance(v, (str, int, float, bool)) or v is None})
             for g, p in read_features(path)]
    cov = None
    if coverage is not None:
        polys = [g for g, _ in read_features(coverage) if g.geom_type in ("Polygon", "MultiPolygon")]
        if not polys:
            raise ValueError(f"coverage {coverage} has no polygon features")
        cov = shapely.union_all(polys)
    n, _ = replace_features(engine, kind, feats, name_field, cov,
                            f"declared: {Path(coverage).name}" if coverage else None, audit)
    return n
