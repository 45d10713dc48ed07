"""Alert policy: confidence tiers, severity and lifecycle rules (pure).

Policies are declarative: one YAML file per hazard in ``alerts/rules/``,
validated against ``alerts/rules/schema.json`` when loaded (at startup).
Tiers follow Global Forest Watch's integrated alerts: one sensor, one
observation = ``low``; a repeated observation or two sensors = ``high``; both
plus a large area = ``highest`` (the exact criteria live in the rule files).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import jsonschema
import shapely
import yaml
from shapely.geometry.base import BaseGeometry

from terrawatch.domain.polygons import as_multipolygon, geodesic_area_ha


class Confidence(str, Enum):
    LOW = "low"
    HIGH = "high"
    HIGHEST = "highest"

    @property
    def rank(self) -> int:
        return {"low": 0, "high": 1, "highest": 2}[self.value]


CONFIDENCE_RANKS: dict[str, int] = {c.value: c.rank for c in Confidence}


class AlertStatus(str, Enum):
    NEW = "new"
    CONFIRMED = "confirmed"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


OPEN_STATUSES = (AlertStatus.NEW, AlertStatus.CONFIRMED, AlertStatus.ACKNOWLEDGED)
CLOSED_STATUSES = (AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE)

# Allowed transitions. ``confirmed`` is normally set by the pipeline (a later
# observation agrees) but an operator may confirm by other evidence; closed
# alerts are final (a new detection there raises a new alert).
TRANSITIONS: dict[AlertStatus, set[AlertStatus]] = {
    AlertStatus.NEW: {AlertStatus.CONFIRMED, AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED,
                      AlertStatus.FALSE_POSITIVE},
    AlertStatus.CONFIRMED: {AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE},
    AlertStatus.ACKNOWLEDGED: {AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE},
    AlertStatus.RESOLVED: set(),
    AlertStatus.FALSE_POSITIVE: set(),
}


def can_transition(src: AlertStatus | str, dst: AlertStatus | str) -> bool:
    return AlertStatus(dst) in TRANSITIONS[AlertStatus(src)]


@dataclass(frozen=True)
class Criterion:
    """Minima that must all hold (``None`` = no constraint)."""

    min_observations: int | None = None
    min_sensors: int | None = None
    min_area_ha: float | None = None
    min_likelihood: float | None = None

    def holds(self, sensors: int, observations: int, area_ha: float, likelihood: float) -> bool:
        return ((self.min_observations is None or observations >= self.min_observations)
                and (self.min_sensors is None or sensors >= self.min_sensors)
                and (self.min_area_ha is None or area_ha >= self.min_area_ha)
                and (self.min_likelihood is None or likelihood >= self.min_likelihood))


@dataclass(frozen=True)
class CapMapping:
    """CAP 1.2 ``<info>`` values for one hazard; urgency/certainty keyed by confidence tier."""

    event: str = "Hazard"
    category: str = "Other"
    response: str = "Monitor"
    urgency: Mapping[str, str] = field(default_factory=lambda: {"low": "Expected", "high": "Immediate",
                                                                "highest": "Immediate"})
    certainty: Mapping[str, str] = field(default_factory=lambda: {"low": "Possible", "high": "Likely",
                                                                  "highest": "Observed"})


_DEFAULT_HIGH = (Criterion(min_observations=2), Criterion(min_sensors=2))
_DEFAULT_HIGHEST = (Criterion(min_observations=2, min_sensors=2, min_area_ha=100.0),)


@dataclass(frozen=True)
class HazardPolicy:
    """One hazard's alert rule. Areas in ha, likelihood 0-100, distance in m, window in days."""

    hazard: str
    min_area_ha: float = 0.2
    min_likelihood: float = 50.0
    high: tuple[Criterion, ...] = _DEFAULT_HIGH
    highest: tuple[Criterion, ...] = _DEFAULT_HIGHEST
    merge_distance_m: float = 500.0
    merge_window_days: float = 30.0
    # Observations of one platform less than this far apart (minutes) are one acquisition (one pass).
    min_separation_minutes: float = 60.0
    # (min_area_ha, level), largest threshold first
    severity_by_area_ha: tuple[tuple[float, str], ...] = ((1000.0, "extreme"), (100.0, "severe"),
                                                        (10.0, "moderate"), (0.0, "minor"))
    cap: CapMapping = field(default_factory=CapMapping)
    source: str = ""


