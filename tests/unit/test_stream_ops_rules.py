"""stream_ops use cases as the CLI calls them, on fakes: publish's errors are the domain's, and the folder
backfill of ``terrawatch backfill --folder`` (no roots) honours the bbox, the period and the file cap."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from terrawatch.domain.errors import InvalidInput
from terrawatch.ingest.dlq import KafkaUnavailable
from terrawatch_dev.samples import synthetic_s1
from terrawatch.service import stream_ops
from terrawatch.settings import Settings

S = Settings()


class FakeProducer:
    def __init__(self, unacked: int = 0) -> None:
        self.sent, self.unacked = [], unacked

    def produce(self, topic, key=None, value=None):
        self.sent.append((topic, key))

    def poll(self, timeout):
        return 0

    def flush(self, timeout):
        return self.unacked


def test_publish_answers_the_id_and_topic_once_acknowledged():
    p = FakeProducer()
    assert stream_ops.publish(S, {"id": "s1"}, producer=p) == {"published": "s1", "topic": S.scenes_topic}
    assert p.sent == [(S.scenes_topic, b"s1")]


def test_publish_not_acknowledged_is_kafka_unavailable_not_a_runtime_error():
    with pytest.raises(KafkaUnavailable, match="did not acknowledge 1 message"):
        stream_ops.publish(S, {"id": "s1"}, producer=FakeProducer(unacked=1), timeout_s=0.1)


@pytest.mark.parametrize("item", [[], {"type": "Feature"}, {"id": ""}, {"id": 3}])
def test_publish_refuses_what_is_not_an_item_with_an_id(item):
    p = FakeProducer()
    with pytest.raises(InvalidInput, match="non-empty string id"):
        stream_ops.publish(S, item, producer=p)
    assert p.sent == []


def test_cli_folder_backfill_honours_bbox_period_and_cap(tmp_path, monkeypatch):
    d = tmp_path / "scenes"
    synthetic_s1(d / "S1A_IW_GRDH_20240505T060000_a.tif", size=64, origin=(400_000.0, 4_450_000.0))
    synthetic_s1(d / "sub" / "S1A_IW_GRDH_20240506T060000_b.tif", size=64, origin=(400_000.0, 4_450_000.0))
    synthetic_s1(d / "S1A_IW_GRDH_20240610T060000_late.tif", size=64, origin=(400_000.0, 4_450_000.0))
    may = (datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 31, tzinfo=timezone.utc))
    run = dict(dry_run=True, start=may[0], end=may[1])
    report = stream_ops.backfill_folder(S, str(d), None, recursive=True, **run)
    assert sorted(report.published) == ["S1A_IW_GRDH_20240505T060000_a", "S1A_IW_GRDH_20240506T060000_b"]
    flat = stream_ops.backfill_folder(S, str(d), None, recursive=False, **run)
    assert flat.published == ["S1A_IW_GRDH_20240505T060000_a"]
    far = stream_ops.backfill_folder(S, str(d), None, recursive=True, bbox=(0.0, 0.0, 1.0, 1.0), **run)
    assert far.published == []
    monkeypatch.setattr(stream_ops, "MAX_BACKFILL_FILES", 2)
    with pytest.raises(InvalidInput, match="at most 2 per backfill"):
        stream_ops.backfill_folder(S, str(d), None, recursive=True, **run)
    with pytest.raises(InvalidInput, match="absolute"):
        stream_ops.backfill_folder(S, "scenes", None, **run)
