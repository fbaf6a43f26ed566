"""`Behaviour`: what is particular to one resource type, the base class of every type's rules.

The store enforces what every ARM write obeys (sim/writes.py) and runs its operation
(sim/long_running.py); at each step it asks the type's `Behaviour` (network.py,
load_balancers.py, insights.py, virtual_machines.py, scale_sets.py, uniform_instances.py) what
more to check or do, always with the store lock held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.documents import JsonDict
from sim.events import RequestContext
from sim.ids import ResourceRef

if TYPE_CHECKING:
    from sim.store import Store


class Behaviour:
    """What is particular to one resource type. Every method runs with the store lock held.

    The defaults are what most types do (nothing more on write, complete after the LRO duration,
    nothing to refuse or clean up); a type overrides what is particular to it.
    """

    resource_type: str
    # True: writes complete in the request (200/201, no operation to poll), as Microsoft.Insights does.
    synchronous: bool = False

    def synchronous_put(self, store: Store, previous: JsonDict | None) -> bool:
        """Whether a PUT or PATCH (previous None: a creation) completes in the request, answered
        200/201 with no operation to poll, rather than as a long-running operation."""
        return self.synchronous

    def synchronous_delete(self, store: Store, doc: JsonDict) -> bool:
        """Whether a DELETE completes in the request (200, no operation to poll)."""
        return self.synchronous

    def check_patch(self, store: Store, patch: JsonDict) -> None:
        """Refuse a PATCH body the provider refuses before merging it (raise ArmError)."""
        return None

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        """Validate a PUT body and build the document to store; raise ArmError; no side effects."""
        raise NotImplementedError(f"{type(self).__name__} must say how a PUT body becomes a document")

    def apply_put(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> None:
        """Side effects of an accepted PUT on other resources (back-references)."""
        return None

    def put_delay(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> float:
        """Seconds until the PUT's operation completes."""
        return store.settings.lro_duration_s

    def complete_put(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        """Work done when the PUT's operation completes (e.g. Flex instances); may raise ArmError."""
        return None

    def provisioning_steps(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> int:
        """How many steps of work a long-running PUT does while it runs, spread evenly over its
        duration before it completes (a scale-out creates its instances one at a time)."""
        return 0

    def provision_step(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        """One of those steps (e.g. one instance), run while the operation is still in progress."""
        return None

    def check_delete(self, store: Store, doc: JsonDict) -> None:
        """Refuse a DELETE ARM would refuse (raise ArmError)."""
        return None

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        """Clean up references and cascade before the document goes; requested=False for cascades."""
        return None

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        """Add missing server fields to a seeded document."""
        return None

    def link(self, store: Store, doc: JsonDict) -> None:
        """Make back-references consistent after seeding (only where both ends exist)."""
        return None

    def view(self, store: Store, doc: JsonDict) -> None:
        """Fill what the server derives from other resources into a copy about to be served."""
        return None