def confidence(policy: HazardPolicy, sensors: set[str], observations: int, area_ha: float,
               likelihood: float = 100.0) -> Confidence:
    """Tier of an alert seen by ``sensors`` in ``observations`` distinct scenes."""
    args = (len(sensors), observations, area_ha, likelihood)
    if any(c.holds(*args) for c in policy.highest):
        return Confidence.HIGHEST
    if any(c.holds(*args) for c in policy.high):
        return Confidence.HIGH
    return Confidence.LOW


def severity(area_ha: float, policy: HazardPolicy) -> str:
    for threshold, name in policy.severity_by_area_ha:
        if area_ha >= threshold:
            return name
    return policy.severity_by_area_ha[-1][1]


def admits(area_ha: float, likelihood: float, policy: HazardPolicy) -> bool:
    """Whether a detection cluster is large and likely enough to alert on."""
    return area_ha >= policy.min_area_ha and likelihood >= policy.min_likelihood


# Merging a new cluster into an alert (pure) -----------------------------------

@dataclass(frozen=True)
class Acquisition:
    """One look at the ground: a platform (e.g. ``sentinel-2a``) at a sensing time (UTC).

    ``scene_ids`` are every catalogue id under which this acquisition reached the stream (its L1C and
    L2A items, or the same item from two catalogues).
    """

    platform: str
    sensor: str
    sensing_time: datetime
    scene_ids: tuple[str, ...] = ()

    def same_as(self, other: Acquisition, min_separation: timedelta) -> bool:
        """Whether ``other`` is this acquisition again: same platform and sensor, sensed at most
        ``min_separation`` apart. A different platform/sensor or a later pass is independent."""
        return (self.platform == other.platform and self.sensor == other.sensor
                and abs(self.sensing_time - other.sensing_time) <= min_separation)

    def to_json(self) -> dict:
        return {"platform": self.platform, "sensor": self.sensor, "sensing_time": self.sensing_time.isoformat(),
                "scene_ids": list(self.scene_ids)}

    @classmethod
    def from_json(cls, d: dict) -> Acquisition:
        return cls(d["platform"], d["sensor"], datetime.fromisoformat(d["sensing_time"]), tuple(d["scene_ids"]))


@dataclass
class Alert:
    """An alert: a cluster of detections of one hazard, its lifecycle status and its version.

    Geometry lon/lat (EPSG:4326) MultiPolygon, ``area_ha`` geodesic hectares, ``likelihood`` 0-100,
    times UTC. ``observations`` = independent acquisitions that saw it; ``context`` carries the
    acquisitions (``acquisitions``, ``scene_ids``) and step results such as mining ``legality``.
    ``version`` rises with every change a subscriber is told about. Stored by
    :class:`terrawatch.store.uow.UnitOfWork`, rendered by :mod:`terrawatch.alerting` (GeoJSON, CAP).
    """

    id: uuid.UUID
    hazard: str
    status: str
    confidence: str
    severity: str
    geom: BaseGeometry
    area_ha: float
    likelihood: float
    sensors: list[str]
    observations: int
    first_sensed: datetime
    last_sensed: datetime
    context: dict[str, Any]
    version: int
    created_at: datetime | None = None  # set by the writer (UTC) so payloads can quote it
    updated_at: datetime | None = None

    @property
    def acquisitions(self) -> tuple[Acquisition, ...]:
        """The independent acquisitions that saw the alert (from ``context``). Alerts stored before
        acquisitions were recorded count each scene id as one acquisition."""
        acqs = tuple(Acquisition.from_json(x) for x in self.context.get("acquisitions", []))
        if acqs:
            return acqs
        sensor = self.sensors[0] if self.sensors else "unknown"
        return tuple(Acquisition(f"unknown-{i}", sensor, self.last_sensed, (sid,))
                     for i, sid in enumerate(self.context.get("scene_ids", [])))


