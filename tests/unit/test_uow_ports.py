"""The unit of work's ports (service/ports.py), its PostGIS repositories (store/repositories.py) and the
in-memory fakes (tests/unit/fakes.py) have the same methods with the same parameters, so the pipeline's
unit tests on fakes exercise the calls the real repositories answer."""

from __future__ import annotations

import inspect

import pytest

from terrawatch.service import ports
from terrawatch.store import repositories as repos
from terrawatch.store.uow import UnitOfWork
from tests.unit import fakes

TRIPLES = [
    (ports.SceneRepository, repos.Scenes, fakes.FakeScenes),
    (ports.DetectionRepository, repos.Detections, fakes.FakeDetections),
    (ports.AlertRepository, repos.Alerts, fakes.FakeAlerts),
    (ports.ReferenceRepository, repos.Reference, fakes.FakeReference),
    (ports.OutboxRepository, repos.Outbox, fakes.FakeOutbox),
]


def methods(cls) -> dict[str, list[str]]:
    return {n: list(inspect.signature(f).parameters) for n, f in vars(cls).items()
            if inspect.isfunction(f) and not n.startswith("_")}


@pytest.mark.parametrize("port, real, fake", TRIPLES, ids=lambda c: c.__name__)
def test_the_repository_and_its_fake_have_the_ports_methods(port, real, fake):
    want = methods(port)
    assert want, port
    got_real, got_fake = methods(real), methods(fake)
    for name, params in want.items():
        assert got_real.get(name) == params, (real.__name__, name, got_real.get(name), params)
        assert got_fake.get(name) == params, (fake.__name__, name, got_fake.get(name), params)


def test_the_unit_of_work_has_every_repository_of_the_port():
    names = set(inspect.get_annotations(ports.UnitOfWork))
    assert names == {"scenes", "detections", "alerts", "reference", "outbox", "conn"}
    assert names <= set(inspect.get_annotations(UnitOfWork))
    uow = fakes.FakeDb().unit_of_work("check")
    assert all(hasattr(uow, n) for n in names)


def test_a_fake_unit_of_work_rolls_back_on_an_exception():
    db = fakes.FakeDb()
    with pytest.raises(RuntimeError):
        with db.unit_of_work("scene") as uow:
            uow.scenes.add_run("s", "flood", "m:1", 1, 0)
            raise RuntimeError("boom")
    assert db.runs == {} and db.rolled_back == ["scene"] and db.committed == []
