"""What a test sets of the simulator's throttling: forced 429s, bucket levels, a frozen refill.

How many 429s a run meets from the buckets depends on the machine's speed; these make it
exact (sim/limits.py for ARM's buckets, sim/compute_limits.py for Microsoft.Compute's
policies), and `storm_bound` says the best any client could do under the limits as they stand
(sim/bounds.py). Mixed into `ArmSimulator`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.arm_limits import ARM_BUCKETS, NETWORK_WRITES, RequestClass
from sim.bounds import Budget, StormBound, storm_bound
from sim.buckets import BucketSpec
from sim.limits import Throttle
from sim.settings import Settings


class ThrottlingControls:
    """Mixed into ArmSimulator, which provides the settings and the throttle (None: throttling off)."""

    settings: Settings
    _throttle: Throttle | None

    def throttle_next(
        self, principal: str, request_class: str, count: int, subscription: str | None = None
    ) -> None:
        """Answer the next `count` requests of one class by one principal 429, whatever the clock says.

        principal: the bucket key, the token's appid (else oid), as `RequestRecord.principal` shows it.
        request_class: "reads", "writes" or "deletes" (a `RequestClass`; status polls are reads).
        subscription: only requests to this subscription; None: to any.
        Each answer is the one an empty bucket gives (`SubscriptionRequestsThrottled`, `Retry-After`
        for one token at the bucket's refill rate, remaining 0); after them the bucket is empty and
        refills at its normal rate, so a client honouring `Retry-After` goes on. A later call for the
        same principal, class and subscription replaces the count (0 cancels it); `reset()` forgets it.
        Raises ValueError on a simulator built with `throttling=False`.
        """
        self._throttling("throttle_next").throttle_next(principal, request_class, count, subscription)

    def set_bucket(
        self, principal: str | None, request_class: str, tokens: float, subscription: str | None = None
    ) -> None:
        """Set one of ARM's buckets to exactly `tokens` now; it refills at its normal rate from there
        (not at all while `freeze_refill()` holds).

        principal: the bucket key, as `RequestRecord.principal` shows it; None: the subscription's
        global bucket (shared by all principals; `subscription` is then required).
        request_class: "reads", "writes" or "deletes".
        subscription: None: that principal's bucket in every subscription, those it used and those
        it uses later (which start from this level); "" is the tenant-level bucket (Resource Graph).
        Raises ValueError for a level outside 0..capacity, or on a simulator built with
        `throttling=False`; `reset()` forgets it.
        """
        self._throttling("set_bucket").set_bucket(principal, request_class, tokens, subscription)

    def bucket_level(self, principal: str | None, request_class: str, subscription: str) -> float:
        """Tokens in one bucket now (principal None: the subscription's global bucket); a bucket not
        used yet is full, or at the level `set_bucket` gave it."""
        return self._throttling("bucket_level").bucket_level(principal, request_class, subscription)

    def set_network_budget(self, subscription: str, tokens: float) -> None:
        """Set the subscription's Microsoft.Network write budget (1,000 per 5 minutes) to exactly
        `tokens` now; it refills at its normal rate from there."""
        self._throttling("set_network_budget").set_network_budget(subscription, tokens)

    def network_budget_level(self, subscription: str) -> float:
        """Tokens left now in the subscription's Microsoft.Network write budget."""
        return self._throttling("network_budget_level").network_budget(subscription)

    def set_compute_budget(
        self, policy: str, tokens: float, subscription: str, resource_id: str | None = None
    ) -> None:
        """Set one of Microsoft.Compute's throttling budgets (sim/compute_limits.py) to exactly
        `tokens` now; it refills at its normal rate from there (not while `freeze_refill()` holds).

        policy: its name, e.g. "PutVMScaleSet3Min" or "Microsoft.Compute/HighCostGet30Min".
        resource_id: the scale set or VM a per-resource policy (`PutVMScaleSetResource`,
        `PutVMResource`, `DeleteVMResource`) counts; None for a subscription's policy.
        Raises ValueError for an unknown policy or a level outside 0..its allowance, or on a
        simulator built with `throttling=False`; `reset()` forgets it."""
        self._throttling("set_compute_budget").compute.set_level(policy, tokens, subscription, resource_id)

    def compute_budget_level(self, policy: str, subscription: str, resource_id: str | None = None) -> float:
        """Tokens left now in one of Microsoft.Compute's budgets (one not used yet is full)."""
        return self._throttling("compute_budget_level").compute.level(policy, subscription, resource_id)

    def freeze_refill(self, frozen: bool = True) -> None:
        """Stop every bucket refilling (False: refill again), whatever the time and the machine's
        speed: a test that sets or drains a bucket then sees exact counts. The frozen time never
        refills afterwards either; `reset()` thaws."""
        self._throttling("freeze_refill").freeze_refill(frozen)

    def storm_bound(
        self,
        *,
        instances: int,
        principal: str,
        subscription: str,
        nic_created: Sequence[float] | None = None,
    ) -> StormBound:
        """The best any client could do stripping a storm of `instances` NICs from now, under this
        simulator's limits as they stand (sim/bounds.py: one NIC write as soon as the NIC exists
        and a token is free, one public IP delete as soon as its detach is done).

        principal: whose buckets the client spends (`RequestRecord.principal`); subscription: the
        estate's (its Microsoft.Network write budget is spent too). nic_created: when each NIC
        appears, in simulated seconds from now; by default as a scale-out of `instances` started
        now creates them (one at a time over `provision_delay_s`). Levels are read now; refill is
        at the buckets' normal rates (a frozen refill is not assumed to last). Times in the answer
        are simulated seconds from now (divide by `time_scale` for real ones).
        Raises ValueError on a simulator built with `throttling=False` (nothing bounds it)."""
        throttle = self._throttling("storm_bound")
        delay = self.settings.provision_delay_s
        created = (
            list(nic_created)
            if nic_created is not None
            else [delay * i / (instances + 1) for i in range(1, instances + 1)]
        )

        def budget(level: float, spec: BucketSpec) -> Budget:
            return Budget(level, spec.refill_per_s, spec.capacity, 0.0)

        writes = budget(
            throttle.bucket_level(principal, RequestClass.WRITE, subscription),
            ARM_BUCKETS[RequestClass.WRITE],
        )
        deletes = budget(
            throttle.bucket_level(principal, RequestClass.DELETE, subscription),
            ARM_BUCKETS[RequestClass.DELETE],
        )
        network = budget(throttle.network_budget(subscription), NETWORK_WRITES)
        return storm_bound(0.0, created, writes, deletes, network)

    def _throttling(self, what: str) -> Throttle:
        if self._throttle is None:
            raise ValueError(f"{what} needs a simulator built with throttling=True")
        return self._throttle