def _with_acquisitions(context: dict[str, Any], acqs: tuple[Acquisition, ...]) -> dict[str, Any]:
    return {**context, "acquisitions": [a.to_json() for a in acqs],
            "scene_ids": [i for a in acqs for i in a.scene_ids]}


@dataclass(frozen=True)
class Cluster:
    """A detection cluster of one scene (lon/lat geometry, area ha, area-weighted likelihood 0-100)."""

    geom: BaseGeometry
    area_ha: float
    likelihood: float
    acquisition: Acquisition  # with the one scene id it arrived under


@dataclass(frozen=True)
class MergeDecision:
    """``action``: ``create`` (no mergeable alert: ``alert`` is a new one, version 1), ``update`` (an
    independent observation: a copy with version + 1, maybe confirmed), ``same_acquisition`` (the alert's
    acquisition again under another id: nothing rises, no new version; the copy's context only records the
    extra scene id)."""

    action: str
    alert: Alert
    reason: str


def mergeable(alert: Alert, sensing_time: datetime, policy: HazardPolicy) -> bool:
    """An open alert last sensed at most ``merge_window_days`` before (or any time after) ``sensing_time``."""
    return (alert.status in {s.value for s in OPEN_STATUSES}
            and alert.last_sensed >= sensing_time - timedelta(days=policy.merge_window_days))


def _capped(c: Confidence, reference_known: bool) -> str:
    """``highest`` needs to know the water is not permanent: capped at ``high`` otherwise."""
    return Confidence.HIGH.value if not reference_known and c == Confidence.HIGHEST else c.value


def merge_cluster(alert: Alert | None, c: Cluster, policy: HazardPolicy,
                  reference_known: bool = True) -> MergeDecision:
    """Decide what a new cluster does to a nearby alert (``None`` = none within the merge distance).
    ``alert`` is not changed; the decision carries the alert as it should be stored.

    ``reference_known=False`` (flood where no reference water covers the cluster: neither a loaded
    reference-water layer nor a pre-event scene): the water may be permanent (a river seen by every pass),
    so repetition proves nothing - confidence is at most ``high`` and a ``new`` alert is not confirmed.

    - no alert, or one closed or outside the window: a new alert (``new``, one acquisition);
    - the cluster's acquisition is already one of the alert's (same platform and sensor, sensing times at
      most ``min_separation_minutes`` apart): ``same_acquisition`` - status, confidence, severity, area and
      version stay; the scene id is recorded with that acquisition;
    - otherwise an independent observation: geometry union, area (geodesic), max likelihood, sensors,
      acquisitions, confidence and severity are recomputed, and a ``new`` alert becomes ``confirmed``.
    """
    acq = c.acquisition
    if alert is None or not mergeable(alert, acq.sensing_time, policy):
        geom = as_multipolygon(c.geom)
        new = Alert(
            id=uuid.uuid4(), hazard=policy.hazard, status=AlertStatus.NEW.value,
            confidence=_capped(confidence(policy, {acq.sensor}, 1, c.area_ha, c.likelihood), reference_known),
            severity=severity(c.area_ha, policy), geom=geom, area_ha=c.area_ha, likelihood=c.likelihood,
            sensors=[acq.sensor], observations=1, first_sensed=acq.sensing_time, last_sensed=acq.sensing_time,
            context=_with_acquisitions({}, (acq,)), version=1)
        return MergeDecision("create", new, f"first detection in scene {', '.join(acq.scene_ids)}")
    gap = timedelta(minutes=policy.min_separation_minutes)
    known = alert.acquisitions
    same = next((i for i, a in enumerate(known) if a.same_as(acq, gap)), None)
    if same is not None:
        prev = known[same]
        merged = replace(prev, scene_ids=tuple(dict.fromkeys([*prev.scene_ids, *acq.scene_ids])))
        acqs = (*known[:same], merged, *known[same + 1:])
        return MergeDecision("same_acquisition", replace(alert, context=_with_acquisitions(alert.context, acqs)),
                             f"scene {', '.join(acq.scene_ids)} is acquisition {prev.platform} "
                             f"{prev.sensing_time.isoformat()} again: not an independent observation")
    geom = as_multipolygon(shapely.union_all([alert.geom, c.geom]))
    area = geodesic_area_ha(geom)
    acqs = tuple(sorted((*known, acq), key=lambda a: a.sensing_time))
    sensors = sorted({*alert.sensors, acq.sensor})
    lk = max(alert.likelihood, c.likelihood)
    status = (AlertStatus.CONFIRMED.value if alert.status == AlertStatus.NEW.value and reference_known
              else alert.status)
    out = replace(alert, status=status, geom=geom, area_ha=area, likelihood=lk, sensors=sensors,
                  observations=len(acqs), context=_with_acquisitions(alert.context, acqs),
                  confidence=_capped(confidence(policy, set(sensors), len(acqs), area, lk), reference_known),
                  severity=severity(area, policy), first_sensed=min(alert.first_sensed, acq.sensing_time),
                  last_sensed=max(alert.last_sensed, acq.sensing_time), version=alert.version + 1)
    return MergeDecision("update", out, f"scene {', '.join(acq.scene_ids)} ({acq.platform} "
                                        f"{acq.sensing_time.isoformat()}) observed the alert area independently")


