"""``terrawatch eval``, ``cv``, ``fuse`` and ``layers load``: model evaluation, fused products, reference layers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from terrawatch.cli.root import app, cli_audit, cli_runbook
from terrawatch.settings import get_settings


@app.command("eval")
def eval_cmd(
    dataset: str = typer.Option(..., help="sen1floods11 | etci2021 | ombria-s1"),
    root: Path = typer.Option(..., exists=True, file_okay=False, help="Dataset folder (any event/split)."),
    model: Optional[str] = typer.Option(None, help="flood-s1 | flood-s2 | otsu-s1 | mndwi-s2 | ... (default: best for the sensor)"),
    corrupt: Optional[str] = typer.Option(None, help="noise | haze | cloud | speckle | missing-band"),
    split: str = typer.Option("all", help="all | train | holdout"),
    limit: Optional[int] = typer.Option(None, help="Evaluate at most this many samples."),
) -> None:
    """Evaluate a water model on a labelled dataset; the last line is JSON with iou, f1, precision, recall, csi."""
    from terrawatch_research.eval.evaluate import evaluate

    typer.echo(json.dumps(evaluate(dataset, root, model, corrupt, split=split, limit=limit)))


@app.command("cv")
def cv_cmd(
    models: str = typer.Option("otsu-s1,adaptive-s1,flood-s1,flood-s1-grow",
                               help="Comma-separated candidates (terrawatch_research.eval.cv.CANDIDATES; a+b = majority ensemble)."),
    data: Optional[Path] = typer.Option(None, help="Real-dB chips (default: <shared data>/sen1floods11-extra)."),
    threads: int = typer.Option(2, help="Torch threads for training folds (fixed for reproducibility)."),
    steps: Optional[int] = typer.Option(None, help="Override the training steps of trained candidates."),
    holdouts: bool = typer.Option(True, help="Also score the ETCI and OMBRIA holdouts (separate columns)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result (counts per fold) here."),
    nested: bool = typer.Option(False, "--nested", help="Nested LOEO of the flood_s1 post-processing: chosen inside "
                                "each fold, every column at once, adoption rule printed (--models ignored)."),
) -> None:
    """Leave-one-event-out cross-validation of S1 water models on real-dB Sen1Floods11 chips: per-fold table, pooled IoU."""
    from terrawatch_research.eval.cv import cross_validate, format_table, run_nested

    if nested:
        typer.echo(run_nested(data, holdouts=holdouts, json_out=json_out))
        return
    try:
        res = cross_validate(models.split(","), data, threads=threads, steps=steps, holdouts=holdouts)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--models") from None
    typer.echo(format_table(res))
    if json_out:
        json_out.write_text(json.dumps(res, indent=1))


@app.command("fuse")
def fuse_cmd(
    s1: Path = typer.Option(..., exists=True, dir_okay=False, help="S1 GeoTIFF: 2 bands VV, VH sigma0 dB (NaN no data)."),
    s2: Path = typer.Option(..., exists=True, dir_okay=False, help="S2 L1C GeoTIFF: 13 bands B1..B12, reflectance x 10000."),
    out: Path = typer.Option(..., dir_okay=False, help="Output COG: band 1 likelihood 0-100 (255 none), band 2 source code."),
    s1_time: Optional[datetime] = typer.Option(None, help="S1 acquisition time (UTC)."),
    s2_time: Optional[datetime] = typer.Option(None, help="S2 acquisition time (UTC)."),
    window_h: Optional[float] = typer.Option(None, help="Use S2 only within this many hours of S1 (default "
                                                        "TERRAWATCH_FUSION_WINDOW_H or 72)."),
    dn_offset: float = typer.Option(0.0, help="-1000 for S2 processing baseline >= 04.00 DNs."),
    sun_zenith: Optional[float] = typer.Option(None, help="S2 mean sun zenith (deg); bounds the cloud-shadow search."),
) -> None:
    """Fused S1 + S2 flood product of one scene pair (S2 where clear, S1 under cloud); prints a JSON summary."""
    from datetime import timedelta

    from terrawatch.products.fused import fused_flood_product

    utc = [t.replace(tzinfo=timezone.utc) if t and t.tzinfo is None else t for t in (s1_time, s2_time)]
    if window_h is not None and not 0 <= window_h <= 24 * 365:
        raise typer.BadParameter("must be between 0 and 8760 hours", param_hint="--window-h")
    window = timedelta(hours=get_settings().fusion_window_h if window_h is None else window_h)
    r = fused_flood_product(s1, s2, out, s1_time=utc[0], s2_time=utc[1], window=window, dn_offset=dn_offset,
                            sun_zenith_deg=sun_zenith)
    typer.echo(json.dumps({"path": str(r.path), "s2_used": r.s2_used, "water_share": r.water_share,
                           "sources": r.shares}))


layers_app = typer.Typer(help="Reference layers: mining legality (concessions, protected areas, territories) and "
                              "reference water (subtracted from observed water: flood).",
                         no_args_is_help=True)
app.add_typer(layers_app, name="layers")


@layers_app.command("load")
def layers_load(
    path: Path = typer.Argument(..., exists=True, help="GeoJSON or GeoPackage (any CRS)."),
    kind: str = typer.Option(..., help="mining_concession | protected_area | indigenous_territory | reference_water "
                                       "(read by rules), or any other name: a display-only layer (as the API)."),
    name_field: str = typer.Option("name", help="Attribute holding the feature's name."),
    coverage: Path | None = typer.Option(
        None, exists=True, help="GeoJSON/GeoPackage polygons where the layer is complete (e.g. the country of a "
        "concession register). Default: the layer's extent (bounding box of its features)."),
    as_json: bool = typer.Option(False, "--json", help="The answer as JSON."),
) -> None:
    """Replace a reference layer in PostGIS with the features of PATH (reprojected to EPSG:4326) and record
    its coverage: mining is called illegal for lying outside every concession only inside that coverage."""
    layers = cli_runbook().layers
    n = layers.load(path, kind, name_field, coverage, audit=cli_audit("reference_layer.put"))
    out = {"layer": kind, "features": n, "coverage": str(coverage) if coverage else "layer extent",
           "used_by": layers.used_by(kind)}
    typer.echo(json.dumps(out) if as_json else f"loaded {n} features into {kind} "
               f"({', '.join(out['used_by']) or 'display only'}; coverage: {out['coverage']})")


@layers_app.command("list")
def layers_list(as_json: bool = typer.Option(False, "--json", help="A JSON array (as GET /ops/reference-layers).")
                ) -> None:
    """Stored reference layers: features, load time, extent, coverage and the rules that read each."""
    rows = cli_runbook().layers.list()
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    typer.echo(f"{'layer':<28} {'features':>8}  {'loaded_at':<19}  used_by")
    for r in rows:
        typer.echo(f"{r['layer']:<28} {r['features']:>8}  {str(r['loaded_at'])[:19]:<19}  "
                   f"{', '.join(r['used_by']) or 'display only'}")


@layers_app.command("drop")
def layers_drop(layer: str = typer.Argument(..., help="The layer to delete (features and coverage)."),
                as_json: bool = typer.Option(False, "--json", help="The answer as JSON.")) -> None:
    """Delete a reference layer (as DELETE /ops/reference-layers/{layer}); exit 1 if it does not exist."""
    n = cli_runbook().layers.drop(layer, audit=cli_audit("reference_layer.delete"))
    typer.echo(json.dumps({"layer": layer, "dropped": n}) if as_json else f"dropped {layer}: {n} features")
