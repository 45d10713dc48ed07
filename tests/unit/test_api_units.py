"""Pure parts of the API: role derivation, query guards, rate limiter, DLQ ids, backfill roots, tile maths."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from starlette.datastructures import QueryParams

from terrawatch.api import errors
from terrawatch.api.app import required_role
from terrawatch.api.routes.ogc import _check_query
from terrawatch.store.vector_tiles import LAYERS, TILE_SQL, WEB_MERCATOR_WIDTH_M, tolerance_m
from terrawatch.api.security import AuthFailureLimiter
from terrawatch.service.keys import verify_key
from terrawatch.domain.errors import TransientError, UnreadableAsset
from terrawatch.service import dlq as dlq_svc
from terrawatch.service import stream_ops
from terrawatch.settings import Settings


COLUMNS = {"id": "integer", "hazard": "text", "confidence": "text", "status": "text", "area_ha": "double precision",
           "sensing_time": "timestamptz", "geom": "geometry"}


def test_required_role_is_the_strongest_scope():
    assert required_role({}) == "none"
    assert required_role({"security": [{"APIKeyHeader": []}]}) == "none"
    assert required_role({"security": [{"APIKeyHeader": ["viewer"]}, {"HTTPBearer": ["viewer"]}]}) == "viewer"
    assert required_role({"security": [{"APIKeyHeader": ["operator", "admin"]}]}) == "admin"


@pytest.mark.parametrize("query", [
    "bbox=1,2,3", "bbox=a,b,c,d", "bbox=0,0,nan,1", "datetime=null", "datetime=2024-01-01/2024-02-01/2024-03-01",
    "datetime=..", "filter=hazard%20%3D", "simplify=-1", "simplify=inf", "hazard=flo%00od",
])
def test_ogc_guard_rejects_malformed_queries(query):
    with pytest.raises(errors.BadRequest):
        _check_query(QueryParams(query), Settings(), COLUMNS, items=True)


@pytest.mark.parametrize("query", [
    "", "bbox=-10,-5,10,5", "bbox=-10,-5,0,10,5,100", "datetime=2024-05-01T00:00:00Z",
    "datetime=2024-05-01T00:00:00Z/..", "datetime=../2024-05-01T00:00:00Z", "datetime=",
    "filter=hazard%20%3D%20%27flood%27", "simplify=0.001", "hazard=flood&confidence=high&status=new",
])
def test_ogc_guard_accepts_valid_queries(query):
    _check_query(QueryParams(query), Settings(), COLUMNS, items=True)


def test_ogc_guard_normalises_part1_parameters():
    s = Settings(api_ogc_max_limit=500)
    assert _check_query(QueryParams("limit=100000"), s, COLUMNS, items=True) == [("limit", "500")]
    assert _check_query(QueryParams("datetime=2024-05-01"), s) == [
        ("datetime", "2024-05-01T00:00:00Z/2024-05-02T00:00:00Z")]
    assert _check_query(QueryParams("datetime=2024-05-01/2024-05-03"), s) == [
        ("datetime", "2024-05-01T00:00:00Z/2024-05-04T00:00:00Z")]
    assert _check_query(QueryParams("datetime=../2024-05-03"), s) == [("datetime", "../2024-05-03T23:59:59.999999Z")]
    assert _check_query(QueryParams("crs=http://www.opengis.net/def/crs/OGC/1.3/CRS84"), s) == []
    for bad in ("crs=EPSG:3857", "bbox-crs=http://www.opengis.net/def/crs/EPSG/0/4326", "nope=1", "limit=-1",
                "area_ha=abc"):
        with pytest.raises(errors.BadRequest):
            _check_query(QueryParams(bad), s, COLUMNS, items=True, known={"limit", "bbox"})


def test_auth_failure_limiter_blocks_after_the_limit_per_client():
    lim = AuthFailureLimiter(3)
    for _ in range(3):
        lim.check("10.0.0.1")
        lim.failed("10.0.0.1")
    with pytest.raises(errors.RateLimited) as exc:
        lim.check("10.0.0.1")
    assert 1 <= exc.value.retry_after_s <= 60
    lim.check("10.0.0.2")  # other clients are not affected


@pytest.mark.parametrize("presented", ["", "tw_", "tw_XYZ_abc", "Bearer tw_0123456789ab_short", "x" * 300])
def test_malformed_keys_are_rejected_without_a_database(presented):
    assert verify_key(None, presented) is None


def test_dlq_ids():
    assert dlq_svc.parse_id("0/12") == (0, 12)
    for bad in ("12", "a/b", "-1/3", "0/-2"):
        with pytest.raises(dlq_svc.BadEntryId):
            dlq_svc.parse_id(bad)


def test_dlq_record_round_trips_the_original_payload():
    from terrawatch.ingest.dlq import DlqRecord

    assert DlqRecord(reason="r", error_code="x", payload="aGk=", payload_encoding="base64").original_payload() == b"hi"
    assert DlqRecord(reason="r", error_code="x", payload='{"a": 1}').original_payload() == b'{"a": 1}'
    assert DlqRecord(reason="r", error_code="x").original_payload() is None


def test_backfill_is_confined_to_allowed_roots(tmp_path):
    from terrawatch_dev.samples import synthetic_s1

    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    synthetic_s1(allowed / "a.tif", size=64)
    synthetic_s1(allowed / "sub" / "b.tif", size=64)
    (allowed / "c.tif").write_bytes(b"not a tiff")
    s = Settings(api_backfill_roots=str(allowed))
    roots, when = stream_ops.backfill_roots(s), datetime.now(timezone.utc)

    def dry(folder, recursive):
        return stream_ops.backfill_folder(s, folder, roots, recursive=recursive, sensing_time=when, dry_run=True)

    report = dry(str(allowed), recursive=False)
    assert report.published == ["a"] and [k["source"].endswith("c.tif") for k in report.skipped] == [True]
    assert sorted(dry(str(allowed), recursive=True).published) == ["a", "b"]
    for outside in (str(tmp_path), "/etc", str(allowed / ".." / "allowed" / ".." ), "relative/path"):
        with pytest.raises(errors.InvalidInput):
            dry(outside, recursive=False)


def test_error_statuses():
    assert errors.status_for(errors.NotFound("x")) == 404
    assert errors.status_for(errors.RateLimited("x")) == 429
    assert errors.status_for(UnreadableAsset("x")) == 422
    assert errors.status_for(TransientError("x")) == 503


def test_tile_tolerance_is_half_a_pixel_and_sql_is_constant():
    assert tolerance_m(0) == pytest.approx(WEB_MERCATOR_WIDTH_M / 512)
    assert tolerance_m(5) == pytest.approx(tolerance_m(4) / 2)
    for name in LAYERS:
        sql = str(TILE_SQL[name])
        assert ":z" in sql and ":x" in sql and ":y" in sql and "{" not in sql and LAYERS[name]["view"] in sql


def test_forwarding_headers_are_believed_only_from_trusted_proxies():
    """The auth-failure throttle keys on the peer; X-Forwarded-For counts only from a trusted proxy.
    Malformed keys are refused without a database, so this runs without one."""
    from fastapi.testclient import TestClient

    from terrawatch.api import create_app

    def statuses(settings) -> list[int]:
        with TestClient(create_app(settings)) as client:  # TestClient's peer is "testclient"
            return [client.get("/ops/status", headers={"X-API-Key": "tw_bad", "X-Forwarded-For": f"10.0.0.{i}"})
                    .status_code for i in range(5)]

    base = Settings(api_auth_failures_per_minute=3, pg_port=1)
    assert statuses(base) == [401, 401, 401, 429, 429]  # rotating the header does not help
    trusted = base.model_copy(update={"api_trusted_proxies": "testclient"})
    assert statuses(trusted) == [401] * 5  # behind a trusted proxy each forwarded client counts alone


def test_backfill_folder_refuses_nul_and_missing_folders(tmp_path):
    s = Settings(api_backfill_roots=str(tmp_path))
    for folder, err in ((f"{tmp_path}/a\x00b", errors.InvalidInput), (str(tmp_path / "missing"), errors.NotFound)):
        with pytest.raises(err):
            stream_ops.backfill_folder(s, folder, stream_ops.backfill_roots(s), dry_run=True)
