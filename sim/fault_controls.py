"""Fault injection as a test sets it at run time: a failed operation, the faults, what was met.

The faults themselves are sim/faults.py's. Mixed into `ArmSimulator`.
"""

from __future__ import annotations

from sim.faults import FaultInjector, Faults
from sim.writes import WritableStore


class FaultControls:
    """Mixed into ArmSimulator, which provides the store and the fault injector."""

    _store: WritableStore
    _faults: FaultInjector

    def fail_next_operation(
        self, resource_id: str, code: str = "InternalServerError", message: str = "Injected failure."
    ) -> None:
        """Fault injection: the next operation on `resource_id` ends Failed with this error."""
        self._store.fail_next_operation(resource_id, code, message)

    def set_faults(self, faults: Faults | None) -> None:
        """Change (or with None, stop) fault injection at run time; the sequence restarts from its seed."""
        self._faults.configure(faults)

    @property
    def faults_injected(self) -> int:
        """How many faults were injected since the last `set_faults` or `reset`."""
        return self._faults.injected

    def faults_met(self) -> dict[str, int]:
        """Faults injected since the last `set_faults` or `reset`, by kind (`FaultKind` value).

        Kinds not met are left out; the values add up to `faults_injected`.
        """
        return self._faults.met()
