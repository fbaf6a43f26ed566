"""The simulator's settings: the switches an `ArmSimulator` is built with, checked once.

Every module reads them from `Store.settings`; what each one means is said in ArmSimulator's
docstring (sim/simulator.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """The simulator's switches (see ArmSimulator for what each one means)."""

    provision_delay_s: float = 0.3
    lro_duration_s: float = 0.05
    page_size: int = 20
    child_events: bool = False
    manual_vms_count_in_capacity: bool = False
    tenant_id: str = "00000000-0000-0000-0000-000000000000"
    time_scale: float = 1.0
    throttling: bool = True
    require_known_subnets: bool = False
    autoscale_patch_needs_profiles: bool = True
    nic_update_long_running: bool = False
    # Simulated seconds that lists (list_lag_s) and Resource Graph (graph_lag_s) lag the writes.
    list_lag_s: float = 1.0
    graph_lag_s: float = 5.0
    # When a write's event is published: when ARM accepts it, or when its operation completes.
    events_at: str = "acceptance"
    # Whether a subscription's events reach the sinks only once its system topic is wired.
    events_need_wiring: bool = False

    def __post_init__(self) -> None:
        if self.list_lag_s < 0 or self.graph_lag_s < 0:
            raise ValueError("list_lag_s and graph_lag_s must not be negative")
        if self.events_at not in EVENTS_AT:
            raise ValueError(f"events_at must be one of {', '.join(EVENTS_AT)}, not {self.events_at!r}")


EVENTS_AT = ("acceptance", "completion")
