"""`ArmSimulator`: the one object tests, the demo and benchmarks use.

No Azure subscription is reachable from our machines and no ARM emulator
exists, so this stands in for Azure Resource Manager for the resource types the
remediator meets (scale sets in both orchestration modes with their instances,
VMs, NICs, public IPs, virtual networks and subnets, autoscale settings, and
Resource Graph's query endpoint, role definitions and assignments). It wires the
store, the type-specific rules, the scheduler, throttling, authorization, fault
injection, event delivery and the HTTPS server together, and offers the hooks tests
need (events, request log and counters, request hooks, seeding and export, an
autoscale driver, forced throttling, per-kind fault counts, and who may do what:
`grant`, `define_role`, sim/access_harness.py) without going through HTTP.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sim import ids
from sim.access_api import AccessApi
from sim.access_harness import AccessHarness
from sim.authorization import Authorizer
from sim.bounds import Budget, StormBound, storm_bound
from sim.compute import ScaleSetVirtualMachines, VirtualMachines, VirtualMachineScaleSets
from sim.delivery import CallbackSink, EventBus, QueueSink, WebhookSink
from sim.events import EventSchema
from sim.faults import FaultInjector, Faults
from sim.hooks import RequestHook, RequestHooks
from sim.insights import AutoscaleSettings, autoscale_context, autoscale_target, scale_set_ref
from sim.limits import ARM_BUCKETS, NETWORK_WRITES, BucketSpec, RequestClass, Throttle
from sim.load_balancers import ApplicationSecurityGroups, LoadBalancers
from sim.network import NetworkInterfaces, PublicIPAddresses, VirtualNetworks
from sim.rbac import AccessControl
from sim.scheduler import Scheduler
from sim.seeding import read_documents
from sim.server import WRITE_METHODS, ArmApi, HttpsServer, counters
from sim.store import RequestRecord, Settings, Store
from sim.tls import write_self_signed

# The principal the simulated autoscale service writes with (its `appid` and `oid` claims). Azure does
# not document the autoscale service's application id; the Activity Log names this caller.
AUTOSCALE_APP_ID = "Microsoft.Insights/autoscaleSettings"


class ArmSimulator(AccessHarness):
    """A local ARM over HTTPS on 127.0.0.1 that the real azure-mgmt clients talk to.

    Timing (simulated seconds; real seconds are these divided by `time_scale`):
    provision_delay_s: how long a scale set takes to create or delete instances after a capacity
        change (its PUT stays Creating/Updating until then). A scale-out's instances appear one at a
        time, spread evenly over it (instance i of n at i/(n+1) of it, each with its NIC and public
        IP), so a reader watching the set sees it grow; a scale-in deletes when it completes.
    lro_duration_s: how long every other PUT/DELETE/POST action stays InProgress.
    time_scale: how much faster than real time the simulator's clocks run (10.0: provisioning, LROs,
        token refill, Retry-After, injected latency and holds all take a tenth of the time).

    Listing and identity:
    page_size: items per list page before a `nextLink`.
    list_lag_s: lists lag the writes by this many simulated seconds (default 1.0): a list of a
        type in a group or subscription, the VMs of a Flexible set (`$filter`), a Uniform set's
        instances and the NIC and public IP views under it answer from a view of the estate as it
        was then: a resource created since is missing, one deleted since still listed, one updated
        since listed as it was. A GET by id is always current (sim/lagging_view.py). 0 (the
        simulator's own tests only): lists are current.
    graph_lag_s: Resource Graph's rows lag the writes likewise, by default 5.0 simulated seconds
        (Resource Graph documents up to a minute); 0: current.
    The lags are measured on the simulator's clock (`now()`), which `time_scale` runs faster and
        `advance_clock(seconds)` moves forward at once.
    tenant_id: the `tenantId` written into events and Resource Graph rows.
    port: the loopback port to listen on (0: a free one).

    ARM behaviour switches:
    authorization: every request is authorized as ARM does (sim/authorization.py): the token's
        `oid` needs the request's action at its scope through a role assignment there or above it
        (403 `AuthorizationFailed`), and a PUT or PATCH the linked actions of the resources its
        body references (403 `LinkedAuthorizationFailed`, table in sim/linked_access.py). Checked
        after throttling (a 403 spends a token) and before faults. Role definitions, assignments
        and the caller's permissions are served at Microsoft.Authorization's paths; `grant(oid,
        role, scope)` and `define_role(name, actions)` set them up without HTTP. On unless built
        with False, which only the simulator's own tests that are not about authorization may use.
    linked_access_on_patch: "sent" (a PATCH's links are those in its body, as providers declare
        linked access checks on the request's content) or "merged" (those of the stored resource
        merged with the patch), a switch since Azure does not say so of PATCH outright.
    throttling: on by default (adversarial: the simulator's own tests that are not about it may
        turn it off). ARM's token buckets per subscription and principal (appid, else oid, of the
        bearer JWT; a digest of an opaque token): reads 250 burst / 25 per s, writes 200 / 10 per s,
        deletes 200 / 10 per s; a global bucket per subscription and class, 15 times as large and
        shared by all principals; and Microsoft.Network's 1,000 writes (PUT/PATCH/POST and DELETE)
        per 5 minutes per subscription. Over a limit: 429 `SubscriptionRequestsThrottled` with
        `Retry-After`. Every answer ARM counts carries, for its own class,
        `x-ms-ratelimit-remaining-subscription-global-{reads|writes|deletes}` (the global bucket:
        the header recorded from Azure) and `x-ms-ratelimit-remaining-subscription-{...}` (the
        caller's bucket); a gateway 404 for a missing resource carries neither (sim/limits.py).
        LRO status polls are reads. Requests without a subscription (Resource Graph) use tenant
        buckets of the per-principal size (429 `TenantRequestsThrottled`,
        `x-ms-ratelimit-remaining-tenant-{...}`). How many 429s a run meets from the buckets depends
        on the machine's speed; to make it exact, `throttle_next(principal, request_class, count)`
        answers that principal's next `count` requests of that class 429 as an empty bucket answers,
        whatever the clock says (its bucket is empty afterwards); `set_bucket` and
        `set_network_budget` set a bucket's level (`bucket_level`, `network_budget_level` read
        them); and `freeze_refill()` stops every bucket refilling until `freeze_refill(False)` or
        `reset()`.
        Behind ARM, Microsoft.Compute throttles again (sim/compute_limits.py, with its sources):
        policies per subscription (`PutVMScaleSet3Min`/`30Min`, `DeleteVMScaleSet3Min`/`30Min`,
        `VMScaleSetBatchedVMRequests5Min` charged per VM a scale set request touches,
        `GetVMScaleSet3Min`/`30Min`, `HighCostGet3Min`/`30Min` for VM lists, `LowCostGet3Min`/
        `30Min`, `PutVM3Min`, `DeleteVM3Min`, `GetOperation3Min`/`30Min`) and per scale set or VM
        (`PutVMScaleSetResource`, `PutVMResource`, `DeleteVMResource`: 12, refilled 4 a minute).
        Every Compute answer carries `x-ms-ratelimit-remaining-resource`
        (`Microsoft.Compute/<policy>;<count>,...`) and `x-ms-request-charge`; a spent policy is a
        429 `OperationNotAllowed` naming it, with `Retry-After`. `set_compute_budget` and
        `compute_budget_level` set and read them; `freeze_refill()` stops them refilling too.
    faults: seeded, bounded fault injection (see `Faults`), including writes whose answer is lost
        or a 500 after ARM did the work; change it with `set_faults`, count it with `faults_met`.
    require_known_subnets: a subnet reference (NIC, scale set profile) that the simulator does not
        hold is a 400 `InvalidResourceReference`; off, it is accepted without checks.

    Choices where Azure varies or documents nothing (each is a switch or stated here):
    nic_update_long_running: how a NIC update (a PUT of an existing NIC) is answered. False (the
        default, as recorded from Azure in shared/fixtures/recorded-arm): synchronously, 200
        `Succeeded` with no `Azure-AsyncOperation`, its public IP detached when the answer comes.
        True: 200 `Updating` with `Azure-AsyncOperation`, completing after `lro_duration_s` (a NIC
        update may be long-running in Azure, e.g. of a NIC in use by a running VM; the recorded one
        was of a NIC no VM used). A NIC create is always 201 `Succeeded`, no operation, as recorded.
    events_at: when a write's event (ResourceWriteSuccess, ResourceDeleteSuccess, an action's
        write event) is published. "acceptance" (the default, as Event Grid does: ARM publishes
        when it accepts the request, so a scale-out's event arrives before its instances exist,
        and an operation that later fails has had its event): with the 201/202 answer. "completion"
        (the simulator's own tests only): when the operation completes successfully. A write
        completed in the request (a NIC update, Insights) is published then either way.
    child_events: also emit events for the VMs, NICs and public IPs the platform creates or
        deletes itself (Azure does not document whether it does; off by default). Uniform instances'
        NICs and public IPs never have events (they are views of the set's model).
    manual_vms_count_in_capacity: whether VMs attached to a Flexible set by hand count in
        `sku.capacity` (and may be deleted by lowering it). Azure does not document this.
    duplicate_rate / reorder_window / event_seed: Event Grid delivers at least once and unordered
        without saying how often; each event is delivered twice with probability `duplicate_rate`,
        and events are shuffled within a window of `reorder_window` events (held events are released
        after 0.2 simulated seconds), all from `event_seed`.
    autoscale_app_id: the principal of the simulated autoscale service (see `autoscale_to`).
    autoscale_patch_needs_profiles: a PATCH of an autoscale setting without `properties.profiles`
        is a 400, as the REST spec's schema (profiles required) reads; off, it merges as sent.
        Whether Insights enforces it is not documented (on by default: the stricter reading).
    Also chosen, not switchable: the Microsoft.Network write limit is a token bucket (1,000 burst,
    refilled 1,000 per 300 s) rather than a fixed window; the global bucket is the documented 15
    times a principal's (the recordings show subscriptions with more as well) and its 429 is worded
    by the simulator; a gateway 404 still spends a read token; a NIC DELETE answers 202 (Azure
    was recorded answering 200 and 202, both with an operation to poll); a Flexible set answers
    the Uniform-only endpoints (`.../virtualMachineScaleSets/{set}/virtualMachines`, its NIC and
    public IP views, manualupgrade) with 400 `OperationNotAllowed`; a Uniform set with upgradePolicy
    Automatic or Rolling upgrades all instances when its PUT completes; a subnet write emits its
    virtual network's write event; autoscale settings default to `enabled: false` as the REST API
    does.

    Observation: `requests()` is the request log (each `RequestRecord` with `received`, its arrival,
    and `time`, its answer); `add_request_hook(hook)` calls `hook(record)` for every recorded request
    in the request's own thread, after its work is done and before its answer (or an injected delay,
    hold or drop) goes out, so a harness can act at that exact point. Event sinks and request hooks
    survive `reset()`.
    """

    def __init__(
        self,
        *,
        provision_delay_s: float = 0.3,
        lro_duration_s: float = 0.05,
        page_size: int = 20,
        child_events: bool = False,
        manual_vms_count_in_capacity: bool = False,
        tenant_id: str = "00000000-0000-0000-0000-000000000000",
        throttling: bool = True,
        time_scale: float = 1.0,
        faults: Faults | None = None,
        require_known_subnets: bool = False,
        autoscale_patch_needs_profiles: bool = True,
        duplicate_rate: float = 0.0,
        reorder_window: int = 0,
        event_seed: int = 0,
        autoscale_app_id: str = AUTOSCALE_APP_ID,
        port: int = 0,
        authorization: bool = True,
        linked_access_on_patch: str = "sent",
        nic_update_long_running: bool = False,
        list_lag_s: float = 1.0,
        graph_lag_s: float = 5.0,
        events_at: str = "acceptance",
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.settings = Settings(
            provision_delay_s=provision_delay_s,
            lro_duration_s=lro_duration_s,
            page_size=page_size,
            child_events=child_events,
            manual_vms_count_in_capacity=manual_vms_count_in_capacity,
            tenant_id=tenant_id,
            time_scale=time_scale,
            throttling=throttling,
            require_known_subnets=require_known_subnets,
            autoscale_patch_needs_profiles=autoscale_patch_needs_profiles,
            nic_update_long_running=nic_update_long_running,
            list_lag_s=list_lag_s,
            graph_lag_s=graph_lag_s,
            events_at=events_at,
        )
        self._port = port
        self._autoscale_app_id = autoscale_app_id
        self._scheduler = Scheduler(time_scale)
        self._store = Store(
            self.settings,
            self._scheduler,
            [
                VirtualMachineScaleSets(),
                VirtualMachines(),
                ScaleSetVirtualMachines(),
                NetworkInterfaces(),
                PublicIPAddresses(),
                VirtualNetworks(),
                LoadBalancers(),
                ApplicationSecurityGroups(),
                AutoscaleSettings(),
            ],
        )
        self._bus = EventBus(
            self._scheduler, duplicate_rate=duplicate_rate, reorder_window=reorder_window, seed=event_seed
        )
        self._store.set_publisher(self._bus.publish)
        self._throttle = Throttle(time_scale, clock=self._scheduler.real_now) if throttling else None
        self._faults = FaultInjector(faults)
        self._hooks = RequestHooks()
        self._access = AccessControl()
        authorizer = Authorizer(self._store, self._access, linked_access_on_patch=linked_access_on_patch)
        self._api = ArmApi(
            self._store,
            lambda: self.endpoint,
            throttle=self._throttle,
            faults=self._faults,
            hooks=self._hooks,
            authorizer=authorizer if authorization else None,
            access=AccessApi(self._access),
        )
        self._authorization = authorization
        self._authorizer = authorizer
        self._server: HttpsServer | None = None
        self._tempdir: Path | None = None
        self._endpoint: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._server is not None:
            return
        self._tempdir = Path(tempfile.mkdtemp(prefix="arm-sim-"))
        cert, key = write_self_signed(self._tempdir)
        self._scheduler.start()
        self._server = HttpsServer(self._api, str(cert), str(key), self._port)
        self._endpoint = f"https://127.0.0.1:{self._server.port}"
        self._server.start()

    def stop(self) -> None:
        self._scheduler.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._bus.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None
        self._endpoint = None

    def __enter__(self) -> ArmSimulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def authorization(self) -> bool:
        """Whether this simulator authorizes requests (see the `authorization` switch)."""
        return self._authorization

    @property
    def list_lag_s(self) -> float:
        """Simulated seconds lists lag the writes (see the class docstring)."""
        return self.settings.list_lag_s

    @property
    def graph_lag_s(self) -> float:
        """Simulated seconds Resource Graph lags the writes."""
        return self.settings.graph_lag_s

    @property
    def events_at(self) -> str:
        """When a write's event is published: "acceptance" or "completion"."""
        return self.settings.events_at

    @property
    def endpoint(self) -> str:
        """`https://127.0.0.1:<port>`: the base URL to give the SDK clients."""
        if self._endpoint is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return self._endpoint

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM certificate to pass as `connection_verify`."""
        if self._tempdir is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return str(self._tempdir / "cert.pem")

    # ------------------------------------------------------------------ state

    @property
    def linked_access_on_patch(self) -> str:
        """How a PATCH's linked access is read: "sent" or "merged" (see the class docstring)."""
        return self._authorizer.linked_access_on_patch

    @linked_access_on_patch.setter
    def linked_access_on_patch(self, mode: str) -> None:
        self._authorizer.linked_access_on_patch = mode

    def seed(self, document: dict[str, Any] | list[dict[str, Any]]) -> int:
        """Load ARM JSON or `az ... list` output: one resource, a list, or `{"value": [...]}`.

        Returns the number of resources loaded.
        """
        return self._store.seed(read_documents(document))

    def seed_file(self, path: str | Path) -> int:
        """`seed()` from a JSON file (an ARM export, a saved `az ... list` output, or `export_file`)."""
        return self.seed(json.loads(Path(path).read_text(encoding="utf-8")))

    def export(self) -> dict[str, Any]:
        """Every resource as ARM JSON, `{"value": [...]}`; `seed()` takes it back."""
        return self._store.export()

    def export_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.export(), indent=2), encoding="utf-8")

    def get_resource(self, resource_id: str) -> dict[str, Any] | None:
        return self._store.get(resource_id)

    def reset(self, *, access: bool = False) -> None:
        """Forget resources, operations, request records, pending work and throttling state (bucket
        levels set by tests and a frozen refill too).

        Event sinks, request hooks, role assignments and custom roles stay (access=True forgets the
        last two as well); the fault and event random sequences restart from their seeds, and fault
        counts and pending `throttle_next` answers are forgotten.
        """
        if access:
            self._access.reset()
        self._store.reset()
        self._bus.reset()
        if self._throttle is not None:
            self._throttle.reset()
        self._faults.configure(self._faults.faults)

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Block until no operation, provisioning or event delivery is pending; TimeoutError otherwise."""
        if not self._scheduler.wait_idle(timeout_s):
            raise TimeoutError(f"the simulator still had {self._scheduler.pending()} pending tasks")
        if not self._bus.wait_delivered(timeout_s):
            raise TimeoutError("the simulator's event sinks did not finish delivering")

    def now(self) -> float:
        """The simulator's clock, in simulated seconds (an arbitrary origin): what the lagging views,
        the buckets' refill and every delay are measured on."""
        return self._scheduler.now()

    def advance_clock(self, seconds: float) -> None:
        """Move the simulator's clock `seconds` simulated seconds forward at once: operations and
        provisioning due meanwhile run (unless `operations_held`), buckets refill (unless
        `freeze_refill`), and the lagging views of lists and Resource Graph catch up. A test
        reaches "later" this way rather than by sleeping for it. Returns once what fell due has run
        (TimeoutError if it does not within 10 real seconds)."""
        self._scheduler.advance(seconds)
        if not self._scheduler.settle(10.0):
            raise TimeoutError("the simulator's due work did not finish within 10 s")

    @contextmanager
    def operations_held(self) -> Iterator[None]:
        """While inside, no operation completes and no scale-out creates its instances: they stay
        InProgress / Updating whatever the time, and go on afterwards (a deterministic way to act
        while ARM is still working)."""
        self._scheduler.hold()
        try:
            yield
        finally:
            self._scheduler.release()

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

    # ------------------------------------------------------------------ the autoscale service

    def autoscale_to(self, scale_set_id: str, capacity: int) -> None:
        """Change a set's capacity as the autoscale service does: a PATCH by its own principal.

        Raises `AutoscaleRefused` when no enabled autoscale setting targets the set or the capacity is
        outside its profiles. The change is an ordinary LRO (instances follow after
        `provision_delay_s`) and emits the set's write event with the autoscale service as caller.
        """
        ref = scale_set_ref(scale_set_id)
        autoscale_target(self._store, ref.id, capacity)
        url = f"{self.endpoint}{ref.id}?api-version=2024-11-01"
        context = autoscale_context(self._autoscale_app_id, url)
        received = datetime.now(UTC)
        self._store.put(ref, {"sku": {"capacity": capacity}}, context, patch=True)
        record = RequestRecord(
            method="PATCH",
            path=ref.id,
            resource_type=ids.VMSS_TYPE,
            operation=f"{ids.VMSS_TYPE}/write",
            status=200,
            time=datetime.now(UTC),
            principal=self._autoscale_app_id,
            received=received,
        )
        self._store.record(record)
        self._hooks.call(record)  # in the caller's thread: it is the autoscale service's request

    # ------------------------------------------------------------------ observation

    def add_event_sink(
        self,
        callback: Callable[[dict[str, Any]], None],
        *,
        schema: EventSchema | str = EventSchema.EVENT_GRID,
    ) -> None:
        """`callback(event)` for every emitted event, from any thread, in the given schema."""
        self._bus.add(CallbackSink(callback, EventSchema(schema)))

    def add_webhook_sink(
        self, url: str, *, schema: EventSchema | str = EventSchema.EVENT_GRID, attempts: int = 3
    ) -> None:
        """POST every event (a JSON array of one) to a loopback URL, from a delivery thread."""
        self._bus.add(WebhookSink(url, EventSchema(schema), attempts=attempts))

    def add_queue_sink(
        self, connection_string: str, queue_name: str, *, schema: EventSchema | str = EventSchema.EVENT_GRID
    ) -> None:
        """Put every event on an Azure Storage queue (Azurite locally), one JSON message each."""
        self._bus.add(QueueSink(connection_string, queue_name, EventSchema(schema)))

    def requests(self) -> list[RequestRecord]:
        return self._store.records()

    def add_request_hook(self, hook: RequestHook) -> None:
        """Call `hook(record)` for every request recorded from now on (`autoscale_to`'s PATCH too).

        It runs in the request's own thread after the request's work is done and its record stored,
        and before its answer is written (before any injected delay or hold, and before an injected
        drop): a hook that blocks holds that answer back while the client waits. An exception from a
        hook is logged and swallowed. Hooks run in the order added and survive `reset()`.
        """
        self._hooks.add(hook)

    def remove_request_hook(self, hook: RequestHook) -> None:
        """Stop calling `hook` (one registration of it); nothing happens if it is not registered."""
        self._hooks.remove(hook)

    def counters(self) -> dict[str, Any]:
        """Request counts by method, resource type, operation, status and principal.

        The same numbers are served at `GET {endpoint}/_sim/counters` (and the log at `/_sim/requests`).
        """
        return counters(self._store.records())

    def write_count(self, resource_type: str | None = None) -> int:
        """PUT/PATCH/POST/DELETE requests answered 2xx, optionally of one resource type.

        Operation polls and Resource Graph queries (POSTs that only read) are not writes.
        """
        wanted = resource_type.lower() if resource_type else None
        return len(
            [
                record
                for record in self._store.records()
                if record.method in WRITE_METHODS
                and 200 <= record.status < 300
                and "/locations/" not in record.resource_type.lower()
                and not record.operation.endswith("/read")
                and (wanted is None or record.resource_type.lower() == wanted)
            ]
        )