def rebuild_alert(alert: Alert, support: list[tuple[str, BaseGeometry, float, float]], policy: HazardPolicy,
                  reference_known: bool = True, pipeline_confirmed: bool = True) -> MergeDecision:
    """Re-derive an open alert from the detections that still support it after a re-processing run.

    ``support``: (scene id, lon/lat geometry, area ha, likelihood 0-100) of every detection linked to the
    alert. Returns ``withdraw`` (nothing supports it: status ``false_positive``, the CAP ``Cancel``),
    ``update`` (geometry, area, acquisitions, confidence or status changed: version + 1) or ``unchanged``.
    Acquisitions are the alert's own, kept while one of their scene ids still supports it; a ``confirmed``
    the pipeline set falls back to ``new`` when fewer than two acquisitions (or no known reference water)
    support it; an operator's confirmation stays.
    """
    scenes = {sid for sid, *_ in support}
    if not support:
        return MergeDecision("withdraw", replace(alert, status=AlertStatus.FALSE_POSITIVE.value,
                                                 version=alert.version + 1),
                             "no detection of the re-processed scene(s) supports the alert any more")
    acqs = tuple(a for a in alert.acquisitions if scenes & set(a.scene_ids))
    if not acqs:  # detections of scenes the alert never recorded (older data): keep what it had
        acqs = alert.acquisitions
    geom = as_multipolygon(shapely.union_all([g for _, g, *_ in support]))
    area = geodesic_area_ha(geom)
    by_scene: dict[str, list[tuple[float, float]]] = {}
    for sid, _, a, lk in support:
        by_scene.setdefault(sid, []).append((a, lk))
    lk = max(sum(a * x for a, x in v) / max(sum(a for a, _ in v), 1e-9) for v in by_scene.values())
    sensors = sorted({a.sensor for a in acqs})
    status = alert.status
    if (status == AlertStatus.CONFIRMED.value and pipeline_confirmed
            and (len(acqs) < 2 or not reference_known)):
        status = AlertStatus.NEW.value
    out = replace(alert, status=status, geom=geom, area_ha=area, likelihood=lk, sensors=sensors,
                  observations=len(acqs), context=_with_acquisitions(alert.context, acqs),
                  confidence=_capped(confidence(policy, set(sensors), len(acqs), area, lk), reference_known),
                  severity=severity(area, policy), first_sensed=min(a.sensing_time for a in acqs),
                  last_sensed=max(a.sensing_time for a in acqs))
    # the same area (summed detection areas vs the union's geodesic area differ by rounding only)
    same = (abs(out.area_ha - alert.area_ha) <= max(1e-3, 1e-4 * alert.area_ha)
            and out.observations == alert.observations
            and (out.status, out.confidence, out.severity) == (alert.status, alert.confidence, alert.severity))
    if same:
        return MergeDecision("unchanged", alert, "the re-processed scene(s) support the alert as it was")
    return MergeDecision("update", replace(out, version=alert.version + 1),
                         f"re-processed: {alert.area_ha:.2f} -> {area:.2f} ha, {len(acqs)} acquisition(s)")


