"""Microsoft.Compute's own throttling, behind ARM's: per-resource and per-subscription policies.

ARM's buckets (sim/limits.py) are the front door's. The Compute resource provider (CRP) counts
again, by operation group, and answers 429 itself when a policy's budget is spent, however many
tokens ARM had left. What the simulator relies on, from Microsoft's documentation:

- "Troubleshooting API throttling errors" (learn.microsoft.com, troubleshoot/azure/
  virtual-machines/troubleshooting-throttling-errors): every Compute answer carries
  `x-ms-ratelimit-remaining-resource: <source RP>/<policy or bucket>;<count>` for each policy the
  request falls under (one request may fall under several), e.g. a scale set delete answered with
  `Microsoft.Compute/DeleteVMScaleSet3Min;107`, `Microsoft.Compute/DeleteVMScaleSet30Min;587`,
  `Microsoft.Compute/VMScaleSetBatchedVMRequests5Min;3704`; `x-ms-request-charge` says how many
  counts the request was charged (1, more for a batch such as a scale-out). A throttled request
  is answered 429 with `Retry-After` and the error code `OperationNotAllowed`, "The server rejected
  the request because too many requests have been received for this subscription.", with a detail
  (code `TooManyRequests`, target the policy) whose message is a JSON object naming the
  `operationGroup` with `startTime`, `endTime`, `allowedRequestCount` and `measuredRequestCount`
  (the article's sample, and the same shape quoted from real answers in Azure/aks-engine#2295:
  `HighCostGetVMScaleSet3Min` allowed 180, `HighCostGetVMScaleSet30Min` allowed 900).
- "Compute throttling limits" (learn.microsoft.com, azure/virtual-machines/compute-throttling-
  limits): policies are token buckets per region, per resource and per subscription; a VM takes
  up to 12 update requests a minute, refilled 4 a minute, and the subscription's Update VM
  requests are capped at 1,500 a minute (refilled 500 a minute).
- A recorded `az vmss show` (a public gist of `--debug` output): `Microsoft.Compute/
  GetVMScaleSet3Min;197,Microsoft.Compute/GetVMScaleSet30Min;1297`: several policies go in one
  header value, comma-separated, which is the form sent here.

The numbers: GetVMScaleSet (200 / 3 min, 1,300 / 30 min), DeleteVMScaleSet (120 / 3 min, 600 /
30 min) and VMScaleSetBatchedVMRequests5Min (4,000 / 5 min) are read off the samples' remaining
counts (a sample's count plus what it was charged); HighCostGet (180 / 3 min, 900 / 30 min)
from the quoted answer; the per-resource buckets (12, refilled 4 a minute) and PutVM3Min /
DeleteVM3Min (1,500, refilled 500 a minute) from the limits article. Not found, so picked by the
simulator in the documented shape and said so here: PutVMScaleSet3Min (375) / 30Min (1,500),
LowCostGet3Min (4,000) / 30Min (32,000), GetOperation3Min (30,000) / 30Min (240,000), and the names
of the per-resource budgets (`PutVMScaleSetResource`, `PutVMResource`, `DeleteVMResource`). A
policy named `...3Min` is modelled as a bucket of its allowance refilled evenly over 3 minutes
(likewise 5 and 30), as the limits article describes its buckets. Which policies a request falls
under is the simulator's mapping too: lists of VMs (and of a Uniform set's instances) are high
cost, a GET of one VM or instance low cost; scale set reads are GetVMScaleSet; operation polls
GetOperation; a scale set write is charged its capacity change in the batched budget (a delete its
capacity, a manual upgrade its instances).

Time is the throttle's simulated time, so `freeze_refill` stops these buckets too; a test sets a
level with `set_level` (ArmSimulator.set_compute_budget) and reads it with `level`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sim import ids
from sim.buckets import BucketSpec, TokenBucket, retry_after_header
from sim.errors import ArmError

SOURCE = "Microsoft.Compute"
REMAINING_HEADER = "x-ms-ratelimit-remaining-resource"
CHARGE_HEADER = "x-ms-request-charge"


@dataclass(frozen=True)
class Policy:
    """One of CRP's throttling policies: a token bucket per subscription, or per resource."""

    name: str
    allowance: float  # tokens when full
    window_s: float  # refilled `allowance` tokens evenly over this many seconds
    per_resource: bool = False

    @property
    def spec(self) -> BucketSpec:
        return BucketSpec(self.allowance, self.allowance / self.window_s)


