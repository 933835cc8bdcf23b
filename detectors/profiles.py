"""Window profiles, in events: baseline B, window W, hop H, and the false-alarm target per scored window."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    baseline: int
    window: int
    hop: int
    false_alarm_target: float
    """Probability that a window of normal data is flagged (the calibrated p-value threshold)."""


PROFILES: dict[str, Profile] = {
    "sensitive": Profile("sensitive", 200, 30, 10, 1e-2),
    "balanced": Profile("balanced", 400, 50, 10, 1e-3),
    "strict": Profile("strict", 800, 100, 20, 1e-4),
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
    merged = Profile(name=base.name, baseline=int(fields.get("baseline", base.baseline)),
                     window=int(fields.get("window", base.window)), hop=int(fields.get("hop", base.hop)),
                     false_alarm_target=float(fields.get("false_alarm_target", base.false_alarm_target)))
    if not (0 < merged.hop <= merged.window <= merged.baseline):
        raise ValueError("profile needs 0 < hop <= window <= baseline")
    if not 0 < merged.false_alarm_target < 1:
        raise ValueError("false_alarm_target must be in (0, 1)")
    return merged
