"""One error vocabulary: the kinds in domain/errors.py, services' named subclasses of them, and the database
error families of store/db.py each map to one HTTP status in api/errors.py (never a 5xx for bad input)."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, OperationalError

from terrawatch.api import errors
from terrawatch.domain import errors as kinds
from terrawatch.products.tiles import ProductNotFound, TileNotFound
from terrawatch.service import alerts, deliveries, dlq, stream_ops, subscriptions


class _Pg(Exception):
    def __init__(self, msg: str, sqlstate: str) -> None:
        super().__init__(msg)
        self.sqlstate = sqlstate


CASES = [
    (alerts.AlertNotFound(uuid.UUID(int=1)), 404, "not_found", f"alert {uuid.UUID(int=1)} not found"),
    (alerts.IllegalTransition("alert x cannot go from resolved to new"), 409, "conflict", None),
    (alerts.VersionConflict("alert x is at version 3, not 2"), 409, "conflict", None),
    (subscriptions.InvalidSubscription("aoi must enclose an area"), 422, "invalid_input", "aoi must enclose an area"),
    (subscriptions.SubscriptionConflict("a subscription for u exists already"), 409, "conflict", None),
    (subscriptions.SubscriptionNotFound(uuid.UUID(int=2)), 404, "not_found", f"subscription {uuid.UUID(int=2)} not found"),
    (subscriptions.SubscriptionNotFound(uuid.UUID(int=2), active=True), 404, "not_found",
     f"active subscription {uuid.UUID(int=2)} not found"),
    (deliveries.DeliveryNotFound("msg_x"), 404, "not_found", "delivery msg_x not found"),
    (deliveries.NotRedeliverable("delivery msg_x is still pending"), 409, "conflict", None),
    (dlq.BadEntryId("DLQ entry id 'x' is not partition/offset (e.g. 0/12)"), 422, "invalid_input", None),
    (dlq.EntryNotFound("no DLQ entry 0/1 in t"), 404, "not_found", None),
    (stream_ops.SceneNotFound("scene 'x' is not in the scenes table"), 404, "not_found", None),
    (ProductNotFound("no scene 'x'"), 404, "not_found", None),
    (TileNotFound("tile 0/1/1 does not exist in WebMercatorQuad"), 404, "not_found", None),
    (kinds.Unavailable("Kafka did not acknowledge"), 503, "unavailable", None),
    (OperationalError("select 1", {}, Exception("connection refused")), 503, "unavailable",
     "the database is unavailable; retry shortly"),
    (DataError("insert", {}, _Pg("invalid byte sequence for encoding UTF8: 0x00", "22021")), 422, "invalid_value",
     None),
]


@pytest.fixture(scope="module")
def client():
    app = FastAPI()
    errors.install(app)
    raised = {}

    @app.api_route("/raise/{i}", methods=["GET", "POST"])
    def boom(i: int):
        raise raised[i]

    app.state.raised = raised
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[type(c[0]).__name__ + str(n) for n, c in enumerate(CASES)])
def test_each_kind_maps_to_one_status(client, i):
    exc, status, code, description = CASES[i]
    client.app.state.raised[i] = exc
    r = client.post(f"/raise/{i}", json={"body": True})  # a request with a body: its invalid input is a 422
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    if description is not None:
        assert r.json()["description"] == description
    if status == 503:
        assert r.headers["retry-after"] == "5"
    # Without a body the input can only be the path and query: a bad parameter, 400 (issue 26, one rule).
    r = client.get(f"/raise/{i}")
    assert (r.status_code, r.json()["code"]) == (400 if status == 422 else status, code), r.text


def test_service_errors_are_kinds_and_stay_catchable_by_their_old_bases():
    assert issubclass(alerts.AlertNotFound, kinds.NotFound) and issubclass(alerts.AlertNotFound, LookupError)
    assert issubclass(subscriptions.InvalidSubscription, kinds.InvalidInput)
    assert issubclass(subscriptions.InvalidSubscription, ValueError)  # the CLI catches ValueError
    assert issubclass(dlq.BadEntryId, kinds.InvalidInput) and issubclass(dlq.BadEntryId, ValueError)
    assert errors.NotFound is kinds.NotFound  # api/errors re-exports the domain kinds, no second hierarchy


def test_the_deliveries_route_filters_by_exactly_the_outbox_statuses():
    from typing import get_args

    from terrawatch.api.routes.subscriptions import StatusFilter
    from terrawatch.store.outbox import OutboxStatus

    assert set(get_args(StatusFilter)) == {s.value for s in OutboxStatus} | {"all"}