def _policies(*policies: Policy) -> dict[str, Policy]:
    return {policy.name.lower(): policy for policy in policies}


MINUTE = 60.0
POLICIES: dict[str, Policy] = _policies(
    Policy("PutVMScaleSetResource", 12, 12 / 4 * MINUTE, per_resource=True),
    Policy("PutVMScaleSet3Min", 375, 3 * MINUTE),
    Policy("PutVMScaleSet30Min", 1500, 30 * MINUTE),
    Policy("DeleteVMScaleSet3Min", 120, 3 * MINUTE),
    Policy("DeleteVMScaleSet30Min", 600, 30 * MINUTE),
    Policy("VMScaleSetBatchedVMRequests5Min", 4000, 5 * MINUTE),
    Policy("GetVMScaleSet3Min", 200, 3 * MINUTE),
    Policy("GetVMScaleSet30Min", 1300, 30 * MINUTE),
    Policy("HighCostGet3Min", 180, 3 * MINUTE),
    Policy("HighCostGet30Min", 900, 30 * MINUTE),
    Policy("LowCostGet3Min", 4000, 3 * MINUTE),
    Policy("LowCostGet30Min", 32000, 30 * MINUTE),
    Policy("PutVMResource", 12, 12 / 4 * MINUTE, per_resource=True),
    Policy("PutVM3Min", 1500, 1500 / 500 * MINUTE),
    Policy("DeleteVMResource", 12, 12 / 4 * MINUTE, per_resource=True),
    Policy("DeleteVM3Min", 1500, 1500 / 500 * MINUTE),
    Policy("GetOperation3Min", 30000, 3 * MINUTE),
    Policy("GetOperation30Min", 240000, 30 * MINUTE),
)
BATCHED = "VMScaleSetBatchedVMRequests5Min"


@dataclass(frozen=True)
class ComputeRequest:
    """What CRP counts of one request: its policies, its target, and the batch it charges."""

    policies: tuple[str, ...]
    resource_key: str  # lower-cased id of the resource a per-resource policy counts
    batch: int = 1  # the charge in VMScaleSetBatchedVMRequests5Min


def classify(method: str, path: str, resource_type: str, *, batch: int = 1) -> ComputeRequest | None:
    """The policies a request to Microsoft.Compute falls under (None: not a Compute request)."""
    rtype = resource_type.lower()
    verb = method.upper()
    segments = path.rstrip("/").lower().split("/")
    listing = verb == "GET" and segments[-1] in ("virtualmachinescalesets", "virtualmachines")
    resource = ids.key(path)
    if rtype == ids.VMSS_TYPE.lower():
        if verb == "GET":
            return ComputeRequest(("GetVMScaleSet3Min", "GetVMScaleSet30Min"), resource)
        if verb == "DELETE":
            return ComputeRequest(("DeleteVMScaleSet3Min", "DeleteVMScaleSet30Min", BATCHED), resource, batch)
        if segments[-1] == "manualupgrade":
            resource = resource.rsplit("/", 1)[0]
        return ComputeRequest(
            ("PutVMScaleSetResource", "PutVMScaleSet3Min", "PutVMScaleSet30Min", BATCHED), resource, batch
        )
    if rtype in (ids.VM_TYPE.lower(), ids.VMSS_VM_TYPE.lower()):
        if listing:
            return ComputeRequest(("HighCostGet3Min", "HighCostGet30Min"), resource)
        if verb == "GET":
            return ComputeRequest(("LowCostGet3Min", "LowCostGet30Min"), resource)
        instance = rtype == ids.VMSS_VM_TYPE.lower()
        if verb == "DELETE":
            extra = (BATCHED,) if instance else ()
            return ComputeRequest(("DeleteVMResource", "DeleteVM3Min", *extra), resource, batch)
        return ComputeRequest(("PutVMResource", "PutVM3Min"), resource)
    if rtype.startswith(f"{SOURCE.lower()}/locations/"):  # operation status and result polls
        return ComputeRequest(("GetOperation3Min", "GetOperation30Min"), resource)
    return None


