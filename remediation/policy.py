"""Which scale sets are restricted, and in which mode. Pure: no I/O.

A set is restricted by the tag ``remediation.mode`` on the scale set itself, so the owners of a
set opt it in where they create it. A tag value that is not a mode is not silently ignored: a set
whose owners meant to restrict it with a typo is treated as ``audit`` (record, never write), and
the decision record says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediation.model import Mode, ScaleSet, tag_value

MODE_TAG = "remediation.mode"


@dataclass(frozen=True)
class Restriction:
    """The policy's verdict on one set: restricted or not, the mode, and why."""

    mode: Mode | None  # None: not restricted
    reason: str

    @property
    def restricted(self) -> bool:
        return self.mode is not None


def restriction_for(scale_set: ScaleSet) -> Restriction:
    raw = tag_value(scale_set.tags, MODE_TAG)
    if raw is None:
        return Restriction(None, f"scale set has no {MODE_TAG!r} tag")
    value = raw.strip().lower()
    try:
        mode = Mode(value)
    except ValueError:
        modes = ", ".join(m.value for m in Mode)
        return Restriction(Mode.AUDIT, f"tag {MODE_TAG}={raw!r} is not one of {modes}; treated as audit")
    return Restriction(mode, f"tag {MODE_TAG}={mode.value}")
