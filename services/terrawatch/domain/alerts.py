"""Alert policy: confidence tiers, severity and lifecycle rules (pure).

Tiers follow Global Forest Watch's integrated alerts: one sensor, one
observation = ``low``; a repeated observation or two sensors = ``high``; both
plus a large area = ``highest``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Confidence(str, Enum):
    LOW = "low"
    HIGH = "high"
    HIGHEST = "highest"

    @property
    def rank(self) -> int:
        return {"low": 0, "high": 1, "highest": 2}[self.value]


class AlertStatus(str, Enum):
    NEW = "new"
    CONFIRMED = "confirmed"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


OPEN_STATUSES = (AlertStatus.NEW, AlertStatus.CONFIRMED, AlertStatus.ACKNOWLEDGED)

# Allowed transitions: who may move an alert where.
TRANSITIONS: dict[AlertStatus, set[AlertStatus]] = {
    AlertStatus.NEW: {AlertStatus.CONFIRMED, AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED,
                      AlertStatus.FALSE_POSITIVE},
    AlertStatus.CONFIRMED: {AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE},
    AlertStatus.ACKNOWLEDGED: {AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE, AlertStatus.CONFIRMED},
    AlertStatus.RESOLVED: set(),
    AlertStatus.FALSE_POSITIVE: set(),
}


def can_transition(src: AlertStatus, dst: AlertStatus) -> bool:
    return dst in TRANSITIONS[src]


@dataclass(frozen=True)
class HazardPolicy:
    hazard: str
    min_area_ha: float = 0.2
    min_likelihood: float = 50.0
    large_area_ha: float = 100.0
    merge_distance_m: float = 500.0
    merge_window_days: float = 30.0
    severity_by_area_ha: tuple[tuple[float, str], ...] = ((1000.0, "extreme"), (100.0, "severe"),
                                                        (10.0, "moderate"), (0.0, "minor"))


def confidence(sensors: set[str], observations: int, area_ha: float, policy: HazardPolicy) -> Confidence:
    """Tier of an alert seen by ``sensors`` in ``observations`` distinct scenes."""
    corroborated = observations >= 2 or len(sensors) >= 2
    if len(sensors) >= 2 and observations >= 2 and area_ha >= policy.large_area_ha:
        return Confidence.HIGHEST
    return Confidence.HIGH if corroborated else Confidence.LOW


def severity(area_ha: float, policy: HazardPolicy) -> str:
    for threshold, name in policy.severity_by_area_ha:
        if area_ha >= threshold:
            return name
    return policy.severity_by_area_ha[-1][1]


def admits(area_ha: float, likelihood: float, policy: HazardPolicy) -> bool:
    """Whether a detection cluster is large and likely enough to alert on."""
    return area_ha >= policy.min_area_ha and likelihood >= policy.min_likelihood