def policy_named(name: str) -> Policy:
    """The policy called `name` (with or without `Microsoft.Compute/`); ValueError otherwise."""
    policy = POLICIES.get(name.lower().removeprefix(f"{SOURCE.lower()}/"))
    if policy is None:
        known = ", ".join(sorted(p.name for p in POLICIES.values()))
        raise ValueError(f"no Compute policy named {name!r}; the simulator has {known}")
    return policy


@dataclass(frozen=True)
class ComputeAdmission:
    headers: dict[str, str] = field(default_factory=dict)
    error: ArmError | None = None


class ComputeLimits:
    """CRP's buckets of one simulator, keyed by subscription (and resource). Thread-safe."""

    def __init__(self, now: Callable[[], float], time_scale: float = 1.0) -> None:
        self._now = now  # simulated seconds (the throttle's: frozen with it)
        self.time_scale = time_scale
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _bucket(self, policy: Policy, subscription: str, resource_key: str, now: float) -> TokenBucket:
        key = (subscription.lower(), policy.name.lower(), resource_key if policy.per_resource else "")
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(policy.spec, now)
        bucket.refill(now)
        return bucket

    def set_level(self, policy_name: str, tokens: float, subscription: str, resource_id: str | None) -> None:
        policy = policy_named(policy_name)
        if policy.per_resource and resource_id is None:
            raise ValueError(f"{policy.name} is counted per resource: name the resource")
        if not 0 <= tokens <= policy.allowance:
            raise ValueError(f"tokens must be between 0 and {policy.allowance:g}, not {tokens}")
        now = self._now()
        with self._lock:
            self._bucket(policy, subscription, ids.key(resource_id or ""), now).set(float(tokens), now)

    def level(self, policy_name: str, subscription: str, resource_id: str | None) -> float:
        policy = policy_named(policy_name)
        if policy.per_resource and resource_id is None:
            raise ValueError(f"{policy.name} is counted per resource: name the resource")
        now = self._now()
        with self._lock:
            return self._bucket(policy, subscription, ids.key(resource_id or ""), now).tokens

    def admit(self, subscription: str, request: ComputeRequest) -> ComputeAdmission:
        """Charge every policy of the request, or none and a 429 naming the first one short."""
        now = self._now()
        with self._lock:
            taken = [
                (policy, self._bucket(policy, subscription, request.resource_key, now), charge)
                for name in request.policies
                for policy in [POLICIES[name.lower()]]
                for charge in [min(float(request.batch if name == BATCHED else 1), policy.allowance)]
            ]
            short = next(((p, b, c) for p, b, c in taken if b.tokens < c), None)
            if short is None:
                for _, bucket, charge in taken:
                    bucket.tokens -= charge
            headers = {
                REMAINING_HEADER: ",".join(f"{SOURCE}/{p.name};{max(int(b.tokens), 0)}" for p, b, _ in taken),
                CHARGE_HEADER: str(max(int(c) for _, _, c in taken)) if taken else "1",
            }
        if short is None:
            return ComputeAdmission(headers)
        policy, bucket, charge = short
        wait = (charge - bucket.tokens) / policy.spec.refill_per_s
        return ComputeAdmission(headers, self._throttled(policy, wait))

    def _throttled(self, policy: Policy, wait_s: float) -> ArmError:
        start = datetime.now(UTC)
        detail = {
            "operationGroup": policy.name,
            "startTime": start.isoformat(),
            "endTime": (start + timedelta(seconds=policy.window_s / self.time_scale)).isoformat(),
            "allowedRequestCount": int(policy.allowance),
            "measuredRequestCount": int(policy.allowance) + 1,
        }
        return ArmError(
            429,
            "OperationNotAllowed",
            "The server rejected the request because too many requests have been received for this "
            f"subscription. (Throttled by {SOURCE}/{policy.name}.)",
            details=[{"code": "TooManyRequests", "target": policy.name, "message": json.dumps(detail)}],
            headers={"Retry-After": retry_after_header(max(wait_s, 0.0), self.time_scale)},
        )
