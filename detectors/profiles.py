"""Window profiles, in events: baseline B, window W, hop H, and the false-alarm target per scored window."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detectors.incidents import IncidentPolicy


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    baseline: int
    window: int
    hop: int
    false_alarm_target: float
    """Probability that a window of normal data is flagged (the calibrated p-value threshold)."""
    incident_h: float = 15.0
    """CUSUM threshold (nats of evidence beyond the per-window target) that opens an incident."""
    resolve_after_windows: int = 10
    """Consecutive normal windows that resolve an open incident."""
    false_incidents_per_million: float = 1.0
    """Declared false incidents per stream per million normal events (measured: docs/quality.md)."""


PROFILES: dict[str, Profile] = {
    "sensitive": Profile("sensitive", 200, 30, 10, 1e-2, incident_h=30.0, resolve_after_windows=6,
                         false_incidents_per_million=10.0),
    "balanced": Profile("balanced", 400, 50, 10, 1e-3, incident_h=15.0, resolve_after_windows=10,
                        false_incidents_per_million=1.0),
    "strict": Profile("strict", 800, 100, 20, 1e-4, incident_h=15.0, resolve_after_windows=10,
                      false_incidents_per_million=0.1),
}
DEFAULT_PROFILE = "balanced"


def resolve_profile(name: str = DEFAULT_PROFILE, **overrides: int | float | None) -> Profile:
    """A named profile with per-stream overrides (baseline, window, hop, false_alarm_target)."""
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    fields = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(fields) - {"baseline", "window", "hop", "false_alarm_target"}
    if unknown:
        raise ValueError(f"unknown profile override(s): {', '.join(sorted(unknown))}")
    merged = dataclasses.replace(
        base, baseline=int(fields.get("baseline", base.baseline)),
        window=int(fields.get("window", base.window)), hop=int(fields.get("hop", base.hop)),
        false_alarm_target=float(fields.get("false_alarm_target", base.false_alarm_target)))
    if not (0 < merged.hop <= merged.window <= merged.baseline):
        raise ValueError("profile needs 0 < hop <= window <= baseline")
    if not 0 < merged.false_alarm_target < 1:
        raise ValueError("false_alarm_target must be in (0, 1)")
    return merged


def incident_policy(profile: Profile, *, incident_h: float | None = None,
                    resolve_after_windows: int | None = None,
                    accept_after_ns: int | None = None) -> IncidentPolicy:
    """The incident tracker's policy for a (resolved) profile, with per-stream overrides.

    Evidence counts from the profile's per-window target (``k = ln(1 / target)``); a window is normal for
    resolution when ``p > min(0.05, 10 * target)`` (clearly not even borderline).
    """
    from detectors.incidents import HOUR_NS, IncidentPolicy

    policy = IncidentPolicy(
        drift_k=math.log(1.0 / profile.false_alarm_target),
        threshold_h=float(incident_h if incident_h is not None else profile.incident_h),
        normal_p=min(0.05, 10.0 * profile.false_alarm_target),
        resolve_after_windows=int(resolve_after_windows if resolve_after_windows is not None
                                  else profile.resolve_after_windows),
        accept_after_ns=int(accept_after_ns if accept_after_ns is not None else HOUR_NS))
    if policy.threshold_h < 0 or policy.resolve_after_windows < 1 or policy.accept_after_ns <= 0:
        raise ValueError("incidents need incident_h >= 0, resolve_after_windows >= 1, accept_after_ns > 0")
    return policy
