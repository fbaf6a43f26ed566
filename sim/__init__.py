"""A local stand-in for Azure Resource Manager, for tests, the demo and benchmarks (never deployed)."""

from sim.simulator import ArmSimulator
from sim.store import RequestRecord

__all__ = ["ArmSimulator", "RequestRecord"]