# Rule files ------------------------------------------------------------------

class InvalidAlertRules(ValueError):
    """A rule file does not match alerts/rules/schema.json or is inconsistent."""


def _criteria(items: list[dict]) -> tuple[Criterion, ...]:
    return tuple(Criterion(**c) for c in items)


def policy_from_rule(rule: dict, source: str = "") -> HazardPolicy:
    """A validated rule document (already checked against the schema) -> :class:`HazardPolicy`."""
    ladder = tuple(sorted(((float(s["min_area_ha"]), s["level"]) for s in rule["severity"]), reverse=True))
    if ladder[-1][0] != 0.0:
        raise InvalidAlertRules(f"{source}: severity needs a step with min_area_ha: 0")
    conf = rule["confidence"]
    cap = rule["cap"]
    return HazardPolicy(
        hazard=rule["hazard"], min_area_ha=float(rule["min_area_ha"]),
        min_likelihood=float(rule["min_likelihood"]),
        high=_criteria(conf["high"]["when"]), highest=_criteria(conf["highest"]["when"]),
        merge_distance_m=float(rule["merge"]["distance_m"]), merge_window_days=float(rule["merge"]["window_days"]),
        min_separation_minutes=float(rule["merge"].get("min_separation_minutes", 60.0)),
        severity_by_area_ha=ladder,
        cap=CapMapping(event=cap["event"], category=cap["category"], response=cap["response"],
                       urgency=dict(cap["urgency"]), certainty=dict(cap["certainty"])),
        source=source,
    )


def load_rules(rules_dir: Path) -> dict[str, HazardPolicy]:
    """Load and validate every ``*.yaml`` rule in ``rules_dir`` against its ``schema.json``.

    Raises :class:`InvalidAlertRules` naming the file and the JSON path of the first problem.
    """
    rules_dir = Path(rules_dir)
    schema_path = rules_dir / "schema.json"
    if not schema_path.exists():
        raise InvalidAlertRules(f"alert rule schema not found: {schema_path}")
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    out: dict[str, HazardPolicy] = {}
    files = sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])
    if not files:
        raise InvalidAlertRules(f"no alert rules (*.yaml) in {rules_dir}")
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InvalidAlertRules(f"{path}: not valid YAML: {exc}") from exc
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            raise InvalidAlertRules(f"{path}: {where}: {e.message}")
        policy = policy_from_rule(doc, str(path))
        if policy.hazard in out:
            raise InvalidAlertRules(f"{path}: hazard {policy.hazard!r} already defined in {out[policy.hazard].source}")
        out[policy.hazard] = policy
    return out


def is_backfill(alert: Alert, policy: HazardPolicy, now: datetime) -> bool:
    """Whether ``alert`` is history rather than news: its last observation is older than the rule's merge window
    (``merge_window_days``) at ``now``, so a CAP ``expires`` would already be past (a backfill or a late scene)."""
    return alert.last_sensed + timedelta(days=policy.merge_window_days) < now
