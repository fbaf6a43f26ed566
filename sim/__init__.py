"""A local stand-in for Azure Resource Manager, for tests, the demo and benchmarks (never deployed)."""

from sim.events import EventSchema
from sim.faults import Faults
from sim.insights import AutoscaleRefused
from sim.request_log import RequestRecord
from sim.simulator import ArmSimulator

__all__ = ["ArmSimulator", "AutoscaleRefused", "EventSchema", "Faults", "RequestRecord"]
