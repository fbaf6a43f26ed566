"""`ArmSimulator`: the one object tests, the demo and benchmarks use.

No Azure subscription is reachable from our machines and no ARM emulator
exists, so this stands in for Azure Resource Manager for the resource types the
remediator meets (scale sets in both orchestration modes with their instances,
VMs, NICs, public IPs, virtual networks and subnets, autoscale settings, and
Resource Graph's query endpoint, role definitions and assignments, Event Grid system topics and
their event subscriptions: sim/event_grid.py). It wires the
store, the type-specific rules, the scheduler, throttling, authorization, fault
injection, event delivery and the HTTPS server together, and offers the hooks tests
need (events, request log and counters, request hooks, seeding and export, an
autoscale driver, forced throttling, per-kind fault counts, and who may do what:
`grant`, `define_role`, sim/access_harness.py) without going through HTTP. Those groups of
methods are mixins: throttling controls (sim/throttling_controls.py), fault injection
(sim/fault_controls.py), the clock (sim/clock_controls.py), event sinks and the request log
(sim/observation.py), access (sim/access_harness.py) and management groups with the policy that wires
their subscriptions' events (sim/management_harness.py); this module is the facade that builds
and runs it all.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from remediation.exported import read_documents
from sim import ids
from sim.access_api import AccessApi
from sim.access_harness import AccessHarness
from sim.arm_api import ArmApi
from sim.authorization import Authorizer
from sim.clock_controls import ClockControls
from sim.delivery import EventBus
from sim.event_grid import EventGridApi
from sim.fault_controls import FaultControls
from sim.faults import FaultInjector, Faults
from sim.hooks import RequestHooks
from sim.https_server import HttpsServer
from sim.insights import AutoscaleSettings, autoscale_context, autoscale_target, scale_set_ref
from sim.limits import Throttle
from sim.load_balancers import ApplicationSecurityGroups, LoadBalancers
from sim.management_api import ManagementApi
from sim.management_groups import ManagementGroups
from sim.management_harness import ManagementHarness
from sim.network import NetworkInterfaces, PublicIPAddresses, VirtualNetworks
from sim.observation import Observation
from sim.rbac import AccessControl
from sim.request_log import RequestRecord
from sim.scale_sets import VirtualMachineScaleSets
from sim.scheduler import Scheduler
from sim.settings import Settings
from sim.throttling_controls import ThrottlingControls
from sim.tls import write_self_signed
from sim.uniform_instances import ScaleSetVirtualMachines
from sim.virtual_machines import VirtualMachines
from sim.writes import WritableStore

# The principal the simulated autoscale service writes with (its `appid` and `oid` claims). Azure does
# not document the autoscale service's application id; the Activity Log names this caller.
AUTOSCALE_APP_ID = "Microsoft.Insights/autoscaleSettings"


class ArmSimulator(
    AccessHarness, ManagementHarness, ThrottlingControls, FaultControls, ClockControls, Observation
):
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
        the only one recorded from Azure); a gateway 404 for a missing resource carries none
        (sim/limits.py).
    principal_rate_headers: also send `x-ms-ratelimit-remaining-subscription-{...}`, the caller's
        own bucket. Off by default: no recording shows it, so a client cannot count on it.
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
    events_need_wiring: a subscription's events reach the sinks only once it has a Succeeded system
        topic with a Succeeded event subscription, as a deployIfNotExists policy makes them
        (sim/management_harness.py: `register_event_wiring`); off by default: every event is sent.
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
        principal_rate_headers: bool = False,
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
        events_need_wiring: bool = False,
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
            events_need_wiring=events_need_wiring,
        )
        self._port = port
        self._autoscale_app_id = autoscale_app_id
        self._scheduler = Scheduler(time_scale)
        self._store = WritableStore(
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
        self._store.set_publisher(self._publish)
        self._throttle = (
            Throttle(time_scale, clock=self._scheduler.real_now, principal_headers=principal_rate_headers)
            if throttling
            else None
        )
        self._faults = FaultInjector(faults)
        self._hooks = RequestHooks()
        self._access = AccessControl()
        self._groups = ManagementGroups(tenant_id)
        self._access.set_ancestry(self._groups.scope_ancestors)
        self._wirings, self._wiring_threads = [], []
        authorizer = Authorizer(self._store, self._access, linked_access_on_patch=linked_access_on_patch)
        self._event_grid = EventGridApi(
            self._store,
            self._scheduler,
            lambda: self.endpoint,
            lro_duration_s=lro_duration_s,
            tenant_id=tenant_id,
        )
        self._api = ArmApi(
            self._store,
            lambda: self.endpoint,
            throttle=self._throttle,
            faults=self._faults,
            hooks=self._hooks,
            authorizer=authorizer if authorization else None,
            access=AccessApi(self._access),
            event_grid=self._event_grid,
            management=ManagementApi(self._groups, lambda: self.endpoint, page_size),
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

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        """Every resource of one type as it is now (what a GET by id answers; lists lag)."""
        wanted = resource_type.lower()
        return [r for r in self.export()["value"] if str(r.get("type", "")).lower() == wanted]

    def reset(self, *, access: bool = False) -> None:
        """Forget resources, operations, request records, pending work and throttling state (bucket
        levels set by tests and a frozen refill too).

        Event sinks, request hooks, role assignments, custom roles, management groups and event wirings
        stay (access=True forgets the last four as well); the fault and event random sequences restart
        from their seeds, and fault counts and pending `throttle_next` answers are forgotten.
        """
        if access:
            self._access.reset()
            self._reset_management()
        self._store.reset()
        self._event_grid.reset()
        self._bus.reset()
        if self._throttle is not None:
            self._throttle.reset()
        self._faults.configure(self._faults.faults)

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
